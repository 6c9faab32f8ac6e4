// The simulator's object database: one table per XenAPI class, refs as keys, and what event.from
// needs (events.ts): like xapi's database (ocaml/database/db_cache_types.ml), every row carries the
// generation that created it and the one that last modified it, a deleted row leaves a tombstone,
// and one generation counter orders every change of the pool. Reverse links (VM.VBDs, SR.VDIs,
// host.resident_VMs, ...) are computed when a record is read, so they can never disagree with the
// forward links.
import { XenApiError } from '../xenapi/errors';
import { newRef } from './ids';

export type Rec = Record<string, unknown>;
export const CLASSES = ['pool', 'host', 'host_metrics', 'network', 'PIF', 'SR', 'PBD', 'VDI', 'VBD', 'VM', 'VIF', 'task'] as const;
export type ClassName = (typeof CLASSES)[number];

export type ChangeOp = 'add' | 'mod' | 'del';

/** A row's generations: when it was created and last modified. */
export interface RowStat {
  created: number;
  modified: number;
}

/** A deleted row, kept so that event.from can report its deletion. */
export interface Tombstone {
  ref: string;
  created: number;
  deleted: number;
}

/** Tombstones kept per class (the oldest go first). */
const KEEP_TOMBSTONES = 10_000;

/** Reverse links: class -> field -> [child class, child's field that points back]. */
const REVERSE: Partial<Record<ClassName, Record<string, [ClassName, string]>>> = {
  VM: { VBDs: ['VBD', 'VM'], VIFs: ['VIF', 'VM'], snapshots: ['VM', 'snapshot_of'] },
  VDI: { VBDs: ['VBD', 'VDI'], snapshots: ['VDI', 'snapshot_of'] },
  SR: { VDIs: ['VDI', 'SR'], PBDs: ['PBD', 'SR'] },
  host: { resident_VMs: ['VM', 'resident_on'], PIFs: ['PIF', 'host'], PBDs: ['PBD', 'host'] },
  network: { VIFs: ['VIF', 'network'], PIFs: ['PIF', 'network'] },
};

interface Waiter {
  matches: (cls: ClassName, ref: string) => boolean;
  wake: () => void;
}

export class Store {
  private readonly tables = new Map<ClassName, Map<string, Rec>>(CLASSES.map((c) => [c, new Map()]));
  private readonly stats = new Map<ClassName, Map<string, RowStat>>(CLASSES.map((c) => [c, new Map()]));
  private readonly tombstones = new Map<ClassName, Tombstone[]>(CLASSES.map((c) => [c, []]));
  private gen = 0;
  private readonly waiters = new Set<Waiter>();
  /** Called after every change; the host uses it to persist and to react (e.g. VCPUs_params). */
  onChange: (cls: ClassName, ref: string, op: ChangeOp) => void = () => undefined;

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

  private emit(cls: ClassName, ref: string, op: ChangeOp): void {
    const gen = ++this.gen;
    const stats = this.stats.get(cls) as Map<string, RowStat>;
    if (op === 'add') stats.set(ref, { created: gen, modified: gen });
    else if (op === 'mod') {
      const st = stats.get(ref);
      if (st) st.modified = gen;
    } else {
      const tomb = this.tombstones.get(cls) as Tombstone[];
      tomb.push({ ref, created: stats.get(ref)?.created ?? 0, deleted: gen });
      if (tomb.length > KEEP_TOMBSTONES) tomb.splice(0, tomb.length - KEEP_TOMBSTONES);
      stats.delete(ref);
    }
    for (const w of [...this.waiters]) if (w.matches(cls, ref)) w.wake();
    this.onChange(cls, ref, op);
  }

  /** The generation of the latest change (xapi's database manifest generation). */
  get generation(): number {
    return this.gen;
  }

  /** The generations of a live row. */
  stat(cls: ClassName, ref: string): RowStat | undefined {
    return this.stats.get(cls)?.get(ref);
  }

  /** Every live row of the class with its generations. */
  rowStats(cls: ClassName): IterableIterator<[string, RowStat]> {
    return (this.stats.get(cls) as Map<string, RowStat>).entries();
  }

  /** Rows of the class deleted after generation `since`. */
  deletedSince(cls: ClassName, since: number): Tombstone[] {
    return (this.tombstones.get(cls) as Tombstone[]).filter((t) => t.deleted > since);
  }

  /**
   * Resolves when a change that `matches` selects happens, when wakeAll() is called, or after
   * timeoutMs (false then).
   */
  waitForChange(matches: Waiter['matches'], timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const finish = (changed: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(changed);
      };
      const waiter: Waiter = { matches, wake: () => finish(true) };
      const timer = setTimeout(() => finish(false), Math.max(0, timeoutMs));
      this.waiters.add(waiter);
    });
  }

  /** Wakes every waiter (a session was deleted: its event.from calls must fail now). */
  wakeAll(): void {
    for (const w of [...this.waiters]) w.wake();
  }
}
