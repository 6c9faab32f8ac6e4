// The host inventory at cluster scale, through the real stack: 30 simulated hosts in 10 pools, their
// agents packed 10 to a process. The scheduler works from cached host state and the chosen host is
// verified by its own agent: a migration picks a host with room, never one that is down or
// disabled; the API never refuses on a stale copy (a VM goes there and straight back); a VM created
// behind ferry's back is found by the next request for it.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type RunningApi } from '../../api/main';
import type { InventoryView } from '../../lib/host-inventory';
import { startStack, type Stack, type StackHost } from '../../lib/stack';
import { HostReportedAt } from '../../lib/search-attributes';
import { XenApiClient } from '../../xenapi/client';
import type { MigrationOutcome } from '../../workflows/outcome';
import { inventoryWhen, listsInstance, placements, startMigration, status } from './helpers';

// Pool pool-0 holds the test's hosts; nine more pools of three make up the 30.
const POOL0: StackHost[] = [
  { name: 'h00', pool: 'pool-0', memoryMiB: 16384 },
  { name: 'h01', pool: 'pool-0', memoryMiB: 512 }, // too small for the 1 GiB VM
  { name: 'h02', pool: 'pool-0', memoryMiB: 32768 }, // disabled
  { name: 'h03', pool: 'pool-0', memoryMiB: 65536 }, // crashed (down)
  { name: 'h04', pool: 'pool-0', memoryMiB: 8192 }, // the one with room
  { name: 'h05', pool: 'pool-0', memoryMiB: 4096 },
];
const OTHERS: StackHost[] = Array.from({ length: 24 }, (_, i) => ({ name: `h${String(i + 6).padStart(2, '0')}`, pool: `pool-${Math.floor(i / 3) + 1}`, memoryMiB: 16384 }));

let stack: Stack;
let api: RunningApi;
beforeAll(async () => {
  stack = await startStack({ hosts: [...POOL0, ...OTHERS], agentsPerProcess: 10, inventory: { reportSeconds: 2, staleSeconds: 6 } });
  api = await startApi({ config: stack.config, listen: '127.0.0.1:0', logger: pino({ level: 'silent' }) });
}, 300_000);
afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

async function xapi(host: string): Promise<XenApiClient> {
  const config = stack.config.hosts.find((h) => h.name === host);
  if (!config) throw new Error(`no host ${host}`);
  const client = new XenApiClient({ url: config.xenapiUrl, user: config.user, password: stack.password });
  await client.login();
  return client;
}

async function nova(method: string, path: string, body?: unknown, microversion = '2.80'): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', 'openstack-api-version': `compute ${microversion}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function completedMigrationOf(uuid: string): Promise<MigrationOutcome> {
  return (await stack.client.workflow.getHandle(`live-migration-${uuid}`).result()) as MigrationOutcome;
}

describe('a 30-host cluster', () => {
  it('a migration picks the host with room, never one that is down or disabled', async () => {
    const pool0 = await xapi('h00');
    try {
      const [h02] = await pool0.call<string[]>('host.get_by_name_label', 'h02');
      await pool0.call('host.disable', h02);
    } finally {
      await pool0.logout();
    }
    await stack.sims.crash('h03');
    try {
      // The scheduler works from the agents' reports: let them say h02 is disabled and h03 down.
      const ready = (v: InventoryView) => v.hosts.some((h) => h.name === 'h02' && !h.enabled) && v.hosts.some((h) => h.name === 'h03' && !h.up);
      expect(ready(await inventoryWhen(stack, ready))).toBe(true);
      const vm = await stack.sims.host('h00').admin.createVm({ nameLabel: 'big', memoryMiB: 1024, sr: 'shared' });
      const handle = await startMigration(stack, { instanceUuid: vm.uuid });
      const outcome = (await handle.result()) as MigrationOutcome;
      expect(outcome.status).toBe('completed');
      expect(outcome.destHost).toBe('h04');
      expect(await placements(stack, vm.uuid)).toEqual([{ host: 'h04', powerState: 'Running' }]);
      const { attempts } = await status(handle);
      const reasons = Object.fromEntries(attempts.map((a) => [a.host, a.reason]));
      expect(reasons.h01).toMatch(/not enough free memory/);
      expect(reasons.h02).toMatch(/disabled/);
      expect(reasons.h03).toMatch(/down/);
      // The other pools' hosts are filtered out too (shared storage), but a migration's history does not list them all.
      expect(attempts.length).toBeLessThanOrEqual(12);
    } finally {
      await stack.sims.restart('h03');
    }
  });

  it('the API does not refuse on a stale copy: a VM migrated there goes straight back', async () => {
    const vm = await stack.sims.host('h06').admin.createVm({ nameLabel: 'there-and-back', memoryMiB: 16, sr: 'shared' });
    for (const dest of ['h07', 'h06']) {
      const res = await nova('POST', `/v2.1/servers/${vm.uuid}/action`, { 'os-migrateLive': { host: dest, block_migration: 'auto' } });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      expect((await completedMigrationOf(vm.uuid)).status).toBe('completed');
      expect(await placements(stack, vm.uuid)).toEqual([{ host: dest, powerState: 'Running' }]);
    }
    // And a request to its current host is refused once the host's own report says the VM is there
    // (below 2.34, where Nova's API waits for the conductor's pre-checks and answers their failure).
    await inventoryWhen(stack, listsInstance('h06', vm.uuid));
    const same = await nova('POST', `/v2.1/servers/${vm.uuid}/action`, { 'os-migrateLive': { host: 'h06', block_migration: 'auto' } }, '2.33');
    expect(same.status).toBe(400);
    expect(JSON.stringify(same.body)).toMatch(/current host \(h06\)/);
  });

  it('a VM created behind ferry’s back is found by the next migration request for it', async () => {
    const vm = await stack.sims.host('h09').admin.createVm({ nameLabel: 'behind-the-back', memoryMiB: 16, sr: 'shared' });
    const res = await nova('POST', `/v2.1/servers/${vm.uuid}/action`, { 'os-migrateLive': { host: null, block_migration: 'auto' } });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const outcome = await completedMigrationOf(vm.uuid);
    expect(outcome.status).toBe('completed');
    expect(['h10', 'h11']).toContain(outcome.destHost);
  });

  it('each host entity carries its last report’s time as HostReportedAt, so that a reader lists only what changed', async () => {
    // Hosts report every 2 s here: the listing since a second ago holds those that reported since, each
    // with its memo's receivedAt as HostReportedAt, the moment the readers' incremental listing asks by.
    const since = new Date(Date.now() - 1_000).toISOString();
    const listed: { host: string; receivedAt: string; reportedAt: string }[] = [];
    for await (const e of stack.systemClient.workflow.list({ query: `WorkflowType = 'hostInventory' AND HostReportedAt >= '${since}'` })) {
      const memo = e.memo?.host as { report?: { host?: string }; receivedAt?: string } | undefined;
      const reportedAt = e.typedSearchAttributes.get(HostReportedAt);
      listed.push({ host: memo?.report?.host ?? '?', receivedAt: memo?.receivedAt ?? '?', reportedAt: reportedAt?.toISOString() ?? '?' });
    }
    expect(listed.length).toBeGreaterThan(0);
    for (const l of listed) {
      expect(l.reportedAt).toBe(l.receivedAt);
      expect(l.reportedAt >= since).toBe(true);
    }
    // A report of long ago is not in it: the listing is not every host each time.
    const old: string[] = [];
    for await (const e of stack.systemClient.workflow.list({ query: `WorkflowType = 'hostInventory' AND HostReportedAt >= '${new Date(Date.now() + 60_000).toISOString()}'` })) old.push(e.workflowId);
    expect(old).toEqual([]);
  });
});
