// The XenAPI methods a pool member serves: session.*, the generic record calls of every class
// (get_record, get_all_records(_where), get_by_uuid, get_by_name_label, get_<field>,
// set_<field>, add_to_/remove_from_<map>), what tests need to build and run VMs, tasks,
// event.from, host.call_plugin (the ferry dom0 plugin), and (from migration.ts) the migration
// calls. Every member works on the pool's one database (pool.ts); login only on the master.
// Async.<Class>.<method> runs any of them as a task.
import { XenApiCode, XenApiError } from '../xenapi/errors';
import { newRef, newUuid, macFor, NULL_REF } from './ids';
import { eventFrom } from './events';
import { type SimHost, vmDefaults } from './host';
import { settleMigrations } from './migration';
import { callPlugin } from './plugin';
import { CLASSES, type ClassName, type Rec } from './store';
import { compileWhere } from './where';

export interface CallContext {
  method: string;
  session: string;
  /** Set when the call runs as Async.X: the task that reports it. */
  taskRef?: string;
}

export interface Method {
  /** Parameters after the session; a pair gives [min, max]. */
  arity: number | [number, number];
  noSession?: boolean;
  fn: (args: unknown[], ctx: CallContext) => unknown;
}

export type Methods = Map<string, Method>;

/** Fields no set_<field> may touch: identities, computed links and state owned by xapi. */
const READ_ONLY = new Set([
  'uuid', 'power_state', 'resident_on', 'domid', 'allowed_operations', 'current_operations', 'status', 'progress',
  'VBDs', 'VIFs', 'VDIs', 'PIFs', 'resident_VMs', 'is_control_domain', 'SR', 'VM', 'VDI', 'metrics',
]);

const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));
const asMap = (v: unknown) => ({ ...((v && typeof v === 'object' ? v : {}) as Record<string, string>) });

function classOf(cls: string): ClassName {
  if (!(CLASSES as readonly string[]).includes(cls)) throw new XenApiError('MESSAGE_METHOD_UNKNOWN', [cls]);
  return cls as ClassName;
}

export function resultXml(value: unknown): string {
  if (value === undefined || value === null || value === '') return '';
  const escaped = String(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return `<value>${escaped}</value>`;
}

/** xapi_globs.ml domain_shutdown_total_timeout: how long VM.clean_shutdown waits for the guest (s). */
const DOMAIN_SHUTDOWN_TOTAL_TIMEOUT_S = 1200;

export function buildMethods(host: SimHost): Methods {
  const pool = host.pool;
  const s = pool.store;
  const m: Methods = new Map();
  const def = (name: string, arity: Method['arity'], fn: Method['fn'], noSession = false) => m.set(name, { arity, fn, noSession });

  // ---- session (xapi_session.ml: only the master accepts a login; sessions are pool-wide) ----
  def('session.login_with_password', [2, 4], ([user, pw]) => {
    if (!host.isMaster) throw new XenApiError(XenApiCode.HOST_IS_SLAVE, [pool.master.opts.ip]);
    if (user !== pool.opts.user || pw !== pool.opts.password) {
      throw new XenApiError(XenApiCode.SESSION_AUTHENTICATION_FAILED, [str(user), 'Authentication failure']);
    }
    const ref = newRef();
    pool.sessions.add(ref);
    return ref;
  }, true);
  def('session.logout', [0, 0], (_a, ctx) => {
    pool.sessions.delete(ctx.session);
    s.wakeAll(); // its event.from calls fail with SESSION_INVALID
    return '';
  });
  def('session.get_this_host', 1, () => host.hostRef);

  // ---- generic record calls for every class ----
  for (const cls of CLASSES) {
    def(`${cls}.get_all`, 0, () => s.refs(cls));
    def(`${cls}.get_record`, 1, ([ref]) => pool.view(cls, str(ref)));
    def(`${cls}.get_all_records`, 0, () => Object.fromEntries(s.refs(cls).map((r) => [r, pool.view(cls, r)])));
    def(`${cls}.get_all_records_where`, 1, ([expr]) => {
      const pred = compileWhere(str(expr));
      return Object.fromEntries(s.refs(cls).map((r) => [r, pool.view(cls, r)] as const).filter(([, rec]) => pred(rec)));
    });
    def(`${cls}.get_by_uuid`, 1, ([uuid]) => s.byUuid(cls, str(uuid)));
    def(`${cls}.get_by_name_label`, 1, ([label]) => s.find(cls, (r) => r.name_label === label));
  }

  /** A member that is up (HANDLE_INVALID for a ref that is no host of this pool, HOST_OFFLINE when down). */
  const liveMember = (ref: string): SimHost => {
    const h = pool.member(ref);
    if (!h) throw new XenApiError(XenApiCode.HANDLE_INVALID, ['host', ref]);
    if (h.crashed) throw new XenApiError(XenApiCode.HOST_OFFLINE, [ref]);
    return h;
  };
  /** The member the VM runs on; for a VM that runs nowhere, the power-state error of `expected`. */
  const resident = (vm: string, ...expected: string[]): SimHost => {
    const h = pool.hostOf(vm);
    if (!h) {
      host.assertPowerState(vm, ...expected);
      throw new XenApiError(XenApiCode.VM_BAD_POWER_STATE, [vm, (expected[0] ?? '').toLowerCase(), 'halted']);
    }
    if (h.crashed) throw new XenApiError(XenApiCode.HOST_OFFLINE, [h.hostRef]);
    return h;
  };
  const assertVm = (vm: string, op: string) => {
    const rec = host.vm(vm);
    if (rec.is_control_domain) throw new XenApiError(XenApiCode.OPERATION_NOT_ALLOWED, [`${op} is not allowed on a control domain`]);
    pool.assertOperationAllowed(vm, op);
  };

  // ---- building VMs ----
  def('VM.create', 1, ([record]) => {
    const rec: Rec = { ...vmDefaults(), ...(record as Rec), uuid: newUuid() };
    Object.assign(rec, { power_state: 'Halted', domid: '-1', resident_on: NULL_REF, is_control_domain: false, current_operations: {} });
    for (const f of ['memory_static_max', 'memory_dynamic_max', 'memory_dynamic_min', 'memory_static_min', 'memory_target', 'VCPUs_max', 'VCPUs_at_startup']) {
      rec[f] = str(rec[f]);
    }
    delete rec.allowed_operations;
    return s.add('VM', rec);
  });
  def('VM.destroy', 1, ([vm]) => {
    assertVm(str(vm), 'destroy');
    host.assertPowerState(str(vm), 'Halted');
    pool.removeVm(str(vm));
  });
  // xapi's master picks the host: the VM's affinity when it is up, else (here) the member that took the call.
  def('VM.start', 3, ([vm, paused]) => {
    assertVm(str(vm), 'start');
    const affinity = pool.member(str(host.vm(str(vm)).affinity));
    (affinity && !affinity.crashed ? affinity : host).startVm(str(vm), paused === true);
  });
  def('VM.start_on', 4, ([vm, h, paused]) => {
    assertVm(str(vm), 'start_on');
    liveMember(str(h)).startVm(str(vm), paused === true);
  });
  def('VM.pause', 1, ([vm]) => {
    assertVm(str(vm), 'pause');
    resident(str(vm), 'Running').pauseVm(str(vm));
  });
  def('VM.unpause', 1, ([vm]) => {
    assertVm(str(vm), 'unpause');
    resident(str(vm), 'Paused').unpauseVm(str(vm));
  });
  // message_forwarding.ml: hard_shutdown cancels a pool_migrate (and a migrate_send fails when
  // its domain is destroyed); clean_shutdown may run alongside migrate_send only, after it.
  def('VM.hard_shutdown', 1, async ([vm]) => {
    assertVm(str(vm), 'hard_shutdown');
    await settleMigrations(pool, str(vm), 'VM.hard_shutdown');
    resident(str(vm), 'Running', 'Paused').haltVm(str(vm));
  });
  def('VM.clean_shutdown', 1, async ([vm], ctx) => {
    assertVm(str(vm), 'clean_shutdown');
    await settleMigrations(pool, str(vm));
    const h = resident(str(vm), 'Running');
    const oc = (host.vm(str(vm)).other_config ?? {}) as Record<string, string>;
    if (oc.sim_clean_shutdown === 'ignore') await ignoredCleanShutdown(str(vm), Number(oc.sim_shutdown_timeout_s ?? DOMAIN_SHUTDOWN_TOTAL_TIMEOUT_S), ctx);
    else h.haltVm(str(vm));
  });
  /**
   * A guest that acknowledges the shutdown request and never shuts down (xenops_server.ml
   * VM_shutdown_domain: wait_shutdown for the rest of the timeout, then Failed_to_shutdown, which
   * xapi_xenops.ml turns into VM_SHUTDOWN_TIMEOUT [vm, timeout]). Meanwhile the VM shows
   * clean_shutdown in current_operations and a VM.hard_shutdown may run (is_allowed_concurrently);
   * when the VM halts that way, the clean shutdown returns.
   */
  const ignoredCleanShutdown = async (vm: string, timeoutS: number, ctx: CallContext) => {
    const op = ctx.taskRef ?? newRef();
    s.update('VM', vm, { current_operations: { ...(host.vm(vm).current_operations as Record<string, string>), [op]: 'clean_shutdown' } });
    const deadline = Date.now() + timeoutS * 1000;
    // As an Async call its task can be cancelled while it waits (xapi_xenops.ml follows xenopsd's
    // task, cancellable while the domain has not shut down): it ends with TASK_CANCELLED.
    let cancelled = false;
    if (ctx.taskRef) {
      const task = ctx.taskRef;
      s.update('task', task, { allowed_operations: ['cancel'] });
      pool.cancelHandlers.set(task, () => {
        cancelled = true;
        s.wakeAll();
      });
    }
    try {
      while (s.has('VM', vm) && host.vm(vm).power_state !== 'Halted') {
        if (cancelled) throw new XenApiError(XenApiCode.TASK_CANCELLED, [op]);
        if (Date.now() >= deadline) throw new XenApiError(XenApiCode.VM_SHUTDOWN_TIMEOUT, [vm, timeoutS.toFixed(1)]);
        await s.waitForChange((cls, ref) => cls === 'VM' && ref === vm, deadline - Date.now());
      }
    } finally {
      if (s.has('VM', vm)) {
        const { [op]: _done, ...rest } = host.vm(vm).current_operations as Record<string, string>;
        s.update('VM', vm, { current_operations: rest });
      }
    }
  };
  // xapi_vm.ml: a running domain's vCPU parameters cannot be changed through the API.
  def('VM.add_to_VCPUs_params_live', 3, ([vm]) => {
    assertVm(str(vm), 'add_to_VCPUs_params_live');
    throw new XenApiError(XenApiCode.NOT_IMPLEMENTED, ['add_to_VCPUs_params_live']);
  });
  // xapi_host.ml: disable and enable only set `enabled` (a disabled host starts no new VMs; its
  // VMs keep running); disable takes an optional auto_enable since 25.31.
  def('host.disable', [1, 2], ([h]) => {
    s.raw('host', str(h));
    s.update('host', str(h), { enabled: false });
  });
  def('host.enable', 1, ([h]) => {
    s.raw('host', str(h));
    s.update('host', str(h), { enabled: true });
  });
  def('host.call_plugin', 4, ([h, plugin, fn, args], ctx) => callPlugin(liveMember(str(h)), str(plugin), str(fn), (args ?? {}) as Record<string, unknown>, ctx));
  def('VDI.create', 1, ([record]) => pool.createVdi(record as Rec));
  def('VDI.destroy', 1, ([vdi]) => pool.destroyVdi(str(vdi)));
  def('VBD.create', 1, ([record]) => {
    const r = record as Rec;
    const vm = str(r.VM);
    const vdi = str(r.VDI ?? NULL_REF);
    host.vm(vm);
    if (vdi !== NULL_REF) s.raw('VDI', vdi);
    return s.add('VBD', {
      uuid: newUuid(),
      device: '',
      bootable: false,
      mode: 'RW',
      type: 'Disk',
      empty: vdi === NULL_REF,
      unpluggable: true,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
      ...r,
      VM: vm,
      VDI: vdi,
      userdevice: str(r.userdevice ?? '0'),
      currently_attached: false,
    });
  });
  /** Removes an existing object (HANDLE_INVALID for an unknown ref). */
  const destroy = (cls: ClassName, ref: string) => {
    s.raw(cls, ref);
    s.remove(cls, ref);
  };
  def('VBD.destroy', 1, ([vbd]) => destroy('VBD', str(vbd)));
  def('VIF.create', 1, ([record]) => {
    const r = record as Rec;
    host.vm(str(r.VM));
    s.raw('network', str(r.network));
    const uuid = newUuid();
    return s.add('VIF', {
      uuid,
      device: '0',
      MAC: macFor(uuid),
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
      ...r,
      MTU: str(r.MTU ?? '1500'),
      currently_attached: false,
    });
  });
  def('VIF.destroy', 1, ([vif]) => destroy('VIF', str(vif)));

  // ---- tasks and events ----
  def('task.cancel', 1, ([task]) => pool.cancelTask(str(task)));
  def('task.destroy', 1, ([task]) => destroy('task', str(task)));
  def('event.from', 3, ([classes, token, timeout], ctx) => eventFrom(pool, ctx.session, classes, token, timeout));
  return m;
}

/**
 * get_<field>, set_<field>, add_to_<map>, remove_from_<map> for any class and field, and for a set
 * field (tags) add_<set> / remove_<set>, which xapi makes idempotent ("If the value is already in
 * that Set, then do nothing": ocaml/idl/datamodel_utils.ml).
 */
export function fieldMethod(host: SimHost, name: string): Method | undefined {
  const match = /^([A-Za-z_]+)\.(get|set|add_to|remove_from|add|remove)_(\w+)$/.exec(name);
  if (!match || !(CLASSES as readonly string[]).includes(match[1] ?? '')) return undefined;
  const cls = classOf(match[1] as string);
  const op = match[2] as string;
  const field = match[3] as string;
  const s = host.store;
  const known = (ref: string) => {
    const rec = host.view(cls, ref);
    if (!(field in rec)) throw new XenApiError('MESSAGE_METHOD_UNKNOWN', [name]);
    return rec;
  };
  const writable = () => {
    if (READ_ONLY.has(field)) throw new XenApiError('MESSAGE_METHOD_UNKNOWN', [name]);
  };
  const set = (ref: string): string[] => {
    const value = known(ref)[field];
    if (!Array.isArray(value)) throw new XenApiError('MESSAGE_METHOD_UNKNOWN', [name]);
    return value.map(String);
  };
  switch (op) {
    case 'get':
      return { arity: 1, fn: ([ref]) => known(str(ref))[field] };
    case 'add':
    case 'remove':
      return {
        arity: 2,
        fn: ([ref, value]) => {
          writable();
          const now = set(str(ref));
          const v = str(value);
          const next = op === 'add' ? (now.includes(v) ? now : [...now, v]) : now.filter((x) => x !== v);
          s.update(cls, str(ref), { [field]: next });
        },
      };
    case 'set':
      return {
        arity: 2,
        fn: ([ref, value]) => {
          writable();
          known(str(ref));
          s.update(cls, str(ref), { [field]: value });
        },
      };
    case 'add_to':
      return {
        arity: 3,
        fn: ([ref, key, value]) => {
          writable();
          const map = asMap(known(str(ref))[field]);
          if (str(key) in map) throw new XenApiError('MAP_DUPLICATE_KEY', [cls, field, str(ref), str(key)]);
          map[str(key)] = str(value);
          s.update(cls, str(ref), { [field]: map });
        },
      };
    default:
      return {
        arity: 2,
        fn: ([ref, key]) => {
          writable();
          const map = asMap(known(str(ref))[field]);
          delete map[str(key)];
          s.update(cls, str(ref), { [field]: map });
        },
      };
  }
}
