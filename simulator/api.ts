// The XenAPI methods a host serves: session.*, the generic record calls of every class
// (get_record, get_all_records(_where), get_by_uuid, get_by_name_label, get_<field>,
// set_<field>, add_to_/remove_from_<map>), what tests need to build and run VMs, tasks,
// event.from, and (from migration.ts) the migration calls. Async.<Class>.<method> runs any of
// them as a task.
import { XenApiError } from '../xenapi/errors';
import { newRef, newUuid, macFor, NULL_REF } from './ids';
import { type SimHost, vmDefaults } from './host';
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

export function buildMethods(host: SimHost): Methods {
  const s = host.store;
  const m: Methods = new Map();
  const def = (name: string, arity: Method['arity'], fn: Method['fn'], noSession = false) => m.set(name, { arity, fn, noSession });

  // ---- session ----
  def('session.login_with_password', [2, 4], ([user, pw]) => {
    if (user !== host.opts.user || pw !== host.opts.password) {
      throw new XenApiError('SESSION_AUTHENTICATION_FAILED', [str(user), 'Authentication failure']);
    }
    const ref = newRef();
    host.sessions.add(ref);
    return ref;
  }, true);
  def('session.logout', [0, 0], (_a, ctx) => {
    host.sessions.delete(ctx.session);
    return '';
  });
  def('session.get_this_host', 1, () => host.hostRef);

  // ---- generic record calls for every class ----
  for (const cls of CLASSES) {
    def(`${cls}.get_all`, 0, () => s.refs(cls));
    def(`${cls}.get_record`, 1, ([ref]) => host.view(cls, str(ref)));
    def(`${cls}.get_all_records`, 0, () => Object.fromEntries(s.refs(cls).map((r) => [r, host.view(cls, r)])));
    def(`${cls}.get_all_records_where`, 1, ([expr]) => {
      const pred = compileWhere(str(expr));
      return Object.fromEntries(s.refs(cls).map((r) => [r, host.view(cls, r)] as const).filter(([, rec]) => pred(rec)));
    });
    def(`${cls}.get_by_uuid`, 1, ([uuid]) => s.byUuid(cls, str(uuid)));
    def(`${cls}.get_by_name_label`, 1, ([label]) => s.find(cls, (r) => r.name_label === label));
  }

  // ---- building VMs ----
  def('VM.create', 1, ([record]) => {
    const rec: Rec = { ...vmDefaults(), ...(record as Rec), uuid: newUuid() };
    Object.assign(rec, { power_state: 'Halted', domid: '-1', resident_on: NULL_REF, is_control_domain: false, current_operations: {} });
    for (const f of ['memory_static_max', 'memory_dynamic_max', 'memory_dynamic_min', 'memory_static_min', 'memory_target', 'VCPUs_max', 'VCPUs_at_startup']) {
      rec[f] = str(rec[f]);
    }
    return s.add('VM', rec);
  });
  def('VM.destroy', 1, ([vm]) => host.destroyVm(str(vm)));
  def('VM.start', 3, ([vm, paused]) => host.startVm(str(vm), paused === true));
  def('VM.start_on', 4, ([vm, h, paused]) => {
    if (h !== host.hostRef) throw new XenApiError('VM_INCOMPATIBLE_WITH_THIS_HOST', [str(vm), str(h), 'VM can only start on the host serving this API']);
    host.startVm(str(vm), paused === true);
  });
  def('VM.pause', 1, ([vm]) => host.pauseVm(str(vm)));
  def('VM.unpause', 1, ([vm]) => host.unpauseVm(str(vm)));
  def('VM.hard_shutdown', 1, ([vm]) => host.haltVm(str(vm)));
  def('VM.clean_shutdown', 1, ([vm]) => host.haltVm(str(vm)));
  def('VDI.create', 1, ([record]) => host.createVdi(record as Rec));
  def('VDI.destroy', 1, ([vdi]) => host.destroyVdi(str(vdi)));
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
  def('task.cancel', 1, ([task]) => host.cancelTask(str(task)));
  def('task.destroy', 1, ([task]) => destroy('task', str(task)));
  def('event.from', 3, async ([classes, token, timeout]) => {
    const wanted = new Set((classes as string[]).map(String));
    const since = token === '' ? -1 : Number(token);
    const deadline = Date.now() + Number(timeout) * 1000;
    const collect = () => {
      if (since < 0) {
        // An empty token: every current object of the classes, as "add" events.
        return CLASSES.filter((c) => wanted.has('*') || wanted.has(c) || wanted.has(c.toLowerCase())).flatMap((c) =>
          s.refs(c).map((ref) => ({ class: c, operation: 'add', ref })),
        );
      }
      return s.eventsSince(since, wanted);
    };
    let events = collect();
    while (events.length === 0 && Date.now() < deadline) {
      await s.waitForEvent(deadline - Date.now());
      events = collect();
    }
    return {
      events: events.map((e, i) => ({
        id: String(s.eventToken * 1000 + i),
        timestamp: String(Date.now() / 1000),
        class: e.class,
        operation: e.operation,
        ref: e.ref,
        ...(e.operation !== 'del' && s.has(e.class, e.ref) ? { snapshot: host.view(e.class, e.ref) } : {}),
      })),
      valid_ref_counts: {},
      token: String(s.eventToken).padStart(20, '0'),
    };
  });
  return m;
}

/** get_<field>, set_<field>, add_to_<map>, remove_from_<map> for any class and field. */
export function fieldMethod(host: SimHost, name: string): Method | undefined {
  const match = /^([A-Za-z_]+)\.(get|set|add_to|remove_from)_(\w+)$/.exec(name);
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
  switch (op) {
    case 'get':
      return { arity: 1, fn: ([ref]) => known(str(ref))[field] };
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
