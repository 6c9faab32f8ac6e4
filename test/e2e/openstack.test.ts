// openstackclient against ferry through a real Keystone, as an operator would use it: Keystone 30
// from PyPI on SQLite (lib/keystone.ts) with ferry registered as the `compute` service, the API in
// keystone mode (api.auth.mode: keystone, ferry's own service user), a clouds.yaml in a temporary
// folder and OS_CLOUD. Every command's output (-f json) is asserted; a reader's token cannot start
// a migration (403) and a bad token is refused (401).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type RunningApi } from '../../api/main';
import { parseConfig } from '../../lib/config';
import { openstackCliPath, startKeystone, type RunningKeystone } from '../../lib/keystone';
import { startStack, type Stack } from '../../lib/stack';

const PASSWORD_ENV = 'FERRY_TEST_KEYSTONE_SERVICE_PASSWORD';

let stack: Stack;
let keystone: RunningKeystone;
let api: RunningApi;
let dir: string;
let clouds: string;
/** Every command run, with its exit status: the closing note lists them. */
const transcript: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-openstack-'));
  // autoConverge off: a guest that dirties faster than the link never converges on its own, so a
  // migration runs until it is aborted or force-completed.
  const [stackStarted, keystoneStarted] = await Promise.allSettled([
    startStack({ bandwidthMiBps: 64, migration: { autoConverge: { enabled: false } } }),
    startKeystone({ stateDir: join(dir, 'keystone') }),
  ]);
  // Whichever started is stopped by afterAll, even when the other did not.
  if (stackStarted.status === 'fulfilled') stack = stackStarted.value;
  if (keystoneStarted.status === 'fulfilled') keystone = keystoneStarted.value;
  if (stackStarted.status === 'rejected') throw stackStarted.reason;
  if (keystoneStarted.status === 'rejected') throw keystoneStarted.reason;
  process.env[PASSWORD_ENV] = keystone.service.password;
  const config = parseConfig({
    ...stack.config,
    api: { ...stack.config.api, auth: { mode: 'keystone', url: keystone.url, service: { user: keystone.service.name, passwordEnv: PASSWORD_ENV }, cacheSeconds: 30 } },
  });
  api = await startApi({ config, listen: '127.0.0.1:0', logger: pino({ level: process.env.FERRY_LOG_LEVEL ?? 'silent' }) });
  await keystone.registerCompute(api.url);
  clouds = keystone.writeCloudsYaml(dir);
}, 240_000);

afterAll(async () => {
  await api?.close();
  await Promise.all([stack?.stop(), keystone?.stop()]);
  delete process.env[PASSWORD_ENV];
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (process.env.FERRY_OPENSTACK_TRANSCRIPT) process.stdout.write(`${transcript.join('\n')}\n`);
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function openstack(args: string[], cloud = 'ferry-admin'): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(
      openstackCliPath,
      args,
      { env: { ...process.env, OS_CLIENT_CONFIG_FILE: clouds, OS_CLOUD: cloud }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        transcript.push(`OS_CLOUD=${cloud} openstack ${args.join(' ')}  -> exit ${code}${code ? `: ${stderr.trim().split('\n').pop()}` : ''}`);
        resolveRun({ code, stdout, stderr });
      },
    );
  });
}

async function json<T = Record<string, unknown>>(args: string[], cloud?: string): Promise<T> {
  const run = await openstack([...args, '-f', 'json'], cloud);
  if (run.code !== 0) throw new Error(`openstack ${args.join(' ')} failed (${run.code}): ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

async function ok(args: string[], cloud?: string): Promise<Run> {
  const run = await openstack(args, cloud);
  expect(run.code, `openstack ${args.join(' ')}: ${run.stderr}`).toBe(0);
  return run;
}

type MigrationRow = Record<string, unknown> & { UUID: string; Id: number; Status: string };

/** Polls `server migration list --server` until the newest migration satisfies the predicate. */
async function migrationOf(server: string, predicate: (m: MigrationRow) => boolean, what: string): Promise<MigrationRow> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const rows = await json<MigrationRow[]>(['server', 'migration', 'list', '--server', server]);
    const newest = rows[0];
    if (newest && predicate(newest)) return newest;
    if (Date.now() > deadline) throw new Error(`${server}'s migration did not become ${what}: ${JSON.stringify(rows)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The migration's progress through the API, with a Keystone token: the transfer has begun. */
async function transferring(server: string): Promise<void> {
  const token = await keystone.issueToken(keystone.users.admin);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const res = await fetch(`${api.url}/v1/migrations/${server}`, { headers: { 'x-auth-token': token } });
    const view = (await res.json()) as { phase?: string; progress?: { fraction?: number } | null };
    if (view.phase === 'precopy' && (view.progress?.fraction ?? 0) > 0) return;
    if (Date.now() > deadline) throw new Error(`${server} is not transferring: ${JSON.stringify(view)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

const hostOf = async (server: string) => (await json(['server', 'show', server]))['OS-EXT-SRV-ATTR:host'];

describe('openstackclient through Keystone', () => {
  let web: string;

  it('server list and server show', async () => {
    web = (await stack.sims.host('xen-a').admin.createVm({ nameLabel: 'os-web-1', memoryMiB: 64, diskMiB: [8], sr: 'shared' })).uuid;
    const list = await json<{ ID: string; Name: string; Status: string }[]>(['server', 'list']);
    expect(list).toContainEqual(expect.objectContaining({ ID: web, Name: 'os-web-1', Status: 'ACTIVE' }));
    const shown = await json(['server', 'show', 'os-web-1']);
    expect(shown).toMatchObject({ id: web, name: 'os-web-1', status: 'ACTIVE', 'OS-EXT-SRV-ATTR:host': 'xen-a', 'OS-EXT-STS:task_state': null });
    // Readers and members read too.
    expect((await json(['server', 'show', web], 'ferry-reader')).id).toBe(web);
    expect((await json(['server', 'show', web], 'ferry-member')).id).toBe(web);
  });

  it('server migrate --live-migration, without and with --host; the migration records the Keystone user and project', async () => {
    await ok(['server', 'migrate', '--live-migration', web]);
    const first = await migrationOf(web, (m) => m.Status === 'completed', 'completed');
    expect(first).toMatchObject({ 'Source Compute': 'xen-a', 'Dest Compute': 'xen-b', Type: 'live-migration' });
    expect(await hostOf(web)).toBe('xen-b');

    await ok(['server', 'migrate', '--live-migration', '--host', 'xen-a', web]);
    const back = await migrationOf(web, (m) => m.UUID !== first.UUID && m.Status === 'completed', 'completed');
    expect(back).toMatchObject({ 'Source Compute': 'xen-b', 'Dest Compute': 'xen-a', 'Dest Host': 'xen-a' });
    expect(await hostOf(web)).toBe('xen-a');

    // os-migrations 2.80 carries who asked: the admin user and the demo project's ids from Keystone.
    const token = await keystone.issueToken(keystone.users.admin);
    const res = await fetch(`${api.url}/v2.1/os-migrations?instance_uuid=${web}`, { headers: { 'x-auth-token': token, 'openstack-api-version': 'compute 2.80' } });
    const { migrations } = (await res.json()) as { migrations: { uuid: string; user_id: string; project_id: string }[] };
    expect(migrations.map((m) => m.uuid).sort()).toEqual([first.UUID, back.UUID].sort());
    const projectId = (await (await fetch(`${keystone.url}/auth/tokens?nocatalog`, { headers: { 'x-auth-token': token, 'x-subject-token': token } })).json()) as { token: { project: { id: string } } };
    for (const m of migrations) expect(m).toMatchObject({ user_id: keystone.users.admin.id, project_id: projectId.token.project.id });
    const byUser = await fetch(`${api.url}/v2.1/os-migrations?user_id=${keystone.users.member.id}`, { headers: { 'x-auth-token': token, 'openstack-api-version': 'compute 2.80' } });
    expect(((await byUser.json()) as { migrations: unknown[] }).migrations).toEqual([]);
  });

  it('a reader cannot start a migration (403), a bad token gets 401', async () => {
    const refused = await openstack(['server', 'migrate', '--live-migration', web], 'ferry-reader');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/403|Forbidden/i);
    const member = await openstack(['server', 'migrate', '--live-migration', web], 'ferry-member');
    expect(member.stderr).toMatch(/403|Forbidden/i);
    const bad = await fetch(`${api.url}/v2.1/servers`, { headers: { 'x-auth-token': 'gAAAAA-not-a-token' } });
    expect(bad.status).toBe(401);
    expect(await hostOf(web)).toBe('xen-a');
  });

  it('--block-migration to the other pool, migration list by server, host and status, show, force complete', async () => {
    const admin = stack.sims.host('xen-a').admin;
    const busy = (await admin.createVm({ nameLabel: 'os-busy-1', memoryMiB: 64, diskMiB: [8], sr: 'shared', dirtyRateMiBps: 40 })).uuid;
    await admin.setBandwidth(16);
    await admin.setMaxIterations(0);
    try {
      await ok(['server', 'migrate', '--live-migration', '--block-migration', '--host', 'xen-c', busy]);
      await transferring(busy);
      const running = await json<MigrationRow[]>(['server', 'migration', 'list', '--server', busy, '--status', 'running']);
      expect(running).toHaveLength(1);
      const m = running[0] as MigrationRow;
      expect(m).toMatchObject({ 'Server UUID': busy, 'Source Compute': 'xen-a', 'Dest Compute': 'xen-c', Status: 'running' });
      const byHost = await json<MigrationRow[]>(['server', 'migration', 'list', '--host', 'xen-c']);
      expect(byHost.map((r) => r.UUID)).toContain(m.UUID);
      expect(await json<MigrationRow[]>(['server', 'migration', 'list', '--server', busy, '--status', 'completed'])).toEqual([]);

      const shown = await json(['server', 'migration', 'show', busy, m.UUID]);
      expect(shown).toMatchObject({ ID: m.Id, UUID: m.UUID, 'Server UUID': busy, Status: 'running', 'Dest Compute': 'xen-c', 'User ID': keystone.users.admin.id });
      expect(shown['Memory Total Bytes']).toBe(64 * 2 ** 20);
      expect(shown['Disk Total Bytes']).toBe(8 * 2 ** 20);

      await ok(['server', 'migration', 'force', 'complete', busy, m.UUID]);
      await migrationOf(busy, (r) => r.UUID === m.UUID && r.Status === 'completed', 'completed');
      expect(await hostOf(busy)).toBe('xen-c');
    } finally {
      await admin.setBandwidth(64);
      await admin.setMaxIterations(5);
    }
  });

  let aborted: { server: string; uuid: string };

  it('server migration abort: the VM stays on its host', async () => {
    const admin = stack.sims.host('xen-a').admin;
    const busy = (await admin.createVm({ nameLabel: 'os-busy-2', memoryMiB: 64, diskMiB: [8], sr: 'shared', dirtyRateMiBps: 40 })).uuid;
    await admin.setBandwidth(16);
    await admin.setMaxIterations(0);
    try {
      await ok(['server', 'migrate', '--live-migration', '--host', 'xen-b', busy]);
      await transferring(busy);
      const [m] = await json<MigrationRow[]>(['server', 'migration', 'list', '--server', busy, '--status', 'running']);
      expect(m).toBeDefined();
      await ok(['server', 'migration', 'abort', busy, (m as MigrationRow).UUID]);
      await migrationOf(busy, (r) => r.UUID === (m as MigrationRow).UUID && r.Status === 'cancelled', 'cancelled');
      expect(await json(['server', 'show', busy])).toMatchObject({ status: 'ACTIVE', 'OS-EXT-SRV-ATTR:host': 'xen-a' });
      aborted = { server: busy, uuid: (m as MigrationRow).UUID };
    } finally {
      await admin.setBandwidth(64);
      await admin.setMaxIterations(5);
    }
  });

  it('server event list and server event show: one action per migration, one event per step', async () => {
    const actions = await json<Record<string, unknown>[]>(['server', 'event', 'list', '--long', web]);
    expect(actions).toHaveLength(2);
    for (const a of actions) {
      expect(a).toMatchObject({ 'Server ID': web, Action: 'live-migration', 'User ID': keystone.users.admin.id, Message: null });
      expect(a['Request ID']).toMatch(/^req-[0-9a-f-]{36}$/);
    }
    const migrations = await json<MigrationRow[]>(['server', 'migration', 'list', '--server', web]);
    expect(actions.map((a) => a['Request ID']).sort()).toEqual(migrations.map((m) => `req-${m.UUID}`).sort());

    const shown = await json<{ request_id: string; action: string; events: { event: string; result: string; host: string; start_time: string; finish_time: string }[] }>([
      'server', 'event', 'show', web, String(actions[1]?.['Request ID']),
    ]);
    expect(shown).toMatchObject({ action: 'live-migration', request_id: actions[1]?.['Request ID'] });
    const names = shown.events.map((e) => e.event);
    expect(names).toEqual(
      expect.arrayContaining([
        'conductor_live_migrate_instance',
        'compute_check_instance_active',
        'compute_check_can_live_migrate_destination',
        'compute_check_can_live_migrate_source',
        'compute_live_migration',
        'compute_post_live_migration_at_destination',
        'compute_post_live_migration',
      ]),
    );
    for (const e of shown.events) {
      expect(e.result).toBe('Success');
      expect(e.finish_time >= e.start_time).toBe(true);
    }
    // The first migration went from xen-a to xen-b: the transfer ran on the source, the post step on the destination.
    expect(shown.events.find((e) => e.event === 'compute_live_migration')?.host).toBe('xen-a');
    expect(shown.events.find((e) => e.event === 'compute_post_live_migration_at_destination')?.host).toBe('xen-b');

    // The aborted migration: its transfer ended in Error, the rollback succeeded.
    const abortedShown = await json<{ events: { event: string; result: string }[] }>(['server', 'event', 'show', aborted.server, `req-${aborted.uuid}`]);
    expect(abortedShown.events).toContainEqual(expect.objectContaining({ event: 'compute_live_migration', result: 'Error' }));
    expect(abortedShown.events).toContainEqual(expect.objectContaining({ event: 'compute_rollback_live_migration', result: 'Success' }));

    // A reader sees the events (2.51+) but neither tracebacks nor hosts.
    const asReader = await json<{ events: Record<string, unknown>[] }>(['server', 'event', 'show', aborted.server, `req-${aborted.uuid}`], 'ferry-reader');
    expect(asReader.events.length).toBe(abortedShown.events.length);
    for (const e of asReader.events) expect(e.traceback ?? null).toBeNull();
  });
});
