// QEMU pre-copy benchmark (DESIGN sections 5 and 10): two local QEMU processes (TCG) migrate the
// counting guest whose dirty rate D is a fraction 0, 0.3, 0.7 and 0.95 of the bandwidth B (QEMU's
// max-bandwidth), plain pre-copy, with auto-converge, and with post-copy switched on after the
// first full pass (once dirty-sync-count reaches 2, as Nova's libvirt driver did when post-copy was
// permitted). One JSON line per case: QEMU's own total time and downtime (query-migrate) beside
// M/B, M/(B-D) and the bytes M/(1-D/B), where M is the memory that holds data (the guest's region:
// QEMU sends the untouched rest as zero-page markers) and D is both the target and what was
// measured: the guest's own page-write counter over the time it ran on the source, and QEMU's
// dirty-pages-rate (when a sync reported one before any throttle). Beside M/(B-D), the time the
// geometric model gives when QEMU stops iterating at its downtime limit. The guest's delay loop is
// calibrated first (two delays, a straight line through the time per page). A case that has not
// completed after --timeout-s is cancelled and reported with converged: false. A table goes to stderr.
//   npx tsx bench/qemu-precopy.ts [--region-mib 32] [--bandwidth 32] [--ratios 0,0.3,0.7,0.95]
//     [--modes precopy,auto-converge,postcopy] [--downtime-limit-ms 300] [--timeout-s 30]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { freePort } from '../lib/ports';
import { createGuestDisk } from '../qemu/disk';
import { guestMemoryMiB, parseGuestCounters, PASS_COUNTER_ADDRESS, type GuestCounters, type GuestProgram } from '../qemu/guest';
import {
  cancelMigration,
  followMigration,
  MigrationTimeoutError,
  prepareIncoming,
  startMigration,
  startPostcopy,
  type MigrationProgress,
  type MigrationTuning,
} from '../qemu/migration';
import { QemuGuest } from '../qemu/process';
import { emit, round } from './report';

const MiB = 1024 * 1024;
const PAGE = 4096;
type Mode = 'precopy' | 'auto-converge' | 'postcopy';

let root = '';
let seq = 0;

async function startGuest(program: GuestProgram): Promise<QemuGuest> {
  const name = `g${seq++}`;
  const disk = join(root, `${name}.qcow2`);
  await createGuestDisk(disk, program, { sizeMiB: 2, dataMiB: 0 });
  return QemuGuest.start(join(root, name), { name, memoryMiB: Math.max(64, guestMemoryMiB(program)), disks: [{ node: 'disk0', path: disk, format: 'qcow2' }] });
}

async function counters(guest: QemuGuest): Promise<GuestCounters> {
  return parseGuestCounters(await guest.saveMemory(PASS_COUNTER_ADDRESS, 8, join(guest.stateDir, 'counters.bin')));
}

async function passCounter(guest: QemuGuest): Promise<number> {
  return (await counters(guest)).passes;
}

/**
 * Seconds per page written for a delay, from the guest's page-write counter over `windowMs`. The
 * region is the benchmark's own: under TCG a write to a page missing from the soft TLB costs more,
 * so the time per page depends on how many pages the guest cycles through.
 */
async function secondsPerPage(regionMiB: number, delayLoops: number, windowMs: number): Promise<number> {
  const guest = await startGuest({ regionMiB, delayLoops });
  try {
    // The first pass has no delay: measure after it.
    while ((await passCounter(guest)) < 1) await sleep(20);
    const c0 = await counters(guest);
    const t0 = performance.now();
    await sleep(windowMs);
    const c1 = await counters(guest);
    const seconds = (performance.now() - t0) / 1000;
    const pages = (c1.pageWrites - c0.pageWrites) >>> 0;
    if (pages < 100) throw new Error(`calibration: only ${pages} page writes in ${windowMs} ms at delay ${delayLoops}`);
    return seconds / pages;
  } finally {
    await guest.stop();
  }
}

/** The delay (loop iterations per page) for a dirty rate, from the line through two measurements. */
function delayFor(pagesPerSecond: number, fit: { base: number; perLoop: number }): number {
  if (pagesPerSecond <= 0) return 0xffffffff; // about a page a minute under TCG: no dirtying
  return Math.max(0, Math.round((1 / pagesPerSecond - fit.base) / fit.perLoop));
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

interface CaseResult {
  mode: Mode;
  ratio: number;
  converged: boolean;
  final: MigrationProgress;
  wallMs: number;
  dirtyRates: number[];
  /** Bytes per second the guest dirtied on the source, from its page-write counter, while it ran there. */
  guestDirtyRate: number;
  maxThrottle: number;
  postcopyAtMs: number | null;
  serialOk: boolean;
}

/** Page writes per second of a running guest, over `windowMs` (after its first pass). */
async function pageRate(guest: QemuGuest, windowMs: number): Promise<number> {
  while ((await passCounter(guest)) < 1) await sleep(20);
  const c0 = await counters(guest);
  const t0 = performance.now();
  await sleep(windowMs);
  const c1 = await counters(guest);
  return ((c1.pageWrites - c0.pageWrites) >>> 0) / ((performance.now() - t0) / 1000);
}

/**
 * A source guest dirtying close to `pagesPerSecond` now: the machine's load moves the delay loop's
 * speed, so the calibrated delay is checked on the guest itself and corrected up to three times.
 */
async function startTunedGuest(regionMiB: number, pagesPerSecond: number, fit: { base: number; perLoop: number }): Promise<{ guest: QemuGuest; program: GuestProgram }> {
  let delayLoops = delayFor(pagesPerSecond, fit);
  for (let attempt = 0; ; attempt++) {
    const program = { regionMiB, delayLoops };
    const guest = await startGuest(program);
    if (pagesPerSecond <= 0 || attempt === 3) return { guest, program };
    const rate = await pageRate(guest, 1500);
    if (Math.abs(rate / pagesPerSecond - 1) <= 0.1) return { guest, program };
    await guest.stop();
    // The delay dominates the time per page (the loop's fixed part is a few microseconds): scale
    // it by how far off the guest was, at most 4 times either way (a measurement taken while the
    // machine was swamped is not trusted further).
    delayLoops = Math.max(1, Math.round(delayLoops * Math.min(4, Math.max(0.25, rate / pagesPerSecond))));
  }
}

async function runCase(mode: Mode, ratio: number, source: QemuGuest, tuning: MigrationTuning, timeoutMs: number): Promise<CaseResult> {
  let destination: QemuGuest | null = null;
  try {
    destination = await QemuGuest.start(join(root, `${source.spec.name}-dst`), { ...source.spec, name: `${source.spec.name}-dst`, incoming: true });
    const uri = `tcp:127.0.0.1:${await freePort()}`;
    await prepareIncoming(destination.qmp, uri, tuning);
    // The region is full after the first pass; a moment more for the guest's steady rate.
    while ((await passCounter(source)) < 1) await sleep(20);
    await sleep(300);
    const dirtyRates: number[] = [];
    let maxThrottle = 0;
    let postcopyAtMs: number | null = null;
    const before = await counters(source);
    const t0 = performance.now();
    await startMigration(source.qmp, uri, tuning);
    let final: MigrationProgress;
    let converged = true;
    try {
      final = await followMigration(source.qmp, {
        timeoutMs,
        pollMs: 50,
        onProgress: async (p) => {
          if (p.dirtyPagesPerSecond && p.status === 'active' && (p.cpuThrottlePercent ?? 0) === 0) dirtyRates.push(p.dirtyPagesPerSecond * PAGE);
          maxThrottle = Math.max(maxThrottle, p.cpuThrottlePercent ?? 0);
          if (mode === 'postcopy' && postcopyAtMs === null && p.status === 'active' && (p.dirtySyncCount ?? 0) >= 2) {
            postcopyAtMs = performance.now() - t0;
            await startPostcopy(source.qmp);
          }
        },
      });
    } catch (err) {
      if (!(err instanceof MigrationTimeoutError) || err.last === null) throw err;
      converged = false;
      final = err.last;
      await cancelMigration(source.qmp);
    }
    const wallMs = performance.now() - t0;
    // The source's memory stops at the switch-over (pre-copy) or at the switch to post-copy: its
    // page writes since the start over the time it ran (QEMU's total time less the downtime).
    // Not converged: the guest ran on the source all along (until the cancel).
    const after = await counters(source);
    const ranMs = final.status === 'completed' && final.totalTimeMs ? (postcopyAtMs ?? final.totalTimeMs - (final.downtimeMs ?? 0)) : wallMs;
    const guestDirtyRate = (((after.pageWrites - before.pageWrites) >>> 0) * PAGE) / (ranMs / 1000);
    let serialOk = false;
    const moved = destination;
    if (final.status === 'completed') {
      // The guest goes on on the destination (a second pass counter reading above the first).
      const c0 = await passCounter(moved);
      const deadline = Date.now() + 10_000;
      while (!serialOk && Date.now() < deadline) {
        serialOk = (await passCounter(moved)) > c0 || ratio === 0;
        if (!serialOk) await sleep(50);
      }
    }
    return { mode, ratio, converged: converged && final.status === 'completed', final, wallMs, dirtyRates, guestDirtyRate, maxThrottle, postcopyAtMs, serialOk };
  } finally {
    await destination?.stop().catch(() => undefined);
    await source.stop().catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'region-mib': { type: 'string' },
      bandwidth: { type: 'string' },
      ratios: { type: 'string' },
      modes: { type: 'string' },
      'downtime-limit-ms': { type: 'string' },
      'timeout-s': { type: 'string' },
    },
  });
  const regionMiB = Number(values['region-mib'] ?? 32);
  const bandwidthMiBps = Number(values.bandwidth ?? 32);
  const ratios = (values.ratios ?? '0,0.3,0.7,0.95').split(',').map(Number);
  const modes = (values.modes ?? 'precopy,auto-converge,postcopy').split(',') as Mode[];
  const downtimeLimitMs = Number(values['downtime-limit-ms'] ?? 300);
  const timeoutMs = Number(values['timeout-s'] ?? 30) * 1000;
  root = await mkdtemp(join(tmpdir(), 'fqb-'));
  try {
    const lowDelay = 20_000;
    const highDelay = 200_000;
    const low = await secondsPerPage(regionMiB, lowDelay, 1500);
    const high = await secondsPerPage(regionMiB, highDelay, 1500);
    let fit = { base: low - ((high - low) / (highDelay - lowDelay)) * lowDelay, perLoop: (high - low) / (highDelay - lowDelay) };
    // On a loaded machine the two points can disagree; the loop is then taken as the whole cost.
    if (fit.base < 0 || fit.perLoop <= 0) fit = { base: 0, perLoop: high / highDelay };
    const perLoop = fit.perLoop;
    emit('qemu-precopy-calibration', { ns_per_loop: round(perLoop * 1e9, 3), base_us_per_page: round(fit.base * 1e6, 2), delays: [lowDelay, highDelay], us_per_page: [round(low * 1e6, 1), round(high * 1e6, 1)] });

    const M = regionMiB * MiB;
    const B = bandwidthMiBps * MiB;
    const rows: string[] = [];
    for (const ratio of ratios) {
      const pagesPerSecond = (ratio * B) / PAGE;
      for (const mode of modes) {
        const tuning: MigrationTuning = { maxBandwidthBytesPerSecond: B, downtimeLimitMs, autoConverge: mode === 'auto-converge', postcopy: mode === 'postcopy' };
        const { guest: source, program } = await startTunedGuest(regionMiB, pagesPerSecond, fit);
        const r = await runCase(mode, ratio, source, tuning, timeoutMs);
        const qemuD = median(r.dirtyRates);
        const measuredD = r.guestDirtyRate;
        const D = ratio * B;
        const expectedS = D < B ? M / (B - D) : null;
        // QEMU stops iterating once what is left fits in the downtime limit at the bandwidth it
        // measured: M(D/B)^n <= B*limit, so it sends M(1-(D/B)^n)/(1-D/B) before the stop.
        const cut = B * (downtimeLimitMs / 1000);
        const n = ratio === 0 ? 1 : ratio < 1 ? Math.max(1, Math.ceil(Math.log(cut / M) / Math.log(ratio))) : null;
        const modelS = n === null ? null : (M * (ratio === 0 ? 1 : (1 - ratio ** n) / (1 - ratio))) / B;
        const expectedMeasuredS = measuredD !== null && measuredD < B ? M / (B - measuredD) : null;
        const totalS = r.final.totalTimeMs === null ? null : r.final.totalTimeMs / 1000;
        const line = {
          mode,
          dirty_over_bandwidth: ratio,
          converged: r.converged,
          status: r.final.status,
          region_mib: regionMiB,
          memory_total_mib: round(r.final.memory_total / MiB, 1),
          bandwidth_mib_s: bandwidthMiBps,
          downtime_limit_ms: downtimeLimitMs,
          delay_loops: program.delayLoops,
          target_dirty_mib_s: round(D / MiB, 1),
          measured_dirty_mib_s: measuredD === null ? null : round(measuredD / MiB, 1),
          qemu_dirty_mib_s: qemuD === null ? null : round(qemuD / MiB, 1),
          qemu_total_time_s: totalS === null ? null : round(totalS, 3),
          qemu_downtime_ms: r.final.downtimeMs,
          qemu_setup_time_ms: r.final.setupTimeMs,
          wall_s: round(r.wallMs / 1000, 3),
          lower_bound_M_over_B_s: round(M / B, 3),
          expected_time_M_over_B_minus_D_s: expectedS === null ? null : round(expectedS, 3),
          expected_time_measured_D_s: expectedMeasuredS === null ? null : round(expectedMeasuredS, 3),
          time_ratio: expectedS === null || totalS === null ? null : round(totalS / expectedS, 3),
          expected_time_with_downtime_limit_s: modelS === null ? null : round(modelS, 3),
          expected_iterations_with_downtime_limit: n,
          bytes_transferred: r.final.memory_processed,
          expected_bytes_M_over_1_minus_D_over_B: D < B ? Math.round(M / (1 - D / B)) : null,
          precopy_bytes: r.final.precopyBytes,
          downtime_bytes: r.final.downtimeBytes,
          postcopy_bytes: r.final.postcopyBytes,
          dirty_sync_count: r.final.dirtySyncCount,
          max_cpu_throttle_percent: r.maxThrottle,
          postcopy_switch_at_s: r.postcopyAtMs === null ? null : round(r.postcopyAtMs / 1000, 3),
          guest_continued_on_destination: r.serialOk,
        };
        emit('qemu-precopy', line);
        rows.push(
          [mode.padEnd(13), String(ratio).padEnd(5), String(line.measured_dirty_mib_s ?? '-').padEnd(6), String(line.converged).padEnd(6),
            String(line.qemu_total_time_s ?? '-').padEnd(7), String(line.qemu_downtime_ms ?? '-').padEnd(6), String(line.expected_time_M_over_B_minus_D_s ?? '-').padEnd(7), String(line.expected_time_measured_D_s ?? '-').padEnd(7), String(line.expected_time_with_downtime_limit_s ?? '-').padEnd(7),
            String(line.time_ratio ?? '-').padEnd(6), String(round(line.bytes_transferred / MiB, 1)).padEnd(7), String(line.max_cpu_throttle_percent).padEnd(4)].join(' '),
        );
      }
    }
    process.stderr.write(
      `\nQEMU pre-copy, M=${regionMiB} MiB of data, B=${bandwidthMiBps} MiB/s, downtime limit ${downtimeLimitMs} ms\n` +
        `mode          D/B   D MiB/s conv   total_s down_ms M/(B-D) M/(B-Dm) model   ratio  sent_MiB thr%\n${rows.join('\n')}\n`,
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
