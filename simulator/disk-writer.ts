// A running guest's disk writes: at the VM's configured rate (other_config sim_disk_write_mibps,
// MiB/s, 0 = none) it writes whole 64 KiB blocks of fresh random bytes into each of its disks in
// turn, walking each disk (or its first sim_disk_working_set_mib MiB) from its start, round and round, through the disk's chain (vdi-chain.ts): after a
// snapshot the writes land in the VM's copy-on-write leaf, so the leaf has something to carry.
// The chain is opened for each batch of writes, so a snapshot (which renames the disk's file into
// the new parent) is always followed.
import { randomFillSync } from 'node:crypto';
import type { SimPool } from './pool';
import { COW_BLOCK } from './vdi-chain';

const TICK_MS = 50;

export class DiskWriter {
  private timer: NodeJS.Timeout | undefined;
  private lastTick = 0;
  private carry = 0;
  private readonly cursors = new Map<string, number>();
  private turn = 0;
  /** Bytes written since the domain started. */
  bytesWritten = 0;
  rateMiBps = 0;
  /** The first MiB of each disk the guest writes to (other_config sim_disk_working_set_mib); 0 = all of it. */
  workingSetMiB = 0;

  constructor(
    private readonly pool: SimPool,
    private readonly vmRef: string,
    /** Whether the guest's vCPUs run now (not paused, not suspended for a migration's stop-and-copy). */
    private readonly active: () => boolean,
  ) {}

  start(): void {
    if (this.timer) return;
    this.lastTick = performance.now();
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = performance.now();
    const dt = (now - this.lastTick) / 1000;
    this.lastTick = now;
    if (this.rateMiBps <= 0 || !this.active()) {
      this.carry = 0;
      return;
    }
    const want = (this.rateMiBps * 1024 * 1024 * dt) / COW_BLOCK + this.carry;
    const blocks = Math.floor(want);
    this.carry = want - blocks;
    if (blocks > 0) this.writeBlocks(blocks);
  }

  /** Writes `n` blocks spread over the VM's disks (round robin); a disk that cannot be opened is skipped. */
  writeBlocks(n: number): void {
    const s = this.pool.store;
    const vdis = s
      .find('VBD', (r) => r.VM === this.vmRef && r.type !== 'CD' && r.mode !== 'RO')
      .map((vbd) => String(s.raw('VBD', vbd).VDI))
      .filter((vdi) => s.has('VDI', vdi));
    if (!vdis.length) return;
    const perDisk = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const vdi = vdis[this.turn++ % vdis.length] as string;
      perDisk.set(vdi, (perDisk.get(vdi) ?? 0) + 1);
    }
    const buf = Buffer.allocUnsafe(COW_BLOCK);
    for (const [vdiRef, count] of perDisk) {
      const rec = s.raw('VDI', vdiRef);
      const ws = this.workingSetMiB > 0 ? Math.floor((this.workingSetMiB * 1024 * 1024) / COW_BLOCK) : Infinity;
      const blocks = Math.min(ws, Math.floor(Number(rec.virtual_size) / COW_BLOCK));
      if (blocks < 1) continue;
      let chain;
      try {
        chain = this.pool.openChain(rec, true); // once per batch: a snapshot in between is followed
      } catch {
        continue;
      }
      try {
        for (let i = 0; i < count; i++) {
          const block = ((this.cursors.get(vdiRef) ?? -1) + 1) % blocks;
          this.cursors.set(vdiRef, block);
          randomFillSync(buf);
          chain.write(buf, block * COW_BLOCK);
          this.bytesWritten += COW_BLOCK;
        }
      } finally {
        chain.close();
      }
    }
  }
}
