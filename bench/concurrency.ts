// 20 live migrations requested at once across 8 hosts, under the concurrency limits of temporal.yaml
// (migration.limits: outbound and inbound per host, cluster-wide), through the whole stack: the
// makespan (first request to last result) over the lower bound that the physics of DESIGN section 5
// and the limits allow.
//
// The cluster: 4 pools of 2 hosts (h0 h1 | h2 h3 | h4 h5 | h6 h7), each host's outbound link B
// (simulator.bandwidthMiBps, 32 MiB/s here; the simulator paces each host's outgoing link and not
// the receiving side). Migration i (0..19) leaves host s = i mod 8 with an idle 64 MiB guest (D = 0,
// so pre-copy sends each page once): an even s to its pool partner over shared storage
// (pool_migrate, M bytes), an odd s to host s+3 mod 8 in another pool with a 16 MiB local disk
// (migrate_send, M + disk bytes). Every destination is named, so the bound does not depend on the
// scheduler's choices. Hosts 0-3 send 3 VMs, hosts 4-7 send 2; each host receives 2 or 3.
//
// Lower bound. Transfer i alone takes t_i = bytes_i / B. With N_out outbound slots per host, N_in
// inbound slots per host and K in the cluster:
//   makespan >= max( max_h sum_{i from h} t_i            a host's link sends one byte at a time,
//                                                        whatever N_out (DESIGN 5: evacuation >= sum(M)/B)
//                  , max_h sum_{i to h} t_i / N_in        at most N_in transfers into h at once
//                  , sum_i t_i / K                        at most K transfers at once
//                  , max_i t_i )                          the longest one
// Each term is a bound for any schedule; the largest is printed with its name. With 1/2/5 limits and
// the sizes above the cluster term binds: 45 s of transfer over 5 slots = 9 s. The same bound with
// each transfer's measured time (the simulator's figures) instead of bytes/B is printed too: the
// gap between the two is the simulator's, the rest is ferry's: each migration holds its slot for
// part of its orchestration too, not only its transfer (meanSlotsHeld against
// meanConcurrentTransfers), and a freed slot takes a moment to reach the next migration in the queue
// (meanSlotsHeld against the cluster limit).
//   node --import tsx bench/concurrency.ts [--bandwidth 32] [--memory-mib 64] [--disk-mib 16]
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import { loadConfig } from '../lib/config';
import { startStack, type Stack, type StackHost } from '../lib/stack';
import { MIGRATION_SLOTS_WORKFLOW_ID, slotsQuery } from '../workflows/definitions';
import type { MigrationOutcome } from '../workflows/outcome';
import { eventMs, lastTransfer, startMigration } from './migrations';
import { emit, round, runBench } from './report';

const HOSTS = 8;
const MIGRATIONS = 20;

interface Planned {
  source: string;
  dest: string;
  kind: 'pool_migrate' | 'migrate_send';
  bytes: number;
}

function plan(memoryMiB: number, diskMiB: number): Planned[] {
  const MiB = 2 ** 20;
  return Array.from({ length: MIGRATIONS }, (_, i) => {
    const s = i % HOSTS;
    const samePool = s % 2 === 0;
    return {
      source: `h${s}`,
      dest: `h${samePool ? s + 1 : (s + 3) % HOSTS}`,
      kind: samePool ? 'pool_migrate' : 'migrate_send',
      bytes: (memoryMiB + (samePool ? 0 : diskMiB)) * MiB,
    };
  });
}

interface Bound {
  seconds: number;
  binding: string;
  terms: Record<string, number>;
}

function lowerBound(migrations: Planned[], seconds: number[], limits: { inboundPerHost: number; cluster: number }): Bound {
  const sumBy = (key: (m: Planned) => string) => {
    const m = new Map<string, number>();
    migrations.forEach((x, i) => m.set(key(x), (m.get(key(x)) ?? 0) + (seconds[i] as number)));
    return Math.max(...m.values());
  };
  const terms = {
    'outbound link of one host': sumBy((m) => m.source),
    'inbound slots of one host': sumBy((m) => m.dest) / limits.inboundPerHost,
    'cluster slots': seconds.reduce((a, b) => a + b, 0) / limits.cluster,
    'longest transfer': Math.max(...seconds),
  };
  const [binding, value] = Object.entries(terms).sort((a, b) => b[1] - a[1])[0] as [string, number];
  return { seconds: value, binding, terms: Object.fromEntries(Object.entries(terms).map(([k, v]) => [k, round(v, 2)])) };
}

/** The migrationSlots entity: in the system namespace (version 3), else the migrations' own. */
function slotsEntity(stack: Stack) {
  const temporalConfig = stack.config.temporal as { namespace: string; systemNamespace?: string };
  const client = new Client({ connection: stack.client.connection, namespace: temporalConfig.systemNamespace ?? temporalConfig.namespace, dataConverter: stack.client.options.dataConverter });
  return client.workflow.getHandle(MIGRATION_SLOTS_WORKFLOW_ID);
}

/** Highest number of intervals open at once. */
function maxOverlap(intervals: [number, number][]): number {
  const points = intervals.flatMap(([a, b]): [number, number][] => [
    [a, 1],
    [b, -1],
  ]);
  points.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let open = 0;
  let max = 0;
  for (const [, d] of points) max = Math.max(max, (open += d));
  return max;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { bandwidth: { type: 'string', default: '32' }, 'memory-mib': { type: 'string', default: '64' }, 'disk-mib': { type: 'string', default: '16' } },
  });
  const bandwidthMiBps = Number(values.bandwidth);
  const memoryMiB = Number(values['memory-mib']);
  const diskMiB = Number(values['disk-mib']);
  const limits = loadConfig().migration.limits;
  const hosts: StackHost[] = Array.from({ length: HOSTS }, (_, i) => ({ name: `h${i}`, pool: `pool-${Math.floor(i / 2)}` }));
  const migrations = plan(memoryMiB, diskMiB);
  const stack = await startStack({ hosts, bandwidthMiBps, migration: { limits } });
  try {
    const vms: string[] = [];
    for (const [i, m] of migrations.entries()) {
      const shared = m.kind === 'pool_migrate';
      const vm = await stack.sims.host(m.source).admin.createVm({
        nameLabel: `bench-concurrency-${i}`,
        memoryMiB,
        sr: shared ? 'shared' : 'local',
        diskMiB: shared ? [] : [diskMiB],
      });
      vms.push(vm.uuid);
    }
    // Warm-up on a VM of its own, not counted: a fresh slots entity holds its grants for a few
    // seconds (it asks running migrations to re-assert their leases) and the first run pays for JIT.
    const warm = await stack.sims.host('h0').admin.createVm({ nameLabel: 'bench-concurrency-warm-up', memoryMiB: 1, sr: 'shared' });
    const warmRun = await startMigration(stack.client, stack.config.taskQueues.conductor, { instanceUuid: warm.uuid, host: 'h1' });
    await warmRun.result();

    // The slots in use, sampled from the entity every 100 ms while the migrations run.
    const entity = slotsEntity(stack);
    const held: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const state = await entity.query(slotsQuery).catch(() => null);
        if (state) held.push(state.holders.length);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const started = performance.now();
    const handles = await Promise.all(
      migrations.map((m, i) => startMigration(stack.client, stack.config.taskQueues.conductor, { instanceUuid: vms[i] as string, host: m.dest })),
    );
    const ends = await Promise.all(
      handles.map((h, i) =>
        h.result().then(
          (o: MigrationOutcome) => (o.status === 'completed' ? null : `${migrations[i]?.source} -> ${migrations[i]?.dest}: ${o.status}: ${o.message}`),
          (err: Error) => `${migrations[i]?.source} -> ${migrations[i]?.dest}: ${err.message}: ${(err.cause as Error | undefined)?.message ?? ''}`,
        ),
      ),
    );
    const makespanS = (performance.now() - started) / 1000;
    sampling = false;
    await sampler;
    const failed = ends.filter((e) => e !== null);
    if (failed.length > 0) {
      // A figure of a run where some did not complete is no figure: say which and why, and fail.
      emit('concurrency', { migrations: MIGRATIONS, hosts: HOSTS, limits, makespanS: round(makespanS, 2), completed: MIGRATIONS - failed.length, failed });
      throw new Error(`${failed.length} migrations did not complete: ${failed.join('; ')}`);
    }

    const B = bandwidthMiBps * 2 ** 20;
    const ideal = lowerBound(migrations, migrations.map((m) => m.bytes / B), limits);
    const measuredS: number[] = [];
    for (const [i, m] of migrations.entries()) measuredS.push(Number((await lastTransfer(stack.sims.host(m.source).admin, vms[i] as string)).totalMs) / 1000);
    const measured = lowerBound(migrations, measuredS, limits);
    // The transfers' intervals (migrateSend scheduled to closed) from each run's history.
    const intervals: [number, number][] = [];
    for (const h of handles) {
      const events = (await h.fetchHistory()).events ?? [];
      const sent = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'migrateSend');
      const closed = events.find((e) => e.activityTaskCompletedEventAttributes && Number(e.activityTaskCompletedEventAttributes.scheduledEventId) === Number(sent?.eventId));
      if (sent && closed) intervals.push([eventMs(sent.eventTime), eventMs(closed.eventTime)]);
    }
    emit('concurrency', {
      migrations: MIGRATIONS,
      hosts: HOSTS,
      limits,
      bandwidthMiBps,
      memoryMiB,
      diskMiB,
      makespanS: round(makespanS, 2),
      lowerBoundS: round(ideal.seconds, 2),
      ratio: round(makespanS / ideal.seconds, 2),
      binding: ideal.binding,
      terms: ideal.terms,
      // The same bound with the simulator's measured transfer times.
      lowerBoundMeasuredS: round(measured.seconds, 2),
      ratioMeasured: round(makespanS / measured.seconds, 2),
      transferSumS: round(measuredS.reduce((a, b) => a + b, 0), 2),
      maxConcurrentTransfers: maxOverlap(intervals),
      meanConcurrentTransfers: round(measuredS.reduce((a, b) => a + b, 0) / makespanS, 2),
      // Of the cluster's slots, how many were held on average (a held slot whose migration is not
      // transferring is orchestration inside the slot; a free one while others wait is the hand-over).
      meanSlotsHeld: round(held.reduce((a, b) => a + b, 0) / Math.max(1, held.length), 2),
      maxSlotsHeld: Math.max(0, ...held),
    });
  } finally {
    await stack.stop();
  }
}

runBench(main);
