// The API and the CLI through the real stack: Temporal dev server, simulators, conductor and host
// agents as processes, the API in this process with token auth.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../lib/ports';
import { spawnTs } from '../../lib/processes';
import type { Stack } from '../../lib/stack';
import { stopProcess } from '../../lib/temporal-dev-server';
import type { RunningApi } from '../../api/main';
import { run } from '../../cli/main';
import type { MigrationStatusView } from '../../workflows/definitions';
import { parseEventStream } from '../../cli/client';
import { executeControlUpdate } from '../../lib/control-update';
import { abortUpdate, liveMigrationWorkflowId, statusQuery } from '../../workflows/definitions';
import { startStackWithApi } from '../e2e/helpers';

const READ = 'read-token-e2e';
const OPERATOR = 'operator-token-e2e';

let stack: Stack;
let api: RunningApi;

beforeAll(async () => {
  ({ stack, api } = await startStackWithApi({ bandwidthMiBps: 64 }, { read: READ, operator: OPERATOR }));
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

async function call(method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${api.url}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as Record<string, unknown> & { error?: { code: string; message: string } } };
}

async function vm(host: string, name: string, memoryMiB: number, dirtyRateMiBps = 0): Promise<string> {
  const created = await stack.sims.host(host).admin.createVm({ nameLabel: name, memoryMiB, diskMiB: [8], sr: 'shared', dirtyRateMiBps });
  return created.uuid;
}

async function waitFor(id: string, predicate: (m: MigrationStatusView) => boolean, timeoutMs = 60_000): Promise<MigrationStatusView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await call('GET', `/v1/migrations/${id}`, { token: READ });
    if (res.status === 200 && predicate(res.body as unknown as MigrationStatusView)) return res.body as unknown as MigrationStatusView;
    if (Date.now() > deadline) throw new Error(`migration ${id} did not get there: ${JSON.stringify(res.body)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Reads the whole SSE stream of a migration. */
async function events(id: string): Promise<{ event: string; data: MigrationStatusView }[]> {
  const res = await fetch(`${api.url}/v1/migrations/${id}/events?interval=200`, { headers: { authorization: `Bearer ${READ}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  return parseEventStream(await res.text()).filter((e) => e.event !== 'error') as { event: string; data: MigrationStatusView }[];
}

function cliIo(token?: string) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: {
      stdout: { write: (t: string) => out.push(t) },
      stderr: { write: (t: string) => err.push(t) },
      env: { FERRY_TOKEN: token, FERRY_CONFIG: stack.configPath } as NodeJS.ProcessEnv,
    },
  };
}

describe('operations', () => {
  it('is ready when Temporal answers and the conductor polls', async () => {
    const ready = await call('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toMatchObject({ conductor: expect.stringContaining('poller') });
    expect((await call('GET', '/healthz')).status).toBe(200);
  });

  it('lists the hosts as up, from the agents', async () => {
    const res = await call('GET', '/v1/hosts', { token: READ });
    expect(res.status).toBe(200);
    const hosts = res.body.hosts as { name: string; up: boolean; memoryTotalBytes: number }[];
    expect(hosts.map((h) => h.name).sort()).toEqual(['xen-a', 'xen-b', 'xen-c']);
    expect(hosts.every((h) => h.up && h.memoryTotalBytes > 0)).toBe(true);
  });

  it('refuses without a token and with the wrong role', async () => {
    expect((await call('GET', '/v1/hosts')).status).toBe(401);
    const uuid = await vm('xen-a', 'auth-check', 16);
    const forbidden = await call('POST', '/v1/migrations', { token: READ, body: { instanceUuid: uuid } });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error?.code).toBe('forbidden');
  });
});

describe('ferry /v1', () => {
  it('starts a migration (202 + Location), streams its progress, and lists it from visibility', async () => {
    const uuid = await vm('xen-a', 'v1-happy', 128, 4);
    const started = await call('POST', '/v1/migrations', { token: OPERATOR, body: { instanceUuid: uuid, host: 'xen-b' } });
    expect(started.status).toBe(202);
    const id = started.body.id as string;
    expect(started.headers.get('location')).toBe(`/v1/migrations/${id}`);

    const shown = await call('GET', `/v1/migrations/${id}`, { token: READ });
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ uuid: id, server_uuid: uuid, workflowId: `live-migration-${uuid}` });

    const stream = await events(id);
    const last = stream.at(-1);
    expect(last?.event).toBe('end');
    expect(last?.data.status).toBe('completed');
    expect(stream.some((e) => e.data.progress !== null && e.data.progress.fraction > 0)).toBe(true);

    // Visibility catches up with the final search attributes shortly after the run closes.
    const deadline = Date.now() + 15_000;
    let byStatus: MigrationStatusView[] = [];
    while (Date.now() < deadline) {
      byStatus = (await call('GET', `/v1/migrations?status=completed&host=xen-b&instance=${uuid}`, { token: READ })).body.migrations as MigrationStatusView[];
      if (byStatus.length > 0) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(byStatus.map((m) => m.uuid)).toEqual([id]);
    const instance = await call('GET', `/v1/instances/${uuid}`, { token: READ });
    expect(instance.body).toMatchObject({ host: 'xen-b', migration: null });
  });

  it('refuses a second migration of the same instance, aborts, and refuses to abort twice', async () => {
    const uuid = await vm('xen-a', 'v1-abort', 512, 16);
    const started = await call('POST', '/v1/migrations', { token: OPERATOR, body: { instanceUuid: uuid } });
    expect(started.status).toBe(202);
    const id = started.body.id as string;
    const again = await call('POST', '/v1/migrations', { token: OPERATOR, body: { instanceUuid: uuid } });
    expect(again.status).toBe(409);
    expect(again.body.error?.message).toContain('migrating');

    await waitFor(id, (m) => m.phase === 'precopy' && (m.progress?.fraction ?? 0) > 0);
    const server = await call('GET', `/v2.1/servers/${uuid}`, { token: READ });
    expect(server.body.server).toMatchObject({ status: 'MIGRATING', 'OS-EXT-STS:task_state': 'migrating', 'OS-EXT-SRV-ATTR:host': 'xen-a' });

    const abort = await call('POST', `/v1/migrations/${id}/abort`, { token: OPERATOR, body: { reason: 'e2e' } });
    expect(abort.status).toBe(202);
    expect(abort.body).toMatchObject({ accepted: true });
    const final = await waitFor(id, (m) => ['cancelled', 'failed', 'error', 'completed'].includes(m.status));
    expect(final.status).toBe('cancelled');
    const twice = await call('POST', `/v1/migrations/${id}/abort`, { token: OPERATOR, body: {} });
    expect(twice.status).toBe(409);
    expect(twice.body.error?.message).toContain('cancelled');
  });
});

/** One sample of a Prometheus exposition, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('reads and metrics', () => {
  it('shows a completed migration from its memo as the workflow ended it, and /metrics has its figures', async () => {
    const uuid = await vm('xen-a', 'metrics-1', 64);
    const started = await call('POST', '/v1/migrations', { token: OPERATOR, body: { instanceUuid: uuid, host: 'xen-b' } });
    const id = started.body.id as string;
    const final = await waitFor(id, (m) => m.phase === 'done');
    expect(final).toMatchObject({ status: 'completed', source_compute: 'xen-a', dest_compute: 'xen-b', abortable: false });
    expect(final.memory_total_bytes).toBe(64 * 2 ** 20);
    // The status query's final answer (a replay) and the API's view from the memo agree.
    const queried = await stack.client.workflow.getHandle(liveMigrationWorkflowId(uuid), id).query(statusQuery);
    expect({ ...final, updated_at: null }).toEqual({ ...queried, updated_at: null });
    // By instance uuid too, and in the list.
    expect((await call('GET', `/v1/migrations/${uuid}`, { token: READ })).body.uuid).toBe(id);

    let text = '';
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      text = await (await fetch(`${api.url}/metrics`)).text();
      if ((sample(text, 'ferry_migration_duration_seconds_count', { status: 'completed' }) ?? 0) >= 1) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(sample(text, 'ferry_migrations', { status: 'completed' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'ferry_migration_duration_seconds_count', { status: 'completed' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'ferry_migration_bytes_count', { status: 'completed' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'ferry_migration_bytes_sum', { status: 'completed' })).toBeGreaterThanOrEqual(64 * 2 ** 20);
    // Downtime is observed only when the agent saw the stop-and-copy phase (a tiny VM may skip it).
    expect(text).toContain('# TYPE ferry_migration_downtime_seconds histogram');
    expect(sample(text, 'ferry_migration_queue_wait_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'ferry_migration_slots_in_use', { host: 'xen-a', direction: 'outbound' })).toBe(0);
    expect(sample(text, 'ferry_migration_slot_limit', { scope: 'cluster' })).toBe(5);
    expect(sample(text, 'ferry_api_request_duration_seconds_count', { method: 'GET', route: '/v1/migrations/:id', status_code: '200' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'ferry_api_request_duration_seconds_bucket', { method: 'POST', route: '/v1/migrations', status_code: '202', le: '+Inf' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'ferry_api_metrics_read_errors_total', { read: 'slots' })).toBeUndefined();
  });
});

describe('Nova-compatible API', () => {
  it('live-migrates with os-migrateLive, shows the migration at 2.80, force-completes it', async () => {
    const uuid = await vm('xen-a', 'nova-1', 512, 48);
    const headers = { 'openstack-api-version': 'compute 2.80', 'x-auth-token': OPERATOR };
    const action = await call('POST', `/v2.1/servers/${uuid}/action`, { headers, body: { 'os-migrateLive': { host: null, block_migration: 'auto' } } });
    expect(action.status).toBe(202);
    expect(action.headers.get('openstack-api-version')).toBe('compute 2.80');

    let migration: Record<string, unknown> | undefined;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const list = await call('GET', `/v2.1/servers/${uuid}/migrations`, { headers });
      expect(list.status).toBe(200);
      migration = (list.body.migrations as Record<string, unknown>[])[0];
      if (migration?.status === 'running' && Number(migration.memory_processed_bytes) > 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(migration).toMatchObject({ server_uuid: uuid, status: 'running', source_compute: 'xen-a', user_id: 'operator', project_id: 'ferry' });
    const mid = migration?.id as number;
    const one = await call('GET', `/v2.1/servers/${uuid}/migrations/${mid}`, { headers });
    expect(one.status).toBe(200);
    expect((one.body.migration as Record<string, unknown>).uuid).toEqual(expect.any(String));

    const force = await call('POST', `/v2.1/servers/${uuid}/migrations/${mid}/action`, { headers, body: { force_complete: null } });
    expect(force.status).toBe(202);
    const runId = (one.body.migration as Record<string, string>).uuid as string;
    const final = await waitFor(runId, (m) => ['completed', 'failed', 'cancelled', 'error'].includes(m.status));
    expect(final.status).toBe('completed');
    expect(final.forceCompleteRequested).toBe(true);

    const all = await call('GET', `/v2.1/os-migrations?instance_uuid=${uuid}`, { headers });
    expect((all.body.migrations as Record<string, unknown>[]).map((m) => m.id)).toEqual([mid]);
    const gone = await call('GET', `/v2.1/servers/${uuid}/migrations/${mid}`, { headers });
    expect(gone.status).toBe(404);
    expect(gone.body).toHaveProperty('itemNotFound');
  });
});

describe('CLI against the real API', () => {
  it('migrate --watch follows the migration to completion and exits 0', async () => {
    const uuid = await vm('xen-a', 'cli-1', 128, 4);
    const { io, out } = cliIo(OPERATOR);
    const code = await run(['--api', api.url, 'migrate', uuid, '--watch'], io);
    expect(out.join('')).toContain('completed');
    expect(code).toBe(0);
    const hosts = cliIo(READ);
    expect(await run(['--api', api.url, '--json', 'hosts'], hosts.io)).toBe(0);
    expect(JSON.parse(hosts.out.join('')).hosts).toHaveLength(3);
  });

  it('exit codes: not found 3, read token changing things 6, unreachable API 5', async () => {
    const missing = cliIo(READ);
    expect(await run(['--api', api.url, 'show', '00000000-0000-4000-8000-00000000dead'], missing.io)).toBe(3);
    const uuid = await vm('xen-a', 'cli-2', 16);
    const forbidden = cliIo(READ);
    expect(await run(['--api', api.url, 'migrate', uuid], forbidden.io)).toBe(6);
    const unreachable = cliIo(READ);
    expect(await run(['--api', 'http://127.0.0.1:9', 'hosts'], unreachable.io)).toBe(5);
  });
});

describe('refusals at the phase they are about, from the real workflow', () => {
  /** Every door says no with the workflow's reason: the update, the API (409) and the CLI (exit 4). */
  async function refusedEverywhere(uuid: string, id: string, reason: RegExp): Promise<void> {
    const handle = stack.client.workflow.getHandle(liveMigrationWorkflowId(uuid));
    // The update fails with the validator's reason as its cause.
    const refusal = await executeControlUpdate(handle, abortUpdate, 'now').then(
      () => 'accepted',
      (err: unknown) => (err as { cause?: { message?: string } }).cause?.message ?? String(err),
    );
    expect(refusal).toMatch(reason);
    const viaApi = await call('POST', `/v1/migrations/${id}/abort`, { token: OPERATOR, body: { reason: 'now' } });
    expect(viaApi.status).toBe(409);
    expect(viaApi.body.error?.message).toMatch(reason);
    const cli = cliIo(OPERATOR);
    expect(await run(['--api', api.url, 'abort', id], cli.io)).toBe(4);
    expect(cli.err.join('')).toMatch(reason);
  }

  it('past the point of no return (stop-and-copy) abort and force-complete are refused, and it completes', async () => {
    const admin = stack.sims.host('xen-a').admin;
    const uuid = await vm('xen-a', 'no-return', 32, 32);
    // One round at 4 MiB/s dirties the whole 32 MiB: stop-and-copy then lasts about 8 s.
    await admin.setBandwidth(4);
    await admin.setMaxIterations(1);
    try {
      const started = await call('POST', '/v1/migrations', { token: OPERATOR, body: { instanceUuid: uuid, host: 'xen-b' } });
      const id = started.body.id as string;
      await waitFor(id, (m) => m.phase === 'stop_and_copy');
      await refusedEverywhere(uuid, id, /past the point of no return/);
      const force = await call('POST', `/v1/migrations/${id}/force-complete`, { token: OPERATOR });
      expect(force.status).toBe(409);
      expect(force.body.error?.message).toMatch(/cannot force-complete in phase stop_and_copy/);
      // The refusals came while it was there, not after the end.
      expect((await call('GET', `/v1/migrations/${id}`, { token: READ })).body.phase).toBe('stop_and_copy');
      expect((await waitFor(id, (m) => m.phase === 'done')).status).toBe('completed');
    } finally {
      await admin.setBandwidth(64);
      await admin.setMaxIterations(5);
    }
  });

  it('while rolling back and waiting for a slow destination, abort is refused with what it waits for', async () => {
    const uuid = (await stack.sims.host('xen-a').admin.createVm({ nameLabel: 'slow-undo', memoryMiB: 32, diskMiB: [4], sr: 'local', dirtyRateMiBps: 32 })).uuid;
    await stack.sims.host('xen-a').admin.setBandwidth(8);
    await stack.sims.host('xen-a').admin.setMaxIterations(0);
    try {
      const started = await call('POST', '/v1/migrations', { token: OPERATOR, body: { instanceUuid: uuid, host: 'xen-c' } });
      const id = started.body.id as string;
      await waitFor(id, (m) => m.phase === 'precopy' && (m.progress?.fraction ?? 0) > 0);
      // xen-c's XenAPI answers after 3 s: removing what arrived there takes a while.
      await stack.sims.host('xen-c').admin.slow(3000);
      expect((await call('POST', `/v1/migrations/${id}/abort`, { token: OPERATOR, body: { reason: 'first' } })).status).toBe(202);
      await waitFor(id, (m) => m.phase === 'rolling_back' && (m.waitingFor ?? '').startsWith('xen-c'));
      await refusedEverywhere(uuid, id, /already rolling back; waiting for xen-c to /);
      await stack.sims.host('xen-c').admin.slow(0);
      expect((await waitFor(id, (m) => m.phase === 'done')).status).toBe('cancelled');
    } finally {
      await stack.sims.host('xen-c').admin.slow(0);
      await stack.sims.host('xen-a').admin.setBandwidth(64);
      await stack.sims.host('xen-a').admin.setMaxIterations(5);
    }
  });
});

describe("a worker's Prometheus exporter (the Temporal SDK's)", () => {
  it('serves the SDK metrics of a conductor started with --metrics', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const conductor = spawnTs('workers/conductor.ts', ['--config', stack.configPath, '--metrics', address], {
      logFile: join(stack.workDir, 'logs', 'conductor-metrics.log'),
      exitWithParent: true,
    });
    try {
      let text = '';
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && !/^temporal_num_pollers\{/m.test(text)) {
        text = await fetch(`http://${address}/metrics`).then((r) => r.text(), () => '');
        await new Promise((r) => setTimeout(r, 300));
      }
      expect(text).toMatch(/^temporal_num_pollers\{.*task_queue="ferry-conductor".*\} \d+/m);
      expect(text).toMatch(/^temporal_worker_task_slots_available\{/m);
      // Prometheus' conventions: counters end in _total.
      expect(text).toMatch(/^temporal_request_total\{/m);
    } finally {
      await stopProcess(conductor);
    }
  });
});

