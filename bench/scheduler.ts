// The scheduler (activities/conductor/scheduler.ts `schedule`: Nova's filters and weigher) choosing a
// destination among 1,000 and 10,000 hosts, in-process: p50/p99 of `--runs` calls each, after a
// warm-up. Target: under 20 ms at 10,000 hosts.
// The cluster: pools of 16 hosts, 1 % down, 1 % disabled, 1 % on an older hypervisor version, free
// memory spread from 0 to 256 GiB, ten VMs listed per host (the scheduler does not read them, but
// they are in the records it receives), memory promised to migrations on 2 % of the hosts. The
// instance needs 8 GiB and moves with its storage (block migration), so every pool is a candidate
// and the sort sees most of the cluster. Also printed: the request's size as JSON (what a workflow
// passes to the activity) and the time to encode and decode it and the answer.
//   node --import tsx bench/scheduler.ts [--hosts 1000,10000] [--runs 300]
import { parseArgs } from 'node:util';
import { schedule, type ScheduleRequest } from '../activities/conductor/scheduler';
import type { HostView, InstanceView } from '../workflows/definitions';
import { emit, runBench, summarize } from './report';

const GiB = 2 ** 30;
const TARGET_MS = 20;

/** A deterministic pseudo-random sequence (mulberry32), so that every run schedules the same cluster. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function instance(uuid: string, host: string, memoryBytes: number): InstanceView {
  return { uuid, name: `vm-${uuid.slice(-6)}`, powerState: 'Running', host, memoryBytes, vcpus: 2, vcpuCap: null, diskBytes: 20 * GiB, storage: 'local' };
}

function cluster(n: number): ScheduleRequest {
  const rnd = random(n);
  const hosts: HostView[] = [];
  const reservedBytes: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const name = `xen-${String(i).padStart(5, '0')}`;
    const down = rnd() < 0.01;
    const free = Math.floor(rnd() * 256) * GiB;
    hosts.push({
      name,
      pool: `pool-${Math.floor(i / 16)}`,
      up: !down,
      downReason: down ? 'no agent polls its queue' : null,
      enabled: rnd() >= 0.01,
      productVersion: rnd() < 0.01 ? '8.2.0' : '8.2.1',
      platformVersion: '3.4.0',
      memoryTotalBytes: 512 * GiB,
      memoryFreeBytes: free,
      instances: Array.from({ length: 10 }, (_, v) => instance(`00000000-0000-4000-8000-${String(i * 10 + v).padStart(12, '0')}`, name, 16 * GiB)),
    });
    if (rnd() < 0.02) reservedBytes[name] = 8 * GiB;
  }
  const source = hosts[0] as HostView;
  return {
    hosts,
    instance: instance('5c3d6a1e-0000-4000-8000-000000000001', source.name, 8 * GiB),
    sourceHost: source.name,
    excluded: [(hosts[1] as HostView).name, (hosts[2] as HostView).name],
    blockMigration: true,
    reservedBytes,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { hosts: { type: 'string', default: '1000,10000' }, runs: { type: 'string', default: '300' } } });
  const runs = Number(values.runs);
  for (const n of values.hosts.split(',').map(Number)) {
    const request = cluster(n);
    for (let i = 0; i < 20; i++) schedule(request); // warm-up: JIT
    const times: number[] = [];
    let candidates = 0;
    let rejected = 0;
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      const result = schedule(request);
      times.push(performance.now() - started);
      candidates = result.candidates.length;
      rejected = result.rejected.length;
    }
    // What crossing Temporal adds: the request and the answer as JSON, encoded and decoded.
    const codec: number[] = [];
    const answer = schedule(request);
    const requestBytes = Buffer.byteLength(JSON.stringify(request));
    const resultBytes = Buffer.byteLength(JSON.stringify(answer));
    for (let i = 0; i < (n > 2000 ? 5 : 20); i++) {
      const started = performance.now();
      JSON.parse(JSON.stringify(request));
      JSON.parse(JSON.stringify(answer));
      codec.push(performance.now() - started);
    }
    const t = summarize(times, 2);
    emit('scheduler', {
      hosts: n,
      runs,
      p50Ms: t.p50,
      p99Ms: t.p99,
      targetMs: TARGET_MS,
      withinTarget: t.p99 < TARGET_MS,
      maxMs: t.max,
      candidates,
      rejected,
      requestBytes,
      resultBytes,
      jsonCodecP50Ms: summarize(codec, 1).p50,
    });
  }
}

runBench(main);
