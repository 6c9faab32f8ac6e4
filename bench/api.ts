// The API's reads under load (issue 11): a whole stack with the API as its own process, 100 tiny
// migrations started through the API and completed, then, with autocannon on loopback:
//   - show of a completed migration (the first read of each, then at a fixed 500 requests a second,
//     then as fast as it answers), against p99 < 20 ms at 500 req/s;
//   - the list of 100 migrations, against p99 < 50 ms;
//   - show of a running migration (its status query and the transfer's heartbeat);
//   - the progress stream's (SSE) first event, for a running and a completed migration, < 50 ms.
// One JSON line per figure, with the machine (bench/report.ts). On a shared machine the figures say
// what the code can do there and then, not what it does alone.
//   node --import tsx bench/api.ts [--migrations 100] [--seconds 8]
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { startStack, type Stack, type StackHost } from '../lib/stack';
import { emit as emitLine, percentile, round, runBench } from './report';

const HOSTS: StackHost[] = [
  { name: 'xen-a', pool: 'pool-1' },
  { name: 'xen-b', pool: 'pool-1' },
  { name: 'xen-c', pool: 'pool-2' },
  { name: 'xen-d', pool: 'pool-2' },
];

function emit(figure: string, fields: Record<string, unknown>): void {
  emitLine('api', { figure, ...fields });
}

async function api<T>(stack: Stack, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${stack.apiUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : null) as T;
}

/** Creates `n` 1 MiB VMs across the hosts and migrates each once through the API; waits until all completed. */
async function completedMigrations(stack: Stack, n: number): Promise<string[]> {
  const vms = await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const host = HOSTS[i % HOSTS.length] as StackHost;
      return stack.sims.host(host.name).admin.createVm({ nameLabel: `bench-api-${i}`, memoryMiB: 1, sr: 'shared' });
    }),
  );
  const started = performance.now();
  const ids: string[] = [];
  for (const vm of vms) ids.push((await api<{ id: string }>(stack, 'POST', '/v1/migrations', { instanceUuid: vm.uuid })).id);
  // Waited for through Temporal, not the API: the API's first read of each is measured below.
  const query = `WorkflowType = 'liveMigration' AND ExecutionStatus != 'Running'`;
  for (;;) {
    const closed = (await stack.client.workflow.count(query)).count;
    if (closed >= n) break;
    if (performance.now() - started > 240_000) throw new Error(`only ${closed} of ${n} migrations closed after 240 s`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const done = (await stack.client.workflow.count(`${query} AND MigrationStatus = 'completed'`)).count;
  if (done < n) throw new Error(`${n - done} of ${n} migrations did not complete`);
  emit('setup-migrations', { migrations: n, seconds: round((performance.now() - started) / 1000, 1) });
  return ids;
}

interface LoadResult {
  p50: number;
  p99: number;
  max: number;
  rps: number;
  requests: number;
  non2xx: number;
  errors: number;
}

async function load(url: string, options: { seconds: number; connections: number; rate?: number; paths?: string[] }): Promise<LoadResult> {
  let next = 0;
  const paths = options.paths;
  const result = await autocannon({
    url,
    connections: options.connections,
    duration: options.seconds,
    ...(options.rate ? { overallRate: options.rate } : {}),
    ...(paths ? { requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: paths[next++ % paths.length] as string }) }] } : {}),
  });
  return {
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    rps: round(result.requests.average, 1),
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

/** Milliseconds from the request to the first `migration` event of the progress stream. */
function firstEvent(base: string, id: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(`${base}/v1/migrations/${id}/events`, (res) => {
      if (res.statusCode !== 200) reject(new Error(`events of ${id}: ${res.statusCode}`));
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('event: migration')) {
          resolve(performance.now() - started);
          req.destroy();
        }
      });
    });
    req.on('error', (err) => {
      if (!('code' in err && err.code === 'ECONNRESET')) reject(err);
    });
    req.end();
  });
}

async function sseFirstEvents(base: string, ids: string[], samples: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) times.push(await firstEvent(base, ids[i % ids.length] as string));
  return times;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { migrations: { type: 'string', default: '100' }, seconds: { type: 'string', default: '8' } } });
  const n = Number(values.migrations);
  const seconds = Number(values.seconds);
  const t0 = performance.now();
  const stack = await startStack({
    api: true,
    hosts: HOSTS,
    bandwidthMiBps: 512,
    // Loose limits: the 100 setup migrations overlap as much as the two cores allow.
    migration: { limits: { outboundPerHost: 4, inboundPerHost: 4, cluster: 12 } },
  });
  try {
    const base = stack.apiUrl as string;
    emit('setup-stack', { seconds: round((performance.now() - t0) / 1000, 1) });
    const ids = await completedMigrations(stack, n);
    const shows = ids.map((id) => `/v1/migrations/${id}`);

    // The first read of each completed migration: its memo (describe), then kept by the API.
    const cold: number[] = [];
    for (const path of shows) {
      const started = performance.now();
      await api(stack, 'GET', path);
      cold.push(performance.now() - started);
    }
    emit('show-completed-first-read', { requests: cold.length, p50Ms: round(percentile(cold, 50), 2), p99Ms: round(percentile(cold, 99), 2), maxMs: round(Math.max(...cold), 2) });

    const atRate = await load(base, { seconds, connections: 10, rate: 500, paths: shows });
    emit('show-completed', { targetRps: 500, p50Ms: atRate.p50, p99Ms: atRate.p99, maxMs: atRate.max, rps: atRate.rps, requests: atRate.requests, non2xx: atRate.non2xx, errors: atRate.errors, targetP99Ms: 20 });
    const flat = await load(base, { seconds: Math.max(3, seconds / 2), connections: 10, paths: shows });
    emit('show-completed-max-throughput', { p50Ms: flat.p50, p99Ms: flat.p99, rps: flat.rps, requests: flat.requests, non2xx: flat.non2xx, errors: flat.errors });

    const listPath = `/v1/migrations?limit=${n}`;
    const listed = await api<{ migrations: unknown[] }>(stack, 'GET', listPath);
    if (listed.migrations.length !== n) throw new Error(`the list has ${listed.migrations.length} migrations, not ${n}`);
    const list = await load(base, { seconds, connections: 2, rate: 20, paths: [listPath] });
    emit('list', { migrations: n, targetRps: 20, p50Ms: list.p50, p99Ms: list.p99, maxMs: list.max, rps: list.rps, non2xx: list.non2xx, errors: list.errors, targetP99Ms: 50 });
    const listFlat = await load(base, { seconds: Math.max(3, seconds / 2), connections: 4, paths: [listPath] });
    emit('list-max-throughput', { migrations: n, p50Ms: listFlat.p50, p99Ms: listFlat.p99, rps: listFlat.rps, non2xx: listFlat.non2xx, errors: listFlat.errors });

    emit('sse-first-event-completed', summary(await sseFirstEvents(base, ids, 20), 50));

    // A migration that stays in pre-copy: 2 GiB over a 16 MiB/s link.
    const big = await stack.sims.host('xen-a').admin.createVm({ nameLabel: 'bench-api-running', memoryMiB: 2048, sr: 'shared' });
    await stack.sims.host('xen-a').admin.setBandwidth(16);
    const running = (await api<{ id: string }>(stack, 'POST', '/v1/migrations', { instanceUuid: big.uuid, host: 'xen-b' })).id;
    const deadline = performance.now() + 60_000;
    for (;;) {
      const m = await api<{ phase: string; progress: { fraction: number } | null }>(stack, 'GET', `/v1/migrations/${running}`);
      if (m.phase === 'precopy' && (m.progress?.fraction ?? 0) > 0) break;
      if (performance.now() > deadline) throw new Error(`the running migration did not reach pre-copy: ${JSON.stringify(m)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    emit('sse-first-event-running', summary(await sseFirstEvents(base, [running], 20), 50));
    const live = await load(base, { seconds: Math.max(3, seconds / 2), connections: 4, rate: 50, paths: [`/v1/migrations/${running}`] });
    emit('show-running', { targetRps: 50, p50Ms: live.p50, p99Ms: live.p99, maxMs: live.max, rps: live.rps, non2xx: live.non2xx, errors: live.errors });
    await api(stack, 'POST', `/v1/migrations/${running}/abort`, { reason: 'bench/api done' }).catch(() => undefined);
    emit('total', { seconds: round((performance.now() - t0) / 1000, 1) });
  } finally {
    await stack.stop();
  }
}

function summary(times: number[], targetMs: number): Record<string, number> {
  return { samples: times.length, p50Ms: round(percentile(times, 50), 2), maxMs: round(Math.max(...times), 2), targetMs };
}

runBench(main);
