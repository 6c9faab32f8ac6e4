// Live migration of a QEMU guest through ferry's whole stack (issue 15, item 6): real Temporal, the
// conductor, two QEMU host agents (one pool, shared images), the liveMigration workflow started as
// the API would; the guest dirties its region at a fraction 0, 0.3, 0.7 and 0.95 of the hosts'
// migration bandwidth B (qemu.bandwidthMiBps: QEMU's max-bandwidth, Nova's
// live_migration_bandwidth), its delay loop calibrated and checked first on probe guests running
// the same program (qemu/dirty-rate.ts). One JSON line per case:
//   - ferry's figures: the run's total time (Temporal's start to close: checks, scheduling,
//     pre-live-migration, transfer, post steps), the time from `running` to `completed` in the
//     run's memo timeline (what the workflow saw of the transfer and the steps after it), and the
//     downtime ferry reports (its result's downtimeMs, what the API's metrics observe);
//   - QEMU's own figures, which the QEMU agent passes on from query-migrate at completion:
//     total-time (the result's transferMs), downtime, the bytes sent;
//   - M/B and M/(B−D), with M the guest's region (QEMU sends the untouched rest of its RAM as zero
//     pages), and M/(1−D/B) bytes.
// Pre-copy only (no auto-converge, no post-copy: bench/qemu-precopy.ts compares those on bare
// QEMU); a case that does not converge meets the completion timeout (abort: cancelled, source runs on).
//   npx tsx bench/qemu-live.ts [--region-mib 32] [--bandwidth 32] [--ratios 0,0.3,0.7,0.95] [--timeout-s 60]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { createQemuGuest, destroyQemuGuests } from '../activities/host/qemu/admin';
import { findHost } from '../lib/config';
import { startStack } from '../lib/stack';
import { calibrateDelay, tuneDelay } from '../qemu/dirty-rate';
import { inventoryWhen, listsInstance, startMigration } from '../test/e2e/helpers';
import type { MigrationOutcome } from '../workflows/outcome';
import { emit, round } from './report';

const MiB = 2 ** 20;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'region-mib': { type: 'string' }, bandwidth: { type: 'string' }, ratios: { type: 'string' }, 'timeout-s': { type: 'string' } } });
  const regionMiB = Number(values['region-mib'] ?? 32);
  const bandwidthMiBps = Number(values.bandwidth ?? 32);
  const ratios = (values.ratios ?? '0,0.3,0.7,0.95').split(',').map(Number);
  const timeoutS = Number(values['timeout-s'] ?? 60);
  const memoryMiB = regionMiB * 2;
  const M = regionMiB * MiB;
  const B = bandwidthMiBps * MiB;

  const probes = await mkdtemp(join(tmpdir(), 'fql-'));
  const stack = await startStack({
    hosts: ['qa', 'qb'].map((name) => ({ name, pool: 'q1', driver: 'qemu' as const, memoryMiB: 1024, qemu: { bandwidthMiBps } })),
    encryption: false,
    inventory: { reportSeconds: 5, staleSeconds: 60 },
    // The completion timeout per GiB of RAM bounds a case that does not converge (timeoutS for this guest).
    migration: { autoConverge: { enabled: false }, completionTimeoutPerGiB: Math.round((timeoutS * 1024) / memoryMiB), timeoutAction: 'abort' },
  });
  const rows: string[] = [];
  try {
    const fit = await calibrateDelay(probes, regionMiB);
    emit('qemu-live-calibration', { ns_per_loop: round(fit.perLoop * 1e9, 3), base_us_per_page: round(fit.base * 1e6, 2) });
    const from = 'qa';
    for (const ratio of ratios) {
      const D = ratio * B;
      const { delayLoops, measuredBytesPerSecond } = await tuneDelay(probes, regionMiB, D, fit);
      const guest = await createQemuGuest(findHost(stack.config, from), stack.config.hosts, { name: `live-${ratio}`, memoryMiB, regionMiB, delayLoops, diskMiB: 4, diskDataMiB: 0 });
      await inventoryWhen(stack, listsInstance(from, guest.uuid), 30_000);
      // The region is full after the guest's first pass (it has no delay): a moment for its steady rate.
      await sleep(1000);
      const handle = await startMigration(stack, { instanceUuid: guest.uuid });
      const outcome = (await handle.result()) as MigrationOutcome;
      const described = await handle.describe();
      const timeline = (described.memo?.timeline ?? {}) as Record<string, string>;
      const totalS = described.closeTime ? (described.closeTime.getTime() - described.startTime.getTime()) / 1000 : null;
      const runningS = timeline.running && timeline.completed ? (Date.parse(timeline.completed) - Date.parse(timeline.running)) / 1000 : null;
      const qemuTotalS = outcome.status === 'completed' ? outcome.transferMs / 1000 : null;
      const expectedS = D < B ? M / (B - D) : null;
      const measuredExpectedS = measuredBytesPerSecond < B ? M / (B - measuredBytesPerSecond) : null;
      const line = {
        dirty_over_bandwidth: ratio,
        status: outcome.status,
        message: outcome.message,
        source: outcome.sourceHost,
        destination: outcome.destHost,
        region_mib: regionMiB,
        memory_mib: memoryMiB,
        bandwidth_mib_s: bandwidthMiBps,
        delay_loops: delayLoops,
        target_dirty_mib_s: round(D / MiB, 1),
        measured_dirty_mib_s: round(measuredBytesPerSecond / MiB, 1),
        ferry_total_s: totalS === null ? null : round(totalS, 3),
        ferry_running_to_completed_s: runningS === null ? null : round(runningS, 3),
        ferry_downtime_ms: outcome.downtimeMs,
        qemu_total_time_s: qemuTotalS === null ? null : round(qemuTotalS, 3),
        qemu_downtime_ms: outcome.status === 'completed' ? outcome.downtimeMs : null,
        ferry_overhead_s: totalS === null || qemuTotalS === null ? null : round(totalS - qemuTotalS, 3),
        bytes_sent: outcome.bytesSent,
        lower_bound_M_over_B_s: round(M / B, 3),
        expected_time_M_over_B_minus_D_s: expectedS === null ? null : round(expectedS, 3),
        expected_time_measured_D_s: measuredExpectedS === null ? null : round(measuredExpectedS, 3),
        qemu_time_ratio: expectedS === null || qemuTotalS === null ? null : round(qemuTotalS / expectedS, 3),
        expected_bytes_M_over_1_minus_D_over_B: D < B ? Math.round(M / (1 - D / B)) : null,
      };
      emit('qemu-live', line);
      rows.push(
        [String(ratio).padEnd(5), String(line.measured_dirty_mib_s).padEnd(6), line.status.padEnd(10), String(line.ferry_total_s ?? '-').padEnd(8), String(line.ferry_running_to_completed_s ?? '-').padEnd(8),
          String(line.qemu_total_time_s ?? '-').padEnd(8), String(line.qemu_downtime_ms ?? '-').padEnd(7), String(line.expected_time_M_over_B_minus_D_s ?? '-').padEnd(8), String(line.qemu_time_ratio ?? '-').padEnd(6),
          String(round(line.bytes_sent / MiB, 1))].join(' '),
      );
      // Each case on a fresh guest on qa.
      for (const name of ['qa', 'qb']) await destroyQemuGuests(findHost(stack.config, name));
    }
  } finally {
    await stack.stop();
    await rm(probes, { recursive: true, force: true });
  }
  process.stderr.write(
    `\nQEMU live migration through ferry, M=${regionMiB} MiB of data in ${memoryMiB} MiB, B=${bandwidthMiBps} MiB/s, pre-copy\n` +
      `D/B   D MiB/s status     ferry_s  run→done qemu_s   down_ms M/(B-D)  ratio  sent_MiB\n${rows.join('\n')}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
