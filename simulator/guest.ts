// A running guest's memory: real bytes in 4 KiB pages, and a guest model that dirties them at a
// configured rate over a working set, walking it in order so that the number of distinct dirty
// pages after t seconds is min(D*t, W), the assumption of DESIGN section 5's formulas. Writes
// happen on the process's event loop, so a page is never half-written while the sender reads it.
import { createHash, randomFillSync } from 'node:crypto';

export const PAGE = 4096;
const TICK_MS = 10;

export interface GuestSettings {
  dirtyRateMiBps: number;
  /** Pages the guest writes to, from page 0; defaults to all of memory. */
  workingSetMiB?: number;
}

export class GuestMemory {
  readonly pages: number;
  readonly mem: Buffer;
  /** Dirty log (libxc's log-dirty bitmap), one byte per page; only kept while logging. */
  private dirty: Uint8Array | undefined;
  private dirtyCountValue = 0;
  private timer: NodeJS.Timeout | undefined;
  private cursor = 0;
  private carry = 0;
  private lastTick = 0;
  private generation = 0;
  /** Copy-on-write originals of pages written since startSnapshot (for the arrival checksum). */
  private cow: Map<number, Buffer> | undefined;
  settings: GuestSettings;
  /** Fraction of the configured rate the vCPU cap allows (1 = uncapped). */
  capFactor = 1;
  /** The domain's credit-scheduler cap, % of one vCPU (0 = uncapped), as `xl sched-credit2 -c` sets it. */
  cap = 0;
  /** vCPUs of the domain (the cap is spread over them). */
  vcpus = 1;
  /** Paused at the domain level (`xl pause` through the dom0 plugin), not through xapi. */
  domainPaused = false;
  /** Suspended for stop-and-copy by a migration: nothing but the migration may resume it. */
  suspended = false;

  /** Sets the domain's cap: the dirty rate becomes min(1, cap / (100 * vcpus)) of the configured one. */
  setCap(cap: number, vcpus = this.vcpus): void {
    this.catchUp();
    this.cap = cap;
    this.vcpus = Math.max(1, vcpus);
    this.capFactor = cap > 0 ? Math.min(1, cap / (100 * this.vcpus)) : 1;
  }

  constructor(memoryBytes: number, settings: GuestSettings, content?: Buffer) {
    this.pages = Math.ceil(memoryBytes / PAGE);
    this.mem = content ?? Buffer.allocUnsafe(this.pages * PAGE);
    if (!content) randomFillSync(this.mem);
    this.settings = settings;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }

  /** Bytes per second the guest actually dirties now. */
  get effectiveRateBytesPerS(): number {
    return this.settings.dirtyRateMiBps * 1024 * 1024 * this.capFactor;
  }

  private get workingSetPages(): number {
    const ws = this.settings.workingSetMiB;
    return Math.max(1, Math.min(this.pages, ws && ws > 0 ? Math.floor((ws * 1024 * 1024) / PAGE) : this.pages));
  }

  start(): void {
    if (this.timer) return;
    this.lastTick = performance.now();
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Applies the writes the guest would have made since its last tick. The migration loop calls it
   * between frames and before deciding on a round: a busy sender can hold the event loop longer
   * than a tick, and a real guest keeps running meanwhile.
   */
  catchUp(): void {
    if (this.timer) this.tick();
  }

  /** Dirties pages for the time elapsed since the last tick (not per tick: ticks can be late). */
  private tick(): void {
    const now = performance.now();
    const dt = (now - this.lastTick) / 1000;
    this.lastTick = now;
    const want = (this.effectiveRateBytesPerS * dt) / PAGE + this.carry;
    const n = Math.floor(want);
    this.carry = want - n;
    const ws = this.workingSetPages;
    for (let i = 0; i < n; i++) {
      this.cursor = (this.cursor + 1) % ws;
      this.writePage(this.cursor);
    }
  }

  private writePage(page: number): void {
    this.generation = (this.generation + 1) >>> 0;
    const base = page * PAGE;
    if (this.cow && !this.cow.has(page)) this.cow.set(page, Buffer.from(this.mem.subarray(base, base + PAGE)));
    // Change a few words spread over the page: enough for any lost page to change the checksum.
    this.mem.writeUInt32LE(this.generation, base);
    this.mem.writeUInt32LE(this.generation ^ page, base + 2048);
    this.mem.writeUInt32LE(page, base + PAGE - 4);
    if (this.dirty && this.dirty[page] === 0) {
      this.dirty[page] = 1;
      this.dirtyCountValue++;
    }
  }

  /** Starts the dirty log with every page clean (pre-copy's first round sends all pages anyway). */
  enableDirtyLog(): void {
    this.dirty = new Uint8Array(this.pages);
    this.dirtyCountValue = 0;
  }

  disableDirtyLog(): void {
    this.dirty = undefined;
    this.dirtyCountValue = 0;
  }

  get dirtyCount(): number {
    return this.dirtyCountValue;
  }

  /** Returns the pages dirtied since the last call and clears the log (libxc's peek-and-clean). */
  collectDirty(): Uint32Array {
    const d = this.dirty;
    if (!d) return new Uint32Array(0);
    const out = new Uint32Array(this.dirtyCountValue);
    let j = 0;
    for (let p = 0; p < d.length && j < out.length; p++) {
      if (d[p]) {
        out[j++] = p;
        d[p] = 0;
      }
    }
    this.dirtyCountValue = 0;
    return out.subarray(0, j);
  }

  /**
   * Freezes a logical copy of memory without stopping the guest: pages it writes from now on keep
   * their original content aside, so the checksum of memory as it was at this instant can be
   * computed later, off the critical path (a migrated VM resumes at once).
   */
  startSnapshot(): void {
    this.cow = new Map();
  }

  /** sha256 of memory as of startSnapshot(); ends the snapshot. */
  finishSnapshot(): string {
    const cow = this.cow ?? new Map<number, Buffer>();
    this.cow = undefined;
    const hash = createHash('sha256');
    let from = 0;
    for (const page of [...cow.keys()].sort((a, b) => a - b)) {
      if (page > from) hash.update(this.mem.subarray(from * PAGE, page * PAGE));
      hash.update(cow.get(page) as Buffer);
      from = page + 1;
    }
    if (from < this.pages) hash.update(this.mem.subarray(from * PAGE));
    return hash.digest('hex');
  }

  checksum(): string {
    return createHash('sha256').update(this.mem).digest('hex');
  }
}
