// Cluster scale (issue 16): a migration's cost must not grow with the number of hosts. For 3, 10, 30
// and 100 simulated hosts (pools of two, agents packed into few processes), live-migrates a 1 MiB
// VM back and forth inside its pool with the scheduler choosing the destination, and prints the
// end-to-end time, the orchestration overhead (end-to-end minus the simulator's transfer), and the
// number of history events and activities of each migration. At the largest size it also measures
// the API's host list and instance look-up (sequential requests on loopback).
//   node --import tsx bench/hosts-scale.ts [--sizes 3,10,30,100] [--runs 10]
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

async function measure(size: number, runs: number, withApi: boolean): Promise<void> {
  const startedStack = performance.now();
  const stack = await startStack({ hosts: hosts(size), agentsPerProcess: 25, bandwidthMiBps: 512 });
  const stackStartMs = performance.now() - startedStack;
  try {
    const vm = await stack.sims.host('h000').admin.createVm({ nameLabel: 'scale', memoryMiB: 1, sr: 'shared' });
    const e2e: number[] = [];
    const overhead: number[] = [];
    const events: number[] = [];
    const activities: number[] = [];
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
    emit('hosts-scale', {
      hosts: size,
      pools: Math.ceil(size / POOL_SIZE),
      runs,
      memoryMiB: 1,
      e2eMs: summarize(e2e),
      overheadMs: summarize(overhead),
      historyEvents: summarize(events, 0),
      activities: summarize(activities, 0),
      stackStartSeconds: Math.round(stackStartMs / 100) / 10,
    });
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
  const { values } = parseArgs({ options: { sizes: { type: 'string', default: '3,10,30,100' }, runs: { type: 'string', default: '10' } } });
  const sizes = values.sizes.split(',').map(Number);
  const largest = Math.max(...sizes);
  for (const size of sizes) await measure(size, Number(values.runs), size === largest);
}

runBench(main);
