// Every route of the API against the real stack (Temporal dev server, simulators, conductor and host
// agents as processes; the API in this process with static tokens), and the CLI's main commands
// against it. test/api/fake-service.ts keeps the fast unit tests; nothing is covered by it alone.
// Which test covers which route: the `routes` list below, checked against the server's own routes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../lib/stack';
import type { RunningApi } from '../../api/main';
import { run } from '../../cli/main';
import { EXIT } from '../../cli/exit-codes';
import type { MigrationStatusView } from '../../workflows/definitions';
import pino from 'pino';
import { startStack } from '../../lib/stack';
import { parseConfig } from '../../lib/config';
import { startApi } from '../../api/main';
import { tokenAuthenticator } from '../../api/auth';
import { inventoryWhen, placements } from '../e2e/helpers';
import type { ColdMigrationView } from '../../workflows/cold-migration-definitions';

/** The flavors the API serves here: the test VMs' size and the one a resize gives them. */
const FLAVORS = [
  { name: 'rt-small', id: 'rt-1', vcpus: 1, ram: 32, disk: 0 },
  { name: 'rt-grow', id: 'rt-2', vcpus: 2, ram: 64, disk: 1 },
];

const READ = 'read-token-routes';
const OPERATOR = 'operator-token-routes';
const NOVA = { 'openstack-api-version': 'compute 2.80', 'x-auth-token': OPERATOR };
const FINAL = ['completed', 'failed', 'cancelled', 'error'];

let stack: Stack;
let api: RunningApi;
/** Every request a test below (or the CLI, in process) sent to the API: "METHOD /path". */
const sent: string[] = [];
const realFetch = globalThis.fetch;
globalThis.fetch = (input: string | URL | Request, init?: RequestInit) => {
  const url = new URL(input instanceof Request ? input.url : input);
  if (api && url.origin === new URL(api.url).origin) sent.push(`${(init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase()} ${url.pathname}`);
  return realFetch(input, init);
};

beforeAll(async () => {
  // persistTemporal: the last test stops the dev server and starts it again on the same database.
  stack = await startStack({ bandwidthMiBps: 64, persistTemporal: true });
  // The API with the stack's config plus flavors (the API resolves them; the workers need none).
  api = await startApi({
    config: parseConfig({ ...stack.config, flavors: FLAVORS }),
    listen: '127.0.0.1:0',
    logger: pino({ level: process.env.FERRY_LOG_LEVEL ?? 'silent' }),
    auth: tokenAuthenticator({ read: READ, operator: OPERATOR }),
  });
}, 240_000);

afterAll(async () => {
  globalThis.fetch = realFetch;
  await api?.close();
  await stack?.stop();
});

type Body = Record<string, unknown> & { error?: { code: string; status: number; message: string } };

async function call(method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${api.url}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  let body: Body;
  try {
    body = text ? (JSON.parse(text) as Body) : {};
  } catch {
    body = { text };
  }
  return { status: res.status, headers: res.headers, body };
}

async function vm(host: string, name: string, memoryMiB: number, dirtyRateMiBps = 0): Promise<string> {
  return (await stack.sims.host(host).admin.createVm({ nameLabel: name, memoryMiB, diskMiB: [8], sr: 'shared', dirtyRateMiBps })).uuid;
}

async function until<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not there after ${timeoutMs} ms; last: ${JSON.stringify(value).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const migration = async (id: string) => (await call('GET', `/v1/migrations/${id}`, { token: READ })).body as unknown as MigrationStatusView;
const waitFor = (id: string, ok: (m: MigrationStatusView) => boolean, timeoutMs = 90_000) => until(`migration ${id}`, () => migration(id), ok, timeoutMs);
const inPrecopy = (m: MigrationStatusView) => m.phase === 'precopy' && (m.progress?.fraction ?? 0) > 0;

/** The CLI in process, with the stack's temporal.yaml and a token. */
async function ferry(args: string[], token = OPERATOR, out: string[] = []) {
  const err: string[] = [];
  const code = await run(['--api', api.url, ...args], {
    stdout: { write: (t: string) => out.push(t), isTTY: false, columns: 160 },
    stderr: { write: (t: string) => err.push(t) },
    env: { FERRY_TOKEN: token, FERRY_CONFIG: stack.configPath },
  });
  return { code, out: out.join(''), err: err.join('') };
}

describe('versions, health and documents', () => {
  it('GET / and /v2.1: Nova\'s version documents; /healthz, /readyz ready; /openapi.json; /metrics', async () => {
    const root = await call('GET', '/');
    expect(root.status).toBe(200);
    expect((root.body.versions as { id: string; status: string }[]).map((v) => v.id)).toContain('v2.1');
    const v21 = await call('GET', '/v2.1');
    expect(v21.status).toBe(200);
    expect(v21.body.version).toMatchObject({ id: 'v2.1', status: 'CURRENT', version: '2.80', min_version: '2.1' });

    expect(await call('GET', '/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    const ready = await call('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ok', checks: { temporal: expect.stringContaining('answers'), conductor: expect.stringMatching(/poller/) } });

    const doc = await call('GET', '/openapi.json');
    expect(doc.status).toBe(200);
    expect(String(doc.body.openapi)).toMatch(/^3\.1\./);
    expect(Object.keys(doc.body.paths as object)).toEqual(expect.arrayContaining(['/v1/migrations/{id}/force-complete', '/v2.1/servers/{id}/migrations/{mid}']));

    const metrics = await fetch(`${api.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^ferry_api_request_duration_seconds_count\{.*route="\/readyz".*\} \d+/m);
  });
});

describe('a running migration, seen through every read route, aborted with Nova\'s DELETE', () => {
  it('shows it by run id and instance uuid, on its hosts (outbound and inbound), as a MIGRATING server; DELETE aborts it', async () => {
    const uuid = await vm('xen-a', 'routes-running', 512, 16);
    const started = await call('POST', '/v1/migrations', { token: OPERATOR, body: { instanceUuid: uuid, host: 'xen-b' } });
    expect(started.status).toBe(202);
    const id = started.body.id as string;
    const novaId = started.body.novaId as number;
    await waitFor(id, inPrecopy);

    // /v1/migrations/{id}: by the run id and by the instance uuid, the same migration.
    const byRun = await call('GET', `/v1/migrations/${id}`, { token: READ });
    const byInstance = await call('GET', `/v1/migrations/${uuid}`, { token: READ });
    expect(byRun.body).toMatchObject({ uuid: id, id: novaId, server_uuid: uuid, status: 'running', source_compute: 'xen-a', dest_compute: 'xen-b' });
    expect(byInstance.body).toMatchObject({ uuid: id, server_uuid: uuid });
    expect((await call('GET', '/v1/migrations/00000000-0000-4000-8000-00000000dead', { token: READ })).status).toBe(404);

    // Lists: by status, host and instance (visibility has the search attributes once the status changed).
    const open = await until(
      'open migrations of xen-a',
      async () => (await call('GET', `/v1/migrations?open=true&host=xen-a&instance=${uuid}`, { token: READ })).body.migrations as MigrationStatusView[],
      (l) => l.length === 1,
    );
    expect(open[0]).toMatchObject({ uuid: id, status: 'running' });
    expect((await call('GET', `/v1/migrations?open=false&instance=${uuid}`, { token: READ })).body.migrations).toEqual([]);

    // Hosts: the migration leaves xen-a and arrives at xen-b.
    const hosts = await until(
      'hosts with the migration',
      async () => (await call('GET', '/v1/hosts', { token: READ })).body.hosts as { name: string; up: boolean; migrations: { outbound: string[]; inbound: string[] } }[],
      (h) => h.find((x) => x.name === 'xen-b')?.migrations.inbound.includes(id) ?? false,
    );
    const byName = Object.fromEntries(hosts.map((h) => [h.name, h]));
    expect(byName['xen-a']?.migrations).toEqual({ outbound: [id], inbound: [] });
    expect(byName['xen-b']?.migrations).toEqual({ outbound: [], inbound: [id] });
    expect(byName['xen-c']?.migrations).toEqual({ outbound: [], inbound: [] });
    expect(hosts.every((h) => h.up)).toBe(true);
    const xenB = await call('GET', '/v1/hosts/xen-b', { token: READ });
    expect(xenB.body).toMatchObject({ name: 'xen-b', pool: 'pool-1', up: true, migrations: { outbound: [], inbound: [id] } });
    expect((await call('GET', '/v1/hosts/xen-z', { token: READ })).body.error).toMatchObject({ code: 'not_found', status: 404 });

    // Instances: with their running migration.
    const onA = (await call('GET', '/v1/instances?host=xen-a', { token: READ })).body.instances as { uuid: string; host: string; migration: unknown }[];
    expect(onA.find((i) => i.uuid === uuid)).toMatchObject({ host: 'xen-a', migration: { id, status: 'running', workflowId: `live-migration-${uuid}` } });
    expect(onA.every((i) => i.host === 'xen-a')).toBe(true);
    expect((await call('GET', `/v1/instances/${uuid}`, { token: READ })).body).toMatchObject({ uuid, name: 'routes-running', host: 'xen-a', migration: { id } });
    expect((await call('GET', '/v1/instances/00000000-0000-4000-8000-00000000dead', { token: READ })).status).toBe(404);

    // Nova's servers: the brief list (id, name, links), the detail with MIGRATING, one server, by name.
    const brief = (await call('GET', '/v2.1/servers', { headers: NOVA })).body.servers as Record<string, unknown>[];
    const briefRow = brief.find((s) => s.id === uuid);
    expect(briefRow).toMatchObject({ id: uuid, name: 'routes-running', links: expect.any(Array) });
    expect(Object.keys(briefRow ?? {}).sort()).toEqual(['id', 'links', 'name']);
    const detail = (await call('GET', '/v2.1/servers/detail?name=routes-running', { headers: NOVA })).body.servers as Record<string, unknown>[];
    expect(detail).toHaveLength(1);
    expect(detail[0]).toMatchObject({ id: uuid, status: 'MIGRATING', 'OS-EXT-STS:task_state': 'migrating', 'OS-EXT-SRV-ATTR:host': 'xen-a' });
    const server = await call('GET', `/v2.1/servers/${uuid}`, { headers: NOVA });
    expect(server.body.server).toMatchObject({ id: uuid, status: 'MIGRATING', 'OS-EXT-SRV-ATTR:host': 'xen-a' });
    const noServer = await call('GET', '/v2.1/servers/00000000-0000-4000-8000-00000000dead', { headers: NOVA });
    expect(noServer.status).toBe(404);
    expect(noServer.body.itemNotFound).toMatchObject({ code: 404 });

    // Nova's migrations of the server: the list, one, os-migrations.
    const listed = (await call('GET', `/v2.1/servers/${uuid}/migrations`, { headers: NOVA })).body.migrations as Record<string, unknown>[];
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ id: novaId, uuid: id, server_uuid: uuid, status: 'running', source_compute: 'xen-a', dest_compute: 'xen-b' });
    const one = await call('GET', `/v2.1/servers/${uuid}/migrations/${novaId}`, { headers: NOVA });
    expect(one.body.migration).toMatchObject({ id: novaId, status: 'running', memory_total_bytes: 512 * 2 ** 20 });
    expect(Number((one.body.migration as Record<string, unknown>).memory_processed_bytes)).toBeGreaterThan(0);
    const all = (await call('GET', `/v2.1/os-migrations?instance_uuid=${uuid}`, { headers: NOVA })).body.migrations as Record<string, unknown>[];
    expect(all.map((m) => [m.id, m.status, m.migration_type])).toEqual([[novaId, 'running', 'live-migration']]);

    // Abort through Nova's DELETE: 202, no body; the migration ends cancelled and the VM stays.
    const abort = await fetch(`${api.url}/v2.1/servers/${uuid}/migrations/${novaId}`, { method: 'DELETE', headers: NOVA });
    expect(abort.status).toBe(202);
    expect(await abort.text()).toBe('');
    expect((await waitFor(id, (m) => FINAL.includes(m.status))).status).toBe('cancelled');
    expect(await placements(stack, uuid)).toEqual([{ host: 'xen-a', powerState: 'Running' }]);
    // Not in progress any more: Nova's 404 for one, 400 for aborting it again.
    const gone = await call('GET', `/v2.1/servers/${uuid}/migrations/${novaId}`, { headers: NOVA });
    expect(gone.status).toBe(404);
    expect(gone.body.itemNotFound).toMatchObject({ message: `In-progress live migration ${novaId} is not found for server ${uuid}.` });
    const again = await call('DELETE', `/v2.1/servers/${uuid}/migrations/${novaId}`, { headers: NOVA });
    expect(again.status).toBe(400);
    expect(again.body.badRequest).toMatchObject({ code: 400, message: expect.stringContaining('is cancelled. Cannot abort live migration') });
    expect((await call('GET', `/v2.1/servers/${uuid}/migrations`, { headers: NOVA })).body.migrations).toEqual([]);
  });
});

describe('force-complete', () => {
  it('Nova: os-migrateLive, then POST .../migrations/{mid}/action force_complete; it completes on the destination', async () => {
    const uuid = await vm('xen-a', 'routes-nova-force', 512, 48);
    const action = await call('POST', `/v2.1/servers/${uuid}/action`, { headers: NOVA, body: { 'os-migrateLive': { host: 'xen-b', block_migration: 'auto' } } });
    expect(action.status).toBe(202);
    const listed = await until(
      'the Nova migration in precopy',
      async () => ((await call('GET', `/v2.1/servers/${uuid}/migrations`, { headers: NOVA })).body.migrations ?? []) as Record<string, unknown>[],
      (l) => l[0]?.status === 'running' && Number(l[0]?.memory_processed_bytes) > 0,
    );
    const mid = listed[0]?.id as number;
    const runId = listed[0]?.uuid as string;
    const force = await call('POST', `/v2.1/servers/${uuid}/migrations/${mid}/action`, { headers: NOVA, body: { force_complete: null } });
    expect(force.status).toBe(202);
    const final = await waitFor(runId, (m) => FINAL.includes(m.status));
    expect(final).toMatchObject({ status: 'completed', forceCompleteRequested: true, dest_compute: 'xen-b' });
    expect(await placements(stack, uuid)).toEqual([{ host: 'xen-b', powerState: 'Running' }]);
    // A finished migration cannot be force-completed: Nova's 400.
    const late = await call('POST', `/v2.1/servers/${uuid}/migrations/${mid}/action`, { headers: NOVA, body: { force_complete: null } });
    expect(late.status).toBe(400);
    expect(late.body.badRequest).toMatchObject({ code: 400, message: expect.stringContaining('is completed. Cannot force complete') });

    // os-instance-actions: the migration as a live-migration action, its steps as events from the history.
    const actions = await until(
      'the instance action',
      async () => ((await call('GET', `/v2.1/servers/${uuid}/os-instance-actions`, { headers: NOVA })).body.instanceActions ?? []) as Record<string, unknown>[],
      (a) => a.length === 1,
    );
    expect(actions[0]).toMatchObject({ action: 'live-migration', instance_uuid: uuid, request_id: `req-${runId}`, user_id: 'operator', project_id: 'ferry' });
    const shown = await call('GET', `/v2.1/servers/${uuid}/os-instance-actions/req-${runId}`, { headers: NOVA });
    expect(shown.status).toBe(200);
    const events = (shown.body.instanceAction as { events: { event: string; result: string | null; host?: string }[] }).events;
    expect(events.map((e) => e.event)).toEqual(
      expect.arrayContaining(['conductor_live_migrate_instance', 'compute_check_can_live_migrate_destination', 'compute_live_migration', 'compute_live_migration_force_complete', 'compute_post_live_migration_at_destination']),
    );
    expect(events.filter((e) => e.result !== 'Success')).toEqual([]);
    expect(events.find((e) => e.event === 'compute_live_migration')?.host).toBe('xen-a');
    const unknown = await call('GET', `/v2.1/servers/${uuid}/os-instance-actions/req-00000000-0000-4000-8000-00000000dead`, { headers: NOVA });
    expect(unknown.status).toBe(404);
    expect(unknown.body.itemNotFound).toMatchObject({ code: 404 });
  });

  it('ferry /v1: POST /v1/migrations/{id}/force-complete answers the workflow\'s acceptance, then 409 once it ended', async () => {
    const uuid = await vm('xen-b', 'routes-v1-force', 512, 48);
    const started = await call('POST', '/v1/migrations', { token: OPERATOR, body: { instanceUuid: uuid, host: 'xen-a' } });
    const id = started.body.id as string;
    await waitFor(id, inPrecopy);
    const force = await call('POST', `/v1/migrations/${id}/force-complete`, { token: OPERATOR });
    expect(force.status).toBe(202);
    expect(force.body).toEqual({ accepted: true, status: 'running', phase: 'precopy' });
    expect(await waitFor(id, (m) => FINAL.includes(m.status))).toMatchObject({ status: 'completed', forceCompleteRequested: true });
    const late = await call('POST', `/v1/migrations/${id}/force-complete`, { token: OPERATOR });
    expect(late.status).toBe(409);
    expect(late.body.error).toMatchObject({ code: 'conflict', status: 409 });
  });
});

describe('the CLI against the real stack', () => {
  it('migrate, watch while force-complete is accepted, show, list; migrate --watch aborted; hosts and instances', async () => {
    const uuid = await vm('xen-a', 'cli-force', 512, 48);
    const started = await ferry(['--json', 'migrate', uuid, '--host', 'xen-b']);
    expect(started.code).toBe(EXIT.ok);
    const id = JSON.parse(started.out).id as string;
    // watch follows the progress stream (GET /v1/migrations/{id}/events) while force-complete is sent.
    const watching = ferry(['watch', id], READ);
    await waitFor(id, inPrecopy);
    const force = await ferry(['force-complete', uuid]);
    expect(force).toMatchObject({ code: EXIT.ok, out: 'Force-complete accepted (status running, phase precopy)\n' });
    const watched = await watching;
    expect(watched.code).toBe(EXIT.ok);
    expect(watched.out).toMatch(/^xen-a → xen-b {2}precopy {2}/m);
    expect(watched.out.trim().split('\n').at(-1)).toMatch(new RegExp(`^completed: ${uuid} now runs on xen-b, 512 MiB moved$`));

    const show = await ferry(['show', id], READ);
    expect(show.code).toBe(EXIT.ok);
    expect(show.out).toContain(`Migration   ${id}`);
    expect(show.out).toContain('Status      completed (phase done)');
    expect(show.out).toMatch(/Web UI {6}http:\/\/127\.0\.0\.1:\d+\/namespaces\/default\/workflows\/live-migration-/);
    expect(JSON.parse((await ferry(['--json', 'show', uuid], READ)).out)).toMatchObject({ uuid: id, status: 'completed', forceCompleteRequested: true });
    const listed = await until('the CLI list', () => ferry(['list', '--instance', uuid, '--closed'], READ), (r) => r.out.includes(id));
    expect(listed.out.split('\n')[0]).toMatch(/^ID\s+INSTANCE\s+STATUS/);
    expect(listed.out).toMatch(new RegExp(`${id}\\s+${uuid}\\s+completed\\s+done\\s+xen-a → xen-b\\s+100%`));

    // migrate --watch, aborted from another shell: exit 1 and the outcome.
    const second = await vm('xen-a', 'cli-abort', 512, 16);
    const migrating = ferry(['--json', 'migrate', second, '--watch']);
    const running = await until('the second migration', () => migration(second), (m) => m.server_uuid === second && inPrecopy(m));
    const abort = await ferry(['abort', running.uuid, '--reason', 'cli e2e']);
    expect(abort).toMatchObject({ code: EXIT.ok, out: 'Abort accepted (status running, phase precopy)\n' });
    const aborted = await migrating;
    expect(aborted.code).toBe(EXIT.migrationFailed);
    const lines = aborted.out.trim().split('\n').map((l) => JSON.parse(l) as { event: string; data: { status?: string; id?: string } });
    expect(lines[0]).toMatchObject({ event: 'started', data: { id: running.uuid } });
    expect(lines.at(-1)).toMatchObject({ event: 'end', data: { status: 'cancelled' } });
    const twice = await ferry(['abort', running.uuid]);
    expect(twice.code).toBe(EXIT.conflict);
    expect(twice.err).toMatch(/cancelled.*\(HTTP 409\)/);

    const hosts = await ferry(['hosts'], READ);
    expect(hosts.code).toBe(EXIT.ok);
    expect(hosts.out).toMatch(/^xen-a\s+pool-1\s+up\s/m);
    const instances = await until('the CLI instances', () => ferry(['--json', 'instances', '--host', 'xen-b'], READ), (r) => r.out.includes(uuid));
    expect((JSON.parse(instances.out).instances as { uuid: string; host: string }[]).find((i) => i.uuid === uuid)).toMatchObject({ host: 'xen-b' });

    // Refusals before anything starts: an unknown host is not found (3), the instance's own host a conflict (4).
    const unknownHost = await ferry(['migrate', uuid, '--host', 'xen-z']);
    expect(unknownHost.code).toBe(EXIT.notFound);
    expect(unknownHost.err).toMatch(/xen-z.*\(HTTP 404\)/);
    const sameHost = await ferry(['--json', 'migrate', uuid, '--host', 'xen-b']);
    expect(sameHost.code).toBe(EXIT.conflict);
    expect(JSON.parse(sameHost.out)).toMatchObject({ error: { status: 409, message: expect.stringContaining('xen-b') } });
    const noToken = await ferry(['list'], '');
    expect(noToken.code).toBe(EXIT.unauthorized);
  });
});

describe('resize and cold migration: flavors, the Nova actions and /v1/cold-migrations', () => {
  const cold = async (id: string) => (await call('GET', `/v1/cold-migrations/${id}`, { token: READ })).body as unknown as ColdMigrationView;
  const coldWhen = (id: string, ok: (v: ColdMigrationView) => boolean) => until(`cold migration ${id}`, () => cold(id), ok, 120_000);

  it('flavors; a resize started on /v1 to VERIFY_RESIZE, confirmed twice, revert refused; a Nova cold migrate reverted on /v1', async () => {
    const flavors = await call('GET', '/v2.1/flavors', { headers: NOVA });
    expect(flavors.body.flavors).toEqual([expect.objectContaining({ id: 'rt-1', name: 'rt-small' }), expect.objectContaining({ id: 'rt-2', name: 'rt-grow' })]);
    const detail = await call('GET', '/v2.1/flavors/detail?minRam=64', { headers: NOVA });
    expect(detail.body.flavors).toEqual([expect.objectContaining({ id: 'rt-2', ram: 64, disk: 1, vcpus: 2, swap: 0, extra_specs: {} })]);
    expect((await call('GET', '/v2.1/flavors/rt-2', { headers: NOVA })).body.flavor).toMatchObject({ name: 'rt-grow' });
    expect((await call('GET', '/v2.1/flavors/nope', { headers: NOVA })).status).toBe(404);
    expect((await call('GET', '/v2.1/flavors/rt-2/os-extra_specs', { headers: NOVA })).body).toEqual({ extra_specs: {} });
    expect((await call('GET', '/v2.1/flavors/rt-2/os-extra_specs/hw:cpu_policy', { headers: NOVA })).status).toBe(404);

    const admin = stack.sims.host('xen-a').admin;
    const resized = (await admin.createVm({ nameLabel: 'rt-resize', memoryMiB: 32, vcpus: 1, diskMiB: [8], sr: 'local' })).uuid;
    await until('the VM in the inventory', () => call('GET', `/v2.1/servers/${resized}`, { headers: NOVA }), (r) => r.status === 200);
    // To xen-b: the maintenance test below drains xen-c and counts its VMs.
    const started = await call('POST', '/v1/cold-migrations', { token: OPERATOR, body: { instanceUuid: resized, flavor: 'rt-grow', host: 'xen-b' } });
    expect(started.status).toBe(202);
    const id = started.body.uuid as string;
    expect(started.headers.get('location')).toBe(`/v1/cold-migrations/${id}`);
    const finished = await coldWhen(id, (v) => v.status === 'finished' || v.status === 'error');
    expect(finished).toMatchObject({ status: 'finished', migrationType: 'resize', sourceHost: 'xen-a', destHost: 'xen-b', newSize: { vcpus: 2, ramMiB: 64, diskBytes: 2 ** 30 } });
    expect(finished.downtimeMs).toBeGreaterThan(0);
    const listed = await call('GET', `/v1/cold-migrations?instance=${resized}`, { token: READ });
    expect((listed.body.coldMigrations as ColdMigrationView[]).map((v) => v.uuid)).toEqual([id]);
    expect((await call('GET', `/v2.1/servers/${resized}`, { headers: NOVA })).body.server).toMatchObject({ status: 'VERIFY_RESIZE', 'OS-EXT-SRV-ATTR:host': finished.destHost });

    const confirmed = await call('POST', `/v1/cold-migrations/${id}/confirm`, { token: OPERATOR });
    expect(confirmed).toMatchObject({ status: 200, body: { status: 'confirming' } });
    expect((await call('POST', `/v1/cold-migrations/${id}/confirm`, { token: OPERATOR })).status).toBe(200);
    const refused = await call('POST', `/v1/cold-migrations/${id}/revert`, { token: OPERATOR });
    expect(refused.status).toBe(409);
    expect(refused.body.error?.message).toContain('already confirmed');
    await coldWhen(id, (v) => v.status === 'confirmed');
    const server = (await call('GET', `/v2.1/servers/${resized}`, { headers: NOVA })).body.server as Record<string, unknown>;
    expect(server).toMatchObject({ id: resized, status: 'ACTIVE', flavor: expect.objectContaining({ original_name: 'rt-grow' }) });

    const moved = (await admin.createVm({ nameLabel: 'rt-cold', memoryMiB: 32, vcpus: 1, diskMiB: [8], sr: 'local' })).uuid;
    await until('the VM in the inventory', () => call('GET', `/v2.1/servers/${moved}`, { headers: NOVA }), (r) => r.status === 200);
    expect((await call('POST', `/v2.1/servers/${moved}/action`, { headers: NOVA, body: { migrate: { host: 'xen-c' } } })).status).toBe(202);
    const verify = await coldWhen(moved, (v) => v.status === 'finished' || v.status === 'error');
    expect(verify).toMatchObject({ status: 'finished', migrationType: 'migration', destHost: 'xen-c' });
    const rows = (await call('GET', `/v2.1/os-migrations?migration_type=migration&instance_uuid=${moved}`, { headers: NOVA })).body.migrations as { status: string }[];
    expect(rows).toEqual([expect.objectContaining({ status: 'finished', migration_type: 'migration', dest_compute: 'xen-c' })]);
    expect((await call('POST', `/v1/cold-migrations/${moved}/revert`, { token: OPERATOR })).body).toMatchObject({ status: 'reverting' });
    await coldWhen(moved, (v) => v.status === 'reverted');
    expect((await call('GET', `/v2.1/servers/${moved}`, { headers: NOVA })).body.server).toMatchObject({ status: 'ACTIVE', 'OS-EXT-SRV-ATTR:host': 'xen-a' });
  }, 300_000);
});

describe('a server whose latest migration ended in error', () => {
  it('is ERROR in /servers/detail and /servers/{id}, and its migration is found by status', async () => {
    const admin = stack.sims.host('xen-a').admin;
    const uuid = (await admin.createVm({ nameLabel: 'routes-error', memoryMiB: 32, diskMiB: [8], sr: 'shared', dirtyRateMiBps: 32 })).uuid;
    // A slow link that never converges: the transfer is still in pre-copy when the source crashes.
    await admin.setBandwidth(16);
    await admin.setMaxIterations(0);
    let id: string;
    try {
      const started = await call('POST', '/v1/migrations', { token: OPERATOR, body: { instanceUuid: uuid, host: 'xen-b' } });
      id = started.body.id as string;
      await waitFor(id, inPrecopy);
      await stack.sims.crash('xen-a');
      await new Promise((r) => setTimeout(r, 1000));
      await stack.sims.restart('xen-a');
    } finally {
      await admin.setBandwidth(64).catch(() => undefined);
      await admin.setMaxIterations(5).catch(() => undefined);
    }
    const final = await waitFor(id, (m) => FINAL.includes(m.status), 180_000);
    expect(final.status).toBe('error');
    expect(final.error?.message).toMatch(/no longer runs on the source xen-a/);
    await inventoryWhen(stack, (v) => v.hosts.every((h) => h.up), 60_000);

    const server = await until(
      'the ERROR server',
      async () => (await call('GET', `/v2.1/servers/${uuid}`, { headers: NOVA })).body.server as Record<string, unknown> | undefined,
      (s) => s?.status === 'ERROR',
    );
    expect(server).toMatchObject({ id: uuid, 'OS-EXT-STS:task_state': null, 'OS-EXT-SRV-ATTR:host': 'xen-a' });
    const detail = (await call('GET', '/v2.1/servers/detail?status=ERROR', { headers: NOVA })).body.servers as Record<string, unknown>[];
    expect(detail.map((s) => s.id)).toEqual([uuid]);
    const byStatus = (await call('GET', '/v2.1/os-migrations?status=error', { headers: NOVA })).body.migrations as Record<string, unknown>[];
    expect(byStatus.map((m) => m.uuid)).toEqual([id]);
    expect(((await call('GET', '/v1/migrations?status=error', { token: READ })).body.migrations as MigrationStatusView[]).map((m) => m.uuid)).toEqual([id]);
    // Nova's list of the server's migrations shows only those in progress.
    expect((await call('GET', `/v2.1/servers/${uuid}/migrations`, { headers: NOVA })).body.migrations).toEqual([]);
  }, 300_000);
});

describe('while Temporal is down', () => {
  it('/readyz fails and the routes answer 503 with Nova\'s or ferry\'s error body; a watch rides it out; all is well once it is back', async () => {
    // A migration that runs until it is aborted (dirtier than its link, no policy ending it), watched from before the outage.
    const admin = stack.sims.host('xen-a').admin;
    await admin.setBandwidth(8);
    await admin.setMaxIterations(0);
    let id: string;
    const watchOut: string[] = [];
    let watching: ReturnType<typeof ferry>;
    try {
      const uuid = await vm('xen-a', 'routes-outage', 256, 16);
      const started = await call('POST', '/v1/migrations', {
        token: OPERATOR,
        body: { instanceUuid: uuid, host: 'xen-b', options: { autoConverge: false, completionTimeoutPerGiB: 0, progressTimeout: 0 } },
      });
      expect(started.status).toBe(202);
      id = started.body.id as string;
      await waitFor(id, inPrecopy);
      watching = ferry(['--json', 'watch', id], READ, watchOut);
      await until('the watch\'s first event', async () => watchOut.join(''), (text) => text.includes('"event":"migration"'));

      await new Promise<void>((resolve) => {
        stack.devServer.process.once('exit', () => resolve());
        stack.devServer.process.kill('SIGKILL');
      });
      try {
        const ready = await call('GET', '/readyz');
        expect(ready.status).toBe(503);
        expect(ready.body).toMatchObject({ status: 'unavailable', checks: { temporal: expect.stringContaining(stack.config.temporal.address) } });
        expect((await call('GET', '/healthz')).status).toBe(200);

        const v1 = await call('GET', '/v1/migrations', { token: READ });
        expect(v1.status).toBe(503);
        expect(v1.body.error).toMatchObject({ code: 'unavailable', status: 503, message: expect.stringContaining('Temporal did not answer') });
        const nova = await call('GET', '/v2.1/os-migrations', { headers: NOVA });
        expect(nova.status).toBe(503);
        expect(nova.body).toEqual({ serviceUnavailable: { code: 503, message: expect.stringContaining('Temporal did not answer') } });

        const cli = await ferry(['--json', 'list'], READ);
        expect(cli.code).toBe(EXIT.unreachable);
        expect(JSON.parse(cli.out)).toMatchObject({ error: { code: 'unavailable', status: 503 } });
        // The progress stream says so with `error` events.
        await until('an error event on the stream', async () => watchOut.join(''), (text) => text.includes('"event":"error"'));
      } finally {
        await stack.restartDevServer();
      }
      const back = await until('/readyz after the restart', () => call('GET', '/readyz'), (r) => r.status === 200, 120_000);
      expect(back.body).toMatchObject({ status: 'ok' });
      expect((await call('GET', '/v1/migrations?limit=1', { token: READ })).status).toBe(200);

      // The migration went on; aborting it ends the watch that started before the outage.
      const abort = await until('the abort after the restart', () => call('POST', `/v1/migrations/${id}/abort`, { token: OPERATOR, body: { reason: 'after the outage' } }), (r) => r.status !== 503, 60_000);
      expect(abort.status).toBe(202);
      expect((await waitFor(id, (m) => FINAL.includes(m.status))).status).toBe('cancelled');
      const watched = await watching;
      expect(watched.code).toBe(EXIT.migrationFailed);
      const events = watched.out.trim().split('\n').map((l) => JSON.parse(l) as { event: string; data: { status?: string; code?: string } });
      expect(events.find((e) => e.event === 'error')?.data).toMatchObject({ code: 'unavailable' });
      expect(events.at(-1)).toMatchObject({ event: 'end', data: { status: 'cancelled' } });
    } finally {
      await admin.setBandwidth(64).catch(() => undefined);
      await admin.setMaxIterations(5).catch(() => undefined);
    }
  }, 360_000);
});

describe('os-services', () => {
  it('lists each host\'s nova-compute service; 2.53 disables with a reason and enables; the actions before 2.53 do the same by host', async () => {
    const at = (v: string) => ({ 'openstack-api-version': `compute ${v}`, 'x-auth-token': OPERATOR });
    const list = await call('GET', '/v2.1/os-services?binary=nova-compute', { headers: NOVA });
    expect(list.status).toBe(200);
    const services = list.body.services as { id: string; host: string; status: string; state: string }[];
    expect(services.map((s) => s.host)).toEqual(['xen-a', 'xen-b', 'xen-c']);
    const id = services.find((s) => s.host === 'xen-c')?.id as string;
    const disabled = await call('PUT', `/v2.1/os-services/${id}`, { headers: NOVA, body: { status: 'disabled', disabled_reason: 'routes test' } });
    expect(disabled.body.service).toMatchObject({ host: 'xen-c', status: 'disabled', disabled_reason: 'routes test' });
    expect((await call('PUT', `/v2.1/os-services/${id}`, { headers: NOVA, body: { status: 'enabled' } })).body.service).toMatchObject({ status: 'enabled', disabled_reason: null });
    const service = { host: 'xen-c', binary: 'nova-compute' };
    expect((await call('PUT', '/v2.1/os-services/disable-log-reason', { headers: at('2.52'), body: { ...service, disabled_reason: 'old style' } })).body).toEqual({
      service: { ...service, status: 'disabled', disabled_reason: 'old style' },
    });
    expect((await call('PUT', '/v2.1/os-services/enable', { headers: at('2.52'), body: service })).body).toEqual({ service: { ...service, status: 'enabled' } });
    expect((await call('PUT', '/v2.1/os-services/disable', { headers: at('2.52'), body: service })).body).toEqual({ service: { ...service, status: 'disabled' } });
    expect((await call('PUT', '/v2.1/os-services/enable', { headers: at('2.52'), body: service })).status).toBe(200);
    expect((await call('PUT', '/v2.1/os-services/force-down', { headers: at('2.52'), body: { ...service, forced_down: true } })).body).toEqual({ service: { ...service, forced_down: true } });
    expect((await call('PUT', '/v2.1/os-services/force-down', { headers: at('2.52'), body: { ...service, forced_down: false } })).status).toBe(200);
    const after = (await call('GET', '/v2.1/os-services?host=xen-c', { headers: NOVA })).body.services as Record<string, unknown>[];
    expect(after).toEqual([expect.objectContaining({ host: 'xen-c', status: 'enabled', disabled_reason: null, forced_down: false })]);
  }, 120_000);
});

describe('host maintenance (/v1/hosts/{name}/maintenance)', () => {
  it('drains xen-c of its VM, refuses what its state does not allow, leaves with the VM brought back', async () => {
    const uuid = (await stack.sims.host('xen-c').admin.createVm({ nameLabel: 'maint-routes', memoryMiB: 16, diskMiB: [4], sr: 'local' })).uuid;
    await inventoryWhen(stack, (inv) => inv.hosts.some((h) => h.name === 'xen-c' && h.instances.some((i) => i.uuid === uuid)));
    expect((await call('POST', '/v1/hosts/no-such-host/maintenance', { token: OPERATOR, body: {} })).status).toBe(404);
    expect((await call('GET', '/v1/hosts/xen-b/maintenance', { token: READ })).status).toBe(404);
    expect((await call('POST', '/v1/hosts/xen-c/maintenance', { token: READ, body: {} })).status).toBe(403);
    const started = await call('POST', '/v1/hosts/xen-c/maintenance', { token: OPERATOR, body: { parallelism: 1 } });
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ host: 'xen-c', workflowId: 'host-maintenance-xen-c' });
    expect((await call('POST', '/v1/hosts/xen-c/maintenance', { token: OPERATOR })).status).toBe(409);
    const show = () => call('GET', '/v1/hosts/xen-c/maintenance', { token: READ }).then((r) => r.body as { status: string; vms: { uuid: string; state: string; destHost: string | null }[] });
    const drained = await until('drained', show, (m) => m.status === 'drained' || m.status === 'partial', 120_000);
    expect(drained.status).toBe('drained');
    expect(drained.vms).toEqual([expect.objectContaining({ uuid, state: 'moved' })]);
    expect((await placements(stack, uuid))[0]?.host).not.toBe('xen-c');
    for (const action of ['pause', 'resume', 'cancel']) {
      const refused = await call('POST', `/v1/hosts/xen-c/maintenance/${action}`, { token: OPERATOR, body: {} });
      expect(refused.status).toBe(409);
      expect(refused.body.error?.message).toContain(`cannot ${action} a maintenance that is drained`);
    }
    expect((await call('POST', '/v1/hosts/xen-b/maintenance/leave', { token: OPERATOR, body: {} })).status).toBe(404);
    const leaving = await call('POST', '/v1/hosts/xen-c/maintenance/leave', { token: OPERATOR, body: { bringBack: true } });
    expect(leaving.status).toBe(202);
    expect(leaving.body).toMatchObject({ status: 'leaving', bringBack: true });
    const left = await until('left', show, (m) => m.status === 'left', 120_000);
    expect(left.vms).toEqual([expect.objectContaining({ uuid, state: 'returned' })]);
    expect(await placements(stack, uuid)).toEqual([{ host: 'xen-c', powerState: 'Running' }]);
    // Over: a pause now is refused, not lost.
    expect((await call('POST', '/v1/hosts/xen-c/maintenance/pause', { token: OPERATOR })).status).toBe(409);
  }, 300_000);
});

describe('coverage', () => {
  it('every operation of /openapi.json was called against the real stack above', async () => {
    const doc = (await call('GET', '/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.keys(item)
        .filter((k) => ['get', 'post', 'put', 'patch', 'delete'].includes(k))
        .map((method) => ({ route: `${method.toUpperCase()} ${path}`, pattern: new RegExp(`^${method.toUpperCase()} ${path.replace(/\{\w+\}/g, '[^/]+')}$`) })),
    );
    expect(documented.length).toBeGreaterThanOrEqual(25);
    // Each documented operation, matched by a request that no more specific route matches.
    const uncalled = documented.filter(({ pattern, route }) => !sent.some((r) => pattern.test(r) && !documented.some((d) => d.route !== route && d.pattern.test(r) && !d.route.includes('{'))));
    expect(uncalled.map((d) => d.route).sort()).toEqual([]);
  });
});
