// The contract through the real stack (Temporal dev server, simulators, conductor and agents as
// processes, the API in this process with token auth): os-migrations filters and paging on real
// migrations, Nova's synchronous answer below 2.34 with the conductor's pre-check failure, 405.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApi } from '../../api/main';
import type { Stack } from '../../lib/stack';
import { startStackWithApi } from '../e2e/helpers';

const READ = 'read-token-contract';
const OPERATOR = 'operator-token-contract';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers, read field by field by the assertions
type Json = Record<string, any>;

let stack: Stack;
let api: RunningApi;

beforeAll(async () => {
  ({ stack, api } = await startStackWithApi({ bandwidthMiBps: 256 }, { read: READ, operator: OPERATOR }));
}, 120_000);

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

async function call(method: string, path: string, opts: { token?: string; body?: unknown; version?: string } = {}) {
  const headers: Record<string, string> = { 'x-auth-token': opts.token ?? OPERATOR };
  if (opts.version) headers['openstack-api-version'] = `compute ${opts.version}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${api.url}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as Json };
}

async function vm(host: string, name: string): Promise<string> {
  return (await stack.sims.host(host).admin.createVm({ nameLabel: name, memoryMiB: 32, diskMiB: [8], sr: 'shared' })).uuid;
}

/** Live-migrates through Nova's API (retrying while the inventory has not reported a new VM) and waits for the end. */
async function migrate(uuid: string, host: string | null, version = '2.80'): Promise<Json> {
  for (let i = 0; ; i++) {
    const res = await call('POST', `/v2.1/servers/${uuid}/action`, { version, body: { 'os-migrateLive': { host, block_migration: 'auto' } } });
    if (res.status === 202) break;
    if (res.status !== 404 || i > 40) throw new Error(`os-migrateLive: ${res.status} ${JSON.stringify(res.body)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  for (;;) {
    const res = await call('GET', `/v1/migrations/${uuid}`, { token: READ });
    if (res.status === 200 && ['completed', 'failed', 'error', 'cancelled'].includes(res.body.status)) return res.body;
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('os-migrations on real migrations', () => {
  it('filters by host, status, instance, time and owner, and pages with limit, marker and the next link', async () => {
    const first = await vm('xen-a', 'contract-1');
    const second = await vm('xen-a', 'contract-2');
    const one = await migrate(first, 'xen-b');
    const two = await migrate(second, 'xen-b');
    expect([one.status, two.status]).toEqual(['completed', 'completed']);
    const uuids = (query: string, version = '2.80') =>
      call('GET', `/v2.1/os-migrations${query}`, { token: READ, version }).then((r) => {
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        return (r.body.migrations as { uuid: string }[]).map((m) => m.uuid).filter((u) => u === one.uuid || u === two.uuid);
      });
    expect(await uuids(`?instance_uuid=${first}`)).toEqual([one.uuid]);
    expect(await uuids('?source_compute=xen-a&status=completed')).toEqual([two.uuid, one.uuid]);
    expect(await uuids('?host=xen-c')).toEqual([]);
    expect(await uuids(`?user_id=${one.user_id}&project_id=${one.project_id}`)).toEqual([two.uuid, one.uuid]);
    expect(await uuids('?user_id=somebody-else')).toEqual([]);
    // The time window: changes-since the second one's last update leaves the first out.
    const since = encodeURIComponent(two.updated_at);
    expect(await uuids(`?changes-since=${since}`)).toEqual([two.uuid]);
    expect(await uuids(`?changes-before=${encodeURIComponent(one.updated_at)}`)).toEqual([one.uuid]);
    // Paging, newest first.
    const page = await call('GET', `/v2.1/os-migrations?limit=1&source_compute=xen-a`, { token: READ, version: '2.80' });
    expect(page.body.migrations.map((m: { uuid: string }) => m.uuid)).toEqual([two.uuid]);
    const next = new URL(page.body.migrations_links[0].href);
    expect(next.searchParams.get('marker')).toBe(two.uuid);
    const after = await call('GET', `${next.pathname}${next.search}`, { token: READ, version: '2.80' });
    expect(after.body.migrations.map((m: { uuid: string }) => m.uuid)).toEqual([one.uuid]);
    // Each parameter only in its microversions.
    const refused = await call('GET', '/v2.1/os-migrations?user_id=x', { token: READ, version: '2.66' });
    expect(refused.status).toBe(400);
    expect(refused.body.badRequest.message).toContain("'user_id' was unexpected");
    const unknown = await call('GET', '/v2.1/os-migrations?sort_dir=asc', { token: READ, version: '2.80' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.badRequest.message).toContain("'sort_dir' was unexpected");
  }, 180_000);
});

describe('os-migrateLive below 2.34', () => {
  it("waits for the conductor's pre-checks: 400 with UnableToMigrateToSelf's reason, 202 once checked; from 2.34 the failure is the migration's", async () => {
    const uuid = await vm('xen-a', 'contract-sync');
    // Wait until the inventory reports it, through a request that cannot start anything.
    for (let i = 0; (await call('GET', `/v2.1/servers/${uuid}`, { token: READ })).status !== 200; i++) {
      if (i > 40) throw new Error('the VM never showed up');
      await new Promise((r) => setTimeout(r, 250));
    }
    const refused = await call('POST', `/v2.1/servers/${uuid}/action`, { version: '2.30', body: { 'os-migrateLive': { host: 'xen-a', block_migration: 'auto' } } });
    expect(refused.status, JSON.stringify(refused.body)).toBe(400);
    expect(refused.body.badRequest.message).toContain("current host");
    const failed = await call('GET', `/v1/migrations/${uuid}`, { token: READ });
    expect(failed.body.error.type).toBe('UnableToMigrateToSelf');
    // From 2.34 the same request is accepted and the migration ends in error.
    const accepted = await call('POST', `/v2.1/servers/${uuid}/action`, { version: '2.34', body: { 'os-migrateLive': { host: 'xen-a', block_migration: 'auto' } } });
    expect(accepted.status).toBe(202);
    for (;;) {
      const latest = await call('GET', `/v1/migrations/${uuid}`, { token: READ });
      if (latest.body.uuid !== failed.body.uuid && ['error', 'failed'].includes(latest.body.status)) {
        expect(latest.body.error.type).toBe('UnableToMigrateToSelf');
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    // A migration that passes its checks is a 202 below 2.34 too, answered once it is past them.
    const moved = await migrate(uuid, 'xen-b', '2.33');
    expect(moved.status).toBe('completed');
  }, 180_000);

  it('answers an undeclared method on a known path with 405 and Allow', async () => {
    const res = await call('PATCH', '/v2.1/os-migrations', { token: READ });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
  });
});
