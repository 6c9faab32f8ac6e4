// The simulator's object database: one table per XenAPI class, refs as keys, and an event log
// for event.from. Reverse links (VM.VBDs, SR.VDIs, host.resident_VMs, ...) are computed when a
// record is read, so they can never disagree with the forward links.
import { XenApiError } from '../xenapi/errors';
import { newRef } from './ids';

export type Rec = Record<string, unknown>;
export const CLASSES = ['pool', 'host', 'host_metrics', 'network', 'PIF', 'SR', 'VDI', 'VBD', 'VM', 'VIF', 'task'] as const;
export type ClassName = (typeof CLASSES)[number];

export interface XenEvent {
  id: number;
  class: ClassName;
  operation: 'add' | 'mod' | 'del';
  ref: string;
}

/** Reverse links: class -> field -> [child class, child's field that points back]. */
const REVERSE: Partial<Record<ClassName, Record<string, [ClassName, string]>>> = {
  VM: { VBDs: ['VBD', 'VM'], VIFs: ['VIF', 'VM'] },
  VDI: { VBDs: ['VBD', 'VDI'] },
  SR: { VDIs: ['VDI', 'SR'] },
  host: { resident_VMs: ['VM', 'resident_on'], PIFs: ['PIF', 'host'] },
  network: { VIFs: ['VIF', 'network'], PIFs: ['PIF', 'network'] },
};

export class Store {
  private readonly tables = new Map<ClassName, Map<string, Rec>>(CLASSES.map((c) => [c, new Map()]));
  private events: XenEvent[] = [];
  private lastEventId = 0;
  private waiters = new Set<() => void>();
  /** Called after every change; the host uses it to persist and to react (e.g. VCPUs_params). */
  onChange: (cls: ClassName, ref: string, op: XenEvent['operation']) => void = () => undefined;

  table(cls: ClassName): Map<string, Rec> {
    const t = this.tables.get(cls);
    if (!t) throw new XenApiError('MESSAGE_METHOD_UNKNOWN', [cls]);
    return t;
  }

  add(cls: ClassName, rec: Rec, ref = newRef()): string {
    this.table(cls).set(ref, rec);
    this.emit(cls, ref, 'add');
    return ref;
  }

  has(cls: ClassName, ref: string): boolean {
    return this.table(cls).has(ref);
  }

  /** The stored record (mutable); HANDLE_INVALID when the ref is unknown. */
  raw(cls: ClassName, ref: string): Rec {
    const rec = this.table(cls).get(ref);
    if (!rec) throw new XenApiError('HANDLE_INVALID', [cls, ref]);
    return rec;
  }

  update(cls: ClassName, ref: string, patch: Rec): void {
    Object.assign(this.raw(cls, ref), patch);
    this.emit(cls, ref, 'mod');
  }

  remove(cls: ClassName, ref: string): void {
    if (this.table(cls).delete(ref)) this.emit(cls, ref, 'del');
  }

  /** The record as the API shows it: stored fields plus computed reverse links. */
  view(cls: ClassName, ref: string): Rec {
    const rec = { ...this.raw(cls, ref) };
    for (const [field, [child, back]] of Object.entries(REVERSE[cls] ?? {})) {
      rec[field] = [...this.table(child).entries()].filter(([, r]) => r[back] === ref).map(([r]) => r);
    }
    return rec;
  }

  refs(cls: ClassName): string[] {
    return [...this.table(cls).keys()];
  }

  byUuid(cls: ClassName, uuid: string): string {
    for (const [ref, rec] of this.table(cls)) if (rec.uuid === uuid) return ref;
    throw new XenApiError('UUID_INVALID', [cls, uuid]);
  }

  find(cls: ClassName, pred: (r: Rec) => boolean): string[] {
    return [...this.table(cls).entries()].filter(([, r]) => pred(r)).map(([ref]) => ref);
  }

  private emit(cls: ClassName, ref: string, operation: XenEvent['operation']): void {
    this.lastEventId++;
    this.events.push({ id: this.lastEventId, class: cls, operation, ref });
    if (this.events.length > 10_000) this.events = this.events.slice(-5_000);
    for (const wake of this.waiters) wake();
    this.onChange(cls, ref, operation);
  }

  get eventToken(): number {
    return this.lastEventId;
  }

  eventsSince(token: number, classes: Set<string>): XenEvent[] {
    const all = classes.has('*');
    // Keep the latest event per object: event.from reports each changed object once.
    const latest = new Map<string, XenEvent>();
    for (const e of this.events) {
      if (e.id > token && (all || classes.has(e.class) || classes.has(e.class.toLowerCase()))) latest.set(`${e.class}/${e.ref}`, e);
    }
    return [...latest.values()].sort((a, b) => a.id - b.id);
  }

  /** Resolves when any event is emitted or after timeoutMs. */
  waitForEvent(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }
}
