// ferry's dom0 plugin (plugins/xapi.d/ferry), called through host.call_plugin on the host that
// runs the domain. XenAPI cannot do these to a running, migrating VM: VM.add_to_VCPUs_params only
// changes the stored record (applied at the next boot) and VM.pause is refused while a migration is
// in current_operations (OTHER_OPERATION_IN_PROGRESS). The plugin acts on the domain with `xl`.
import { z } from 'zod';
import type { XenApiClient } from '../../xenapi/client';

const PLUGIN = 'ferry';

const DomainState = z.object({ paused: z.boolean(), cap: z.coerce.number() });
export type DomainState = z.infer<typeof DomainState>;

export function dom0Plugin(xenapi: XenApiClient, hostRef: string) {
  const call = async (fn: string, args: Record<string, string>): Promise<unknown> => JSON.parse(await xenapi.callPlugin(hostRef, PLUGIN, fn, args));
  return {
    async domain(domid: string): Promise<DomainState> {
      return DomainState.parse(await call('get_domain', { domid }));
    },
    /** Caps the running domain at `cap` percent of one CPU; null lifts the cap. */
    async setVcpuCap(domid: string, cap: number | null): Promise<void> {
      await call('set_vcpu_cap', { domid, cap: String(cap ?? 0) });
    },
    /** Pauses the domain unless it already is (Xen counts pauses: one unpause must undo one pause). */
    async pause(domid: string): Promise<void> {
      if (!(await this.domain(domid)).paused) await call('pause', { domid });
    },
    async unpause(domid: string): Promise<void> {
      if ((await this.domain(domid)).paused) await call('unpause', { domid });
    },
  };
}
