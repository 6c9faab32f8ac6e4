// A running guest's memory: real bytes in 4 KiB pages, and a guest model that dirties them at a
// configured rate over a working set, walking it in order so that the number of distinct dirty
// pages after t seconds is min(D*t, W), the assumption of DESIGN section 5's formulas. Writes
// happen on the process's event loop, so a page is never half-written while the sender reads it.
// Memory is shared (SharedArrayBuffer) so that its checksum can be computed off the event loop.
import { randomFillSync } from 'node:crypto';
import { sha256, sha256Off, sharedBuffer } from './hasher';

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
  /** A checksum of memory being computed off the event loop: the guest's writes wait for it. */
  private hashing: { value?: string } | undefined;
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
    this.mem = content ?? sharedBuffer(this.pages * PAGE);
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
    if (this.timer) this.tick(true);
  }

  /**
   * Dirties pages for the time elapsed since the last tick (not per tick: ticks can be late). While
   * a checksum of memory runs off the event loop, the timer's ticks wait (the next one catches up
   * on the whole time); a catch-up that cannot wait (a migration reading memory, a cap change)
   * computes the checksum here first.
   */
  private tick(urgent = false): void {
    if (this.hashing) {
      if (this.hashing.value === undefined && !urgent) return;
      this.hashing.value ??= sha256(this.mem);
      this.hashing = undefined;
    }
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
   * sha256 of memory as it is now, computed off the event loop (a migrated VM resumes at once and
   * the process goes on): the guest's writes wait until it is known (tick above). Returns a getter.
   */
  snapshotChecksum(): () => Promise<string> {
    const job: { value?: string } = {};
    this.hashing = job;
    // Should the worker fail, memory is still as it was (the writes wait): hash it here.
    const off = sha256Off(this.mem).catch(() => sha256(this.mem)).then((hash) => {
      job.value ??= hash;
      if (this.hashing === job) this.hashing = undefined;
      return job.value;
    });
    return () => (job.value !== undefined ? Promise.resolve(job.value) : off);
  }

  checksum(): string {
    return sha256(this.mem);
  }
}
