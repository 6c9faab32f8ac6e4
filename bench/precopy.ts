// Pre-copy physics benchmark (DESIGN section 5): for dirty rate over bandwidth D/B in 0, 0.3, 0.7
// and 0.95, live-migrates an M MiB VM whose guest dirties all of its memory at D, over a link of
// B (temporal.yaml's simulator.bandwidthMiBps unless --bandwidth), and prints one JSON line per
// case: bytes sent, total time and downtime, next to M/(1-D/B), M/(B-D) and the libxc downtime
// estimate M*(D/B)^rounds/B. A last line measures a 3-VM evacuation against sum(M)/B. First, the
// simulator's own fixed cost per migration: the task's duration for a 1 MiB idle VM minus M/B, for
// pool_migrate and a cross-pool migrate_send (median of several, seen by a client following the task).
//   npx tsx bench/precopy.ts [--memory-mib 256] [--bandwidth 256] [--max-iterations 5]
import { parseArgs } from 'node:util';
import { loadConfig } from '../lib/config';
import { simulatedHostConfig, startSimulators } from '../simulator/cluster';
import { XenApiClient } from '../xenapi/client';
import { waitForTask } from '../xenapi/task';

const MiB = 1024 * 1024;


async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { 'memory-mib': { type: 'string' }, bandwidth: { type: 'string' }, 'max-iterations': { type: 'string' }, ratios: { type: 'string' } },
  });
  const memoryMiB = Number(values['memory-mib'] ?? 256);
  let bandwidth = Number(values.bandwidth ?? NaN);
  if (!Number.isFinite(bandwidth)) {
    try {
      bandwidth = loadConfig().simulator.bandwidthMiBps;
    } catch {
      bandwidth = 256;
    }
  }
  const maxIterations = Number(values['max-iterations'] ?? 5);
  const ratios = (values.ratios ?? '0,0.3,0.7,0.95').split(',').map(Number);
  const password = 'bench';
  const hosts = [
    await simulatedHostConfig('bench-src', 'bench', { memoryMiB: 8192 }),
    await simulatedHostConfig('bench-dst', 'bench', { memoryMiB: 8192 }),
    await simulatedHostConfig('bench-other', 'bench-other', { memoryMiB: 8192 }),
  ];
  const cluster = await startSimulators({ hosts, bandwidthMiBps: bandwidth, password, maxIterations, logDir: process.env.FERRY_SIM_LOG_DIR });
  try {
    const src = cluster.host('bench-src');
    const xa = new XenApiClient({ url: src.xenapiUrl, user: 'root', password, timeoutMs: 60_000 });
    const dst = (await xa.getByNameLabel('host', 'bench-dst'))[0] as string;
    const M = memoryMiB * MiB;
    const B = bandwidth * MiB;
    // Warm-up, not reported: the first migration of a fresh process pays for JIT compilation.
    const warm = await src.admin.createVm({ nameLabel: 'warm-up', memoryMiB: 64, sr: 'shared' });
    await waitForTask(xa, await xa.call<string>('Async.VM.pool_migrate', warm.ref, dst, {}));

    // The simulator's fixed cost: a 1 MiB VM that dirties nothing, task duration minus M/B.
    const xo = new XenApiClient({ url: cluster.host('bench-other').xenapiUrl, user: 'root', password, timeoutMs: 60_000 });
    const other = (await xo.getByNameLabel('host', 'bench-other'))[0] as string;
    const otherNet = (await xo.call<string[]>('network.get_all'))[0] as string;
    const runs = 9;
    const kinds: Record<string, (ref: string) => Promise<{ task: string; cleanup: (moved: string) => Promise<void> }>> = {
      pool_migrate: async (ref) => ({
        task: await xa.call<string>('Async.VM.pool_migrate', ref, dst, {}),
        cleanup: async () => {
          await xa.call('VM.hard_shutdown', ref);
          await xa.call('VM.destroy', ref);
        },
      }),
      migrate_send: async (ref) => {
        const token = await xo.call<Record<string, string>>('host.migrate_receive', other, otherNet, {});
        const vifs = (await xa.getRecord('VM', ref)).VIFs;
        return {
          task: await xa.call<string>('Async.VM.migrate_send', ref, token, true, {}, Object.fromEntries(vifs.map((v) => [v, otherNet])), {}),
          cleanup: async (moved) => {
            await xo.call('VM.hard_shutdown', moved);
            await xo.call('VM.destroy', moved);
          },
        };
      },
    };
    for (const [kind, start] of Object.entries(kinds)) {
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) {
        const { ref } = await src.admin.createVm({ nameLabel: `fixed-${kind}-${i}`, memoryMiB: 1, sr: 'shared' });
        const t0 = performance.now();
        const { task, cleanup } = await start(ref);
        const moved = await waitForTask(xa, task);
        samples.push(performance.now() - t0 - (MiB / B) * 1000);
        await cleanup(moved || ref);
      }
      samples.sort((a, b) => a - b);
      const ms = samples[Math.floor(samples.length / 2)] as number;
      process.stdout.write(
        `${JSON.stringify({ bench: 'simulator-fixed-cost', kind, ms: +ms.toFixed(1), memory_mib: 1, bandwidth_mib_s: bandwidth, runs, min_ms: +(samples[0] as number).toFixed(1), max_ms: +(samples.at(-1) as number).toFixed(1) })}\n`,
      );
    }
    for (const r of ratios) {
      const { ref } = await src.admin.createVm({ nameLabel: `bench-${r}`, memoryMiB, dirtyRateMiBps: r * bandwidth, workingSetMiB: memoryMiB, sr: 'shared' });
      // Let the guest reach its steady dirtying before migrating.
      await new Promise((res) => setTimeout(res, 200));
      const task = await xa.call<string>('Async.VM.pool_migrate', ref, dst, {});
      await waitForTask(xa, task);
      // xapi's task shows only progress: the figures come from the source's admin endpoint.
      const fig = (await src.admin.migrations()).find((m) => m.taskRef === task);
      if (!fig) throw new Error(`no figures for migration task ${task}`);
      const rounds = fig.iteration;
      const totalS = Number(fig.totalMs) / 1000;
      const expectedTimeS = r < 1 ? M / (B - r * B) : null;
      const line = {
        bench: 'precopy',
        memory_mib: memoryMiB,
        bandwidth_mib_s: bandwidth,
        dirty_over_bandwidth: r,
        max_iterations: maxIterations,
        rounds,
        bytes_sent: fig.bytesSent,
        expected_bytes_M_over_1_minus_D_over_B: r < 1 ? Math.round(M / (1 - r)) : null,
        bytes_ratio: r < 1 ? +(fig.bytesSent / (M / (1 - r))).toFixed(3) : null,
        total_s: +totalS.toFixed(3),
        lower_bound_M_over_B_s: +(M / B).toFixed(3),
        expected_time_M_over_B_minus_D_s: expectedTimeS === null ? null : +expectedTimeS.toFixed(3),
        time_ratio: expectedTimeS === null ? null : +(totalS / expectedTimeS).toFixed(3),
        downtime_ms: Number(fig.downtimeMs),
        expected_downtime_ms: +(((M * r ** rounds) / B) * 1000).toFixed(1),
        measured_dirty_rate_mib_s: +(fig.dirtyRateBytesPerS / MiB).toFixed(1),
      };
      process.stdout.write(`${JSON.stringify(line)}\n`);
      // One pool database: the VM keeps its ref on the destination.
      await xa.call('VM.hard_shutdown', ref);
      await xa.call('VM.destroy', ref);
    }

    // Evacuation: n idle VMs at once over the one link; makespan >= sum(M)/B.
    const n = 3;
    const evacMiB = Math.max(16, Math.round(memoryMiB / 4));
    const refs: string[] = [];
    for (let i = 0; i < n; i++) refs.push((await src.admin.createVm({ nameLabel: `evac-${i}`, memoryMiB: evacMiB, sr: 'shared' })).ref);
    const started = performance.now();
    await Promise.all(refs.map(async (ref) => waitForTask(xa, await xa.call<string>('Async.VM.pool_migrate', ref, dst, {}))));
    const makespan = (performance.now() - started) / 1000;
    const bound = (n * evacMiB * MiB) / B;
    process.stdout.write(
      `${JSON.stringify({ bench: 'evacuate', vms: n, memory_mib_each: evacMiB, bandwidth_mib_s: bandwidth, makespan_s: +makespan.toFixed(3), lower_bound_sum_M_over_B_s: +bound.toFixed(3), ratio: +(makespan / bound).toFixed(3) })}\n`,
    );
  } finally {
    await cluster.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
