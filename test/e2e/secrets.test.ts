// Secrets never reach Temporal or a log. A real stack with payload encryption on and token auth runs a
// block migration across pools, a pool migration, a migration whose first candidate is refused, a
// migration that fails and rolls back, and refused API calls; then the raw histories of every
// workflow in both namespaces (read without the codec), every log file the stack wrote and every API
// answer are searched for the XenAPI password, the migrate_receive sessions the destinations minted
// (read from the simulators, not from ferry), the API tokens and the codec key. The same run shows
// that each migrate_receive session was logged out: the destination's XenAPI refuses it.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Payload } from '@temporalio/common';
import type { EncryptionCodec } from '../../lib/payload-codec';
import { startStack, type Stack } from '../../lib/stack';
import { payloadCodec } from '../../lib/temporal-connection';
import { liveMigrationWorkflowId, type MigrationStatusView } from '../../workflows/definitions';
import { XenApiClient } from '../../xenapi/client';
import { XenApiError } from '../../xenapi/errors';
import { findSecrets, scanStack, type Secret } from './secrets-scan';

const READ = `read-${randomBytes(16).toString('hex')}`;
const OPERATOR = `operator-${randomBytes(16).toString('hex')}`;
const WRONG = `wrong-${randomBytes(16).toString('hex')}`;

let stack: Stack;
let blockVm = '';
/** Every answer of the API this test saw: status and body. */
const answers: { what: string; status: number; body: string }[] = [];

beforeAll(async () => {
  stack = await startStack({
    api: true,
    bandwidthMiBps: 512,
    apiAuth: { mode: 'token', readTokenEnv: 'FERRY_READ_TOKEN', operatorTokenEnv: 'FERRY_OPERATOR_TOKEN' },
    env: { FERRY_READ_TOKEN: READ, FERRY_OPERATOR_TOKEN: OPERATOR },
  });
});

afterAll(async () => {
  await stack?.stop();
});

const admin = (host: string) => stack.sims.host(host).admin;

async function api(what: string, path: string, opts: { method?: string; token?: string; headers?: Record<string, string>; body?: unknown } = {}) {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${stack.apiUrl}${path}`, { method: opts.method ?? 'GET', headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const body = await res.text();
  answers.push({ what, status: res.status, body });
  return { status: res.status, body };
}

/** Starts a migration through the API and waits for its end; the final view. */
async function migrate(what: string, request: Record<string, unknown>): Promise<MigrationStatusView> {
  const started = await api(what, '/v1/migrations', { method: 'POST', token: OPERATOR, body: request });
  expect(started.status, started.body).toBe(202);
  const { id } = JSON.parse(started.body) as { id: string };
  const deadline = Date.now() + 120_000;
  for (;;) {
    const view = JSON.parse((await api(`${what}: status`, `/v1/migrations/${id}`, { token: READ })).body) as MigrationStatusView;
    if (['completed', 'failed', 'cancelled', 'error'].includes(view.status)) return view;
    if (Date.now() > deadline) throw new Error(`${what}: still ${view.status} after 120 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The sessions host.migrate_receive created in every pool, as the simulators know them. */
async function receiveSessions(): Promise<{ pool: string; master: string; ref: string; active: boolean }[]> {
  const out = new Map<string, { pool: string; master: string; ref: string; active: boolean }>();
  for (const host of stack.sims.hosts) {
    const master = stack.sims.hosts.find((h) => h.pool === host.pool) ?? host;
    for (const s of await host.admin.migrateReceiveSessions()) out.set(s.ref, { pool: host.pool, master: master.name, ...s });
  }
  return [...out.values()];
}

/** What the pool's XenAPI answers a call made with this session. */
async function xenapiWith(host: string, session: string): Promise<string> {
  const xen = new XenApiClient({ url: stack.sims.host(host).xenapiUrl, user: 'root', password: stack.password, timeoutMs: 10_000 });
  try {
    await xen.rawCall('host.get_all', [session]);
    return 'accepted';
  } catch (err) {
    return err instanceof XenApiError ? err.code : String(err);
  }
}

async function expectAllLoggedOut(): Promise<number> {
  const sessions = await receiveSessions();
  for (const s of sessions) {
    expect(s.active, `${s.pool} still holds a migrate_receive session`).toBe(false);
    expect(await xenapiWith(s.master, s.ref)).toBe('SESSION_INVALID');
  }
  return sessions.length;
}

describe('migrate_receive sessions (Nova check_can_live_migrate_destination_cleanup)', () => {
  it('a block migration across pools logs the destination session out after the transfer', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'secret-block', memoryMiB: 32, diskMiB: [8], sr: 'local', dirtyRateMiBps: 4 });
    const before = (await receiveSessions()).length;
    blockVm = vm.uuid;
    const view = await migrate('block migration', { instanceUuid: vm.uuid, host: 'xen-c', blockMigration: true });
    expect(view.status).toBe('completed');
    const sessions = await receiveSessions();
    // One for the destination check, used for the transfer too.
    expect(sessions.length).toBe(before + 1);
    expect(sessions.every((s) => s.pool === 'pool-2')).toBe(true);
    await expectAllLoggedOut();
  });

  it('a candidate not chosen is logged out, the chosen one after the transfer', async () => {
    // A local VM with no requested host: both other hosts need a token; the source refuses the first.
    const vm = await admin('xen-a').createVm({ nameLabel: 'secret-retry', memoryMiB: 32, diskMiB: [8], sr: 'local' });
    await admin('xen-a').failNext('VM.assert_can_migrate', 'VM_INCOMPATIBLE_WITH_THIS_HOST', ['OpaqueRef:NULL', 'OpaqueRef:NULL', 'refused by the test']);
    const before = (await receiveSessions()).length;
    const view = await migrate('retried candidate', { instanceUuid: vm.uuid, blockMigration: 'auto' });
    expect(view.status).toBe('completed');
    expect(view.attempts?.length).toBeGreaterThanOrEqual(1);
    expect((await receiveSessions()).length).toBe(before + 2);
    await expectAllLoggedOut();
  });

  it('a migration that fails and rolls back logs the destination session out', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'secret-fail', memoryMiB: 32, diskMiB: [8], sr: 'local' });
    await admin('xen-a').failNext('VM.migrate_send', 'VM_MIGRATE_FAILED', ['OpaqueRef:NULL', 'xen-a', 'xen-c', 'injected by the test']);
    const before = (await receiveSessions()).length;
    const view = await migrate('failed migration', { instanceUuid: vm.uuid, host: 'xen-c', blockMigration: true });
    expect(view.status).toBe('failed');
    expect((await receiveSessions()).length).toBe(before + 1);
    await expectAllLoggedOut();
  });

  it('a pool migration mints no session', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'secret-pool', memoryMiB: 32, diskMiB: [8], sr: 'shared' });
    const before = (await receiveSessions()).length;
    expect((await migrate('pool migration', { instanceUuid: vm.uuid, host: 'xen-b' })).status).toBe('completed');
    expect((await receiveSessions()).length).toBe(before);
  });
});

describe('secrets scan', () => {
  it('refuses API calls without leaking what it refused', async () => {
    expect((await api('bad token', '/v1/migrations', { token: WRONG })).status).toBe(401);
    expect((await api('bad X-Auth-Token', '/v2.1/servers', { headers: { 'x-auth-token': WRONG } })).status).toBe(401);
    expect((await api('read role starts', '/v1/migrations', { method: 'POST', token: READ, body: { instanceUuid: '00000000-0000-4000-8000-000000000000' } })).status).toBe(403);
    expect((await api('unknown instance', '/v1/migrations', { method: 'POST', token: OPERATOR, body: { instanceUuid: '00000000-0000-4000-8000-000000000000' } })).status).toBeGreaterThanOrEqual(400);
    expect((await api('no token', '/v1/migrations')).status).toBe(401);
  });

  it('finds no password, session, token or key in raw histories, logs or API answers', async () => {
    const sessions = await receiveSessions();
    expect(sessions.length).toBeGreaterThanOrEqual(4); // the runs above minted them
    const secrets: Secret[] = [
      { name: 'XenAPI password', value: stack.password },
      { name: 'API read token', value: READ },
      { name: 'API operator token', value: OPERATOR },
      { name: 'a refused token', value: WRONG },
      { name: 'payload codec key', value: readFileSync(join(stack.workDir, 'codec.key'), 'utf8').trim() },
      ...sessions.map((s, i) => ({ name: `migrate_receive session ${i} of ${s.pool}`, value: s.ref })),
    ];
    const { findings, histories, logs } = await scanStack(stack, secrets);
    const inAnswers = answers.flatMap((a) => findSecrets(`API answer to ${a.what} (${a.status})`, a.body, secrets));
    expect(histories).toBeGreaterThanOrEqual(5); // 4 migrations, the slots entity, the hosts' inventory
    expect(logs).toBeGreaterThanOrEqual(5);
    expect(answers.some((a) => a.status >= 400)).toBe(true);
    expect([...findings, ...inAnswers]).toEqual([]);
    // The scan can fail: the block migration's history, its payloads decrypted with the key, holds
    // the session its destination minted.
    const codec = payloadCodec(stack.config) as EncryptionCodec;
    const raw = await stack.client.workflow.getHandle(liveMigrationWorkflowId(blockVm)).fetchHistory();
    const plain: Payload[] = [];
    const walk = (v: unknown): void => {
      if (!v || typeof v !== 'object') return;
      const p = v as Payload;
      if (p.metadata && p.data instanceof Uint8Array) plain.push(codec.decrypt(p));
      else Object.values(v).forEach(walk);
    };
    walk(raw);
    const poolTwo = secrets.filter((s) => s.name.endsWith('of pool-2')).map((s) => s.name);
    expect(findSecrets('the block migration, decrypted', plain, secrets).map((f) => f.secret)).toEqual(expect.arrayContaining([expect.stringMatching(/^migrate_receive session/)]));
    expect(poolTwo.length).toBeGreaterThan(0);
  });
});
