// Cluster scale (issue 16): a migration's cost must not grow with the number of hosts. For 3, 10, 30
// and 100 simulated hosts (pools of two, agents packed into few processes), live-migrates a 1 MiB
// VM back and forth inside its pool with the scheduler choosing the destination, and prints the
// end-to-end time, the orchestration overhead (end-to-end minus the simulator's transfer), and the
// number of history events and activities of each migration. At the largest size it also measures
// the API's host list and instance look-up (sequential requests on loopback).
//
// A stack's figures drift by ±10 % from one start to the next on this 2-core machine (what else the
// kernel runs, where the processes land), as much as the effect measured. So the sizes are measured
// in rounds (ascending, then descending, ...), each round on fresh stacks, and each size's figures
// are pooled over the rounds; each stack first settles (its start-up reports and compiles done).
//   node --import tsx bench/hosts-scale.ts [--sizes 3,10,30,100] [--runs 10] [--rounds 3] [--settle 10]
import { parseArgs } from 'node:util';
import pino from 'pino';
import { startApi } from '../api/main';
import { startStack, type StackHost } from '../lib/stack';
import type { MigrationOutcome } from '../workflows/outcome';
import { lastTransfer, startMigration } from './migrations';
import { emit, runBench, summarize } from './report';

const POOL_SIZE = 2;

function hosts(n: number): StackHost[] {
  return Array.from({ length: n }, (_, i) => ({ name: `h${String(i).padStart(3, '0')}`, pool: `pool-${Math.floor(i / POOL_SIZE)}`, memoryMiB: 4096 }));
}

async function timeRequests(url: string, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const res = await fetch(url);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
    times.push(performance.now() - started);
  }
  return times;
}

interface Figures {
  e2e: number[];
  overhead: number[];
  events: number[];
  activities: number[];
  stackStartMs: number[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(size: number, runs: number, settleMs: number, into: Figures, withApi: boolean): Promise<void> {
  const startedStack = performance.now();
  const stack = await startStack({ hosts: hosts(size), agentsPerProcess: 25, bandwidthMiBps: 512 });
  into.stackStartMs.push(performance.now() - startedStack);
  try {
    const vm = await stack.sims.host('h000').admin.createVm({ nameLabel: 'scale', memoryMiB: 1, sr: 'shared' });
    await sleep(settleMs);
    const { e2e, overhead, events, activities } = into;
    let on = 'h000';
    // Two warm-up runs (first workflow tasks, first XenAPI sessions) are not counted.
    for (let i = 0; i < runs + 2; i++) {
      const started = performance.now();
      const handle = await startMigration(stack.client, stack.config.taskQueues.conductor, { instanceUuid: vm.uuid });
      const outcome = (await handle.result()) as MigrationOutcome;
      const ms = performance.now() - started;
      if (outcome.status !== 'completed' || !outcome.destHost) throw new Error(`migration ${i} at ${size} hosts ended ${outcome.status}: ${outcome.message ?? ''}`);
      const transfer = await lastTransfer(stack.sims.host(on).admin, vm.uuid);
      on = outcome.destHost;
      if (i < 2) continue;
      const history = (await handle.fetchHistory()).events ?? [];
      e2e.push(ms);
      overhead.push(ms - Number(transfer.totalMs));
      events.push(history.length);
      activities.push(history.filter((e) => e.activityTaskScheduledEventAttributes).length);
    }
    if (withApi) {
      const api = await startApi({ config: stack.config, listen: '127.0.0.1:0', logger: pino({ level: 'silent' }) });
      try {
        for (const [what, path] of [
          ['host-list', '/v1/hosts'],
          ['instance-lookup', `/v1/instances/${vm.uuid}`],
        ] as const) {
          await timeRequests(`${api.url}${path}`, 20); // warm-up
          emit('hosts-scale-api', { hosts: size, request: `GET ${path.replace(vm.uuid, '{uuid}')}`, what, latencyMs: summarize(await timeRequests(`${api.url}${path}`, 300), 2) });
        }
      } finally {
        await api.close();
      }
    }
  } finally {
    await stack.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { sizes: { type: 'string', default: '3,10,30,100' }, runs: { type: 'string', default: '10' }, rounds: { type: 'string', default: '3' }, settle: { type: 'string', default: '10' } },
  });
  const sizes = values.sizes.split(',').map(Number);
  const rounds = Number(values.rounds);
  const largest = Math.max(...sizes);
  const figures = new Map(sizes.map((size) => [size, { e2e: [], overhead: [], events: [], activities: [], stackStartMs: [] } as Figures]));
  for (let round = 0; round < rounds; round++) {
    for (const size of round % 2 === 0 ? sizes : [...sizes].reverse()) {
      await measure(size, Number(values.runs), Number(values.settle) * 1000, figures.get(size) as Figures, size === largest && round === rounds - 1);
    }
  }
  const smallest = figures.get(Math.min(...sizes)) as Figures;
  for (const size of sizes) {
    const f = figures.get(size) as Figures;
    const e2eMs = summarize(f.e2e);
    emit('hosts-scale', {
      hosts: size,
      pools: Math.ceil(size / POOL_SIZE),
      rounds,
      runs: f.e2e.length,
      memoryMiB: 1,
      e2eMs,
      /** p50 against the smallest cluster's p50. */
      e2eP50VsSmallest: Math.round((e2eMs.p50 / summarize(smallest.e2e).p50) * 1000) / 1000,
      overheadMs: summarize(f.overhead),
      historyEvents: summarize(f.events, 0),
      activities: summarize(f.activities, 0),
      stackStartSeconds: summarize(f.stackStartMs.map((ms) => ms / 1000)),
    });
  }
}

runBench(main);
