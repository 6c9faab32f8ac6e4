// host.call_plugin: the dom0 plugin "ferry" that ferry installs on its hosts (the real one is a
// Python XenAPIPlugin script; this is its contract). It acts on a running domain of the host it
// is called on, below xapi, as `xl` would: xapi's record of the VM does not change.
//   set_vcpu_cap {domid, cap}  cap = % of one vCPU, "0" = uncapped (xl sched-credit2 -d <domid> -c <cap>)
//   pause {domid}, unpause {domid}  (xl pause / xl unpause)
//   get_domain {domid} -> {"domid", "paused", "cap"}
// Every function answers a JSON string. Errors as xapi_plugins.ml and XenAPIPlugin.py give them:
// XENAPI_MISSING_PLUGIN [name] for an unknown plugin, UNKNOWN_XENAPI_PLUGIN_FUNCTION [fn] for an
// unknown function, XENAPI_PLUGIN_FAILURE [fn, exception class, message] when the function raises.
import { XenApiCode, XenApiError } from '../xenapi/errors';
import type { CallContext } from './api';
import type { SimHost } from './host';
import { MIGRATION_PLUGIN_FUNCTIONS, callMigrationPlugin } from './migration-plugin';

const FUNCTIONS = ['set_vcpu_cap', 'pause', 'unpause', 'get_domain'];

function failure(fn: string, cls: string, message: string): XenApiError {
  return new XenApiError(XenApiCode.XENAPI_PLUGIN_FAILURE, [fn, cls, message]);
}

export function callPlugin(host: SimHost, plugin: string, fn: string, args: Record<string, unknown>, ctx?: CallContext): string | Promise<string> {
  if (plugin === 'migration') {
    // Nova's dom0 plugin for cold migration and resize (migration-plugin.ts).
    if (!MIGRATION_PLUGIN_FUNCTIONS.includes(fn)) throw new XenApiError('UNKNOWN_XENAPI_PLUGIN_FUNCTION', [fn]);
    return callMigrationPlugin(host, fn, args, ctx);
  }
  if (plugin !== 'ferry') throw new XenApiError(XenApiCode.XENAPI_MISSING_PLUGIN, [plugin]);
  // XenAPIPlugin.dispatch answers an unknown function with its own code.
  if (!FUNCTIONS.includes(fn)) throw new XenApiError('UNKNOWN_XENAPI_PLUGIN_FUNCTION', [fn]);
  for (const [k, v] of Object.entries(args)) {
    if (typeof v !== 'string') throw failure(fn, 'TypeError', `argument ${k} must be a string, got ${typeof v}`);
  }
  const domidArg = args.domid;
  if (typeof domidArg !== 'string' || !/^\d+$/.test(domidArg)) throw failure(fn, 'ValueError', `domid must be a domain id (a decimal string), got ${JSON.stringify(domidArg)}`);
  if (domidArg === '0') throw failure(fn, 'ValueError', 'domid 0 is the control domain');
  const domain = host.domain(domidArg);
  if (!domain) throw failure(fn, 'LookupError', `no running domain ${domidArg} on ${host.name}`);
  const { guest } = domain;
  switch (fn) {
    case 'set_vcpu_cap': {
      const capArg = args.cap;
      if (typeof capArg !== 'string' || !/^\d+$/.test(capArg)) throw failure(fn, 'ValueError', `cap must be a percentage of one vCPU (a decimal string, "0" = uncapped), got ${JSON.stringify(capArg)}`);
      guest.setCap(Number(capArg));
      host.log.info({ domid: domidArg, cap: capArg }, 'plugin ferry.set_vcpu_cap');
      return JSON.stringify({ domid: domidArg, cap: capArg });
    }
    case 'pause':
      guest.stop();
      guest.domainPaused = true;
      host.log.info({ domid: domidArg }, 'plugin ferry.pause');
      return JSON.stringify({ domid: domidArg, paused: true });
    case 'unpause':
      guest.domainPaused = false;
      if (!guest.suspended) guest.start();
      host.log.info({ domid: domidArg }, 'plugin ferry.unpause');
      return JSON.stringify({ domid: domidArg, paused: false });
    default:
      return JSON.stringify({ domid: domidArg, paused: !guest.running, cap: guest.cap });
  }
}
