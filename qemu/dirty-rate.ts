// The counting guest's dirty rate as a number of bytes per second: its delay loop calibrated on this
// machine (two delays, a straight line through the time per page written), then checked on a guest
// that runs the very program and corrected, because the machine's load moves the loop's speed.
// Measured through the guest's own page-write counter (QMP pmemsave of 0x504), so it needs guests
// of its own: a guest an agent manages has the agent as its one QMP client.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGuestDisk } from './disk';
import { guestMemoryMiB, parseGuestCounters, PASS_COUNTER_ADDRESS, type GuestCounters, type GuestProgram } from './guest';
import { QemuGuest } from './process';

const PAGE = 4096;

/** Seconds per page written: fixed part, and per delay-loop iteration. */
export interface DelayFit {
  base: number;
  perLoop: number;
}

let seq = 0;

async function startProbe(root: string, program: GuestProgram): Promise<QemuGuest> {
  const name = `probe${seq++}`;
  const disk = join(root, `${name}.qcow2`);
  await createGuestDisk(disk, program, { sizeMiB: 2, dataMiB: 0 });
  return QemuGuest.start(join(root, name), { name, memoryMiB: Math.max(64, guestMemoryMiB(program)), disks: [{ node: 'disk0', path: disk, format: 'qcow2' }] });
}

async function counters(guest: QemuGuest): Promise<GuestCounters> {
  return parseGuestCounters(await guest.saveMemory(PASS_COUNTER_ADDRESS, 8, join(guest.stateDir, 'counters.bin')));
}

/** Page writes per second of a running guest over `windowMs`, after its first pass (which has no delay). */
export async function pageRate(guest: QemuGuest, windowMs: number): Promise<number> {
  while ((await counters(guest)).passes < 1) await sleep(20);
  const c0 = await counters(guest);
  const t0 = performance.now();
  await sleep(windowMs);
  const c1 = await counters(guest);
  return ((c1.pageWrites - c0.pageWrites) >>> 0) / ((performance.now() - t0) / 1000);
}

/** The line through the time per page at two delays (the region matters: TCG's soft TLB). */
export async function calibrateDelay(root: string, regionMiB: number, delays: [number, number] = [20_000, 200_000]): Promise<DelayFit> {
  const perPage: number[] = [];
  for (const delayLoops of delays) {
    const guest = await startProbe(root, { regionMiB, delayLoops });
    try {
      const rate = await pageRate(guest, 1500);
      if (rate * 1.5 < 100) throw new Error(`calibration: hardly any page writes at delay ${delayLoops}`);
      perPage.push(1 / rate);
    } finally {
      await guest.stop();
    }
  }
  const [low, high] = perPage as [number, number];
  const perLoop = (high - low) / (delays[1] - delays[0]);
  const base = low - perLoop * delays[0];
  // On a loaded machine the two points can disagree; the loop is then taken as the whole cost.
  return base < 0 || perLoop <= 0 ? { base: 0, perLoop: high / delays[1] } : { base, perLoop };
}

/**
 * The delay that makes the guest dirty about `bytesPerSecond`, checked on a probe running that
 * program and corrected up to three times; answers it with the rate the last probe measured.
 */
export async function tuneDelay(root: string, regionMiB: number, bytesPerSecond: number, fit: DelayFit): Promise<{ delayLoops: number; measuredBytesPerSecond: number }> {
  // About a page a minute under TCG: no dirtying.
  if (bytesPerSecond <= 0) return { delayLoops: 0xffffffff, measuredBytesPerSecond: 0 };
  const pagesPerSecond = bytesPerSecond / PAGE;
  let delayLoops = Math.max(0, Math.round((1 / pagesPerSecond - fit.base) / fit.perLoop));
  for (let attempt = 0; ; attempt++) {
    const guest = await startProbe(root, { regionMiB, delayLoops });
    let rate: number;
    try {
      rate = await pageRate(guest, 1500);
    } finally {
      await guest.stop();
    }
    if (Math.abs(rate / pagesPerSecond - 1) <= 0.1 || attempt === 3) return { delayLoops, measuredBytesPerSecond: rate * PAGE };
    // The delay dominates the time per page: scale it by how far off the guest was, at most 4 times either way.
    delayLoops = Math.max(1, Math.round(delayLoops * Math.min(4, Math.max(0.25, rate / pagesPerSecond))));
  }
}
