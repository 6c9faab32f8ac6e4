// os-services through the real stack: a host disabled with a reason is never picked by the scheduler
// (xapi's host.disable on its agent, the reason in host.other_config), a migration that requests it
// is refused with Nova's reason, the state survives a restart of its agent, and enabled again it is
// picked again. Three hosts: xen-a and xen-b share pool-1, xen-c is alone; with every host free the
// scheduler prefers xen-b (same free memory as xen-c, first by name), so every migration that avoids
// it while it is disabled does so because it is disabled. The VMs have local disks, so every host can take them (block migration).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../lib/stack';
import type { RunningApi } from '../../api/main';
import { serviceUuid } from '../../api/routes/nova-services';
import { DISABLED_REASON_KEY } from '../../activities/host/service';
import type { MigrationStatusView } from '../../workflows/definitions';
import { XenApiClient } from '../../xenapi/client';
import { placements, startStackWithApi } from './helpers';

const READ = 'read-token-services';
const OPERATOR = 'operator-token-services';
const nova = (v: string) => ({ 'openstack-api-version': `compute ${v}`, 'x-auth-token': OPERATOR });
const FINAL = ['completed', 'failed', 'cancelled', 'error'];
const REASON = 'firmware update, ticket 4711';

let stack: Stack;
let api: RunningApi;

beforeAll(async () => {
  ({ stack, api } = await startStackWithApi({ bandwidthMiBps: 256 }, { read: READ, operator: OPERATOR }));
}, 240_000);

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

type Body = Record<string, unknown>;

/** xen-b's host record as its pool's xapi holds it. */
async function hostRecord(name: string) {
  const xen = new XenApiClient({ url: stack.sims.host(name).xenapiUrl, user: 'root', password: stack.password });
  try {
    const address = new URL(stack.sims.host(name).xenapiUrl).hostname;
    return Object.values(await xen.getAllRecordsWhere('host', `field "address" = "${address}"`))[0] as { enabled: boolean; other_config: Record<string, string> };
  } finally {
    await xen.logout().catch(() => undefined);
  }
}

async function call(method: string, path: string, opts: { body?: unknown; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${api.url}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Body };
}

async function until<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not there after ${timeoutMs} ms; last: ${JSON.stringify(value).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Service {
  id: string;
  host: string;
  status: string;
  state: string;
  disabled_reason: string | null;
  updated_at: string | null;
  forced_down: boolean;
}

const services = async (): Promise<Service[]> => (await call('GET', '/v2.1/os-services', { headers: nova('2.53') })).body.services as Service[];
const serviceOf = async (host: string) => (await services()).find((s) => s.host === host) as Service;

/** Migrates a VM through ferry's /v1 API without a host and waits for its end. */
async function migrate(uuid: string, host?: string): Promise<MigrationStatusView> {
  const started = await call('POST', '/v1/migrations', { headers: { authorization: `Bearer ${OPERATOR}` }, body: { instanceUuid: uuid, ...(host ? { host } : {}) } });
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  const id = started.body.id as string;
  return until(`migration of ${uuid}`, async () => (await call('GET', `/v1/migrations/${id}`, { headers: { authorization: `Bearer ${READ}` } })).body as unknown as MigrationStatusView, (m) => FINAL.includes(m.status));
}

async function vmOn(host: string, name: string): Promise<string> {
  const uuid = (await stack.sims.host(host).admin.createVm({ nameLabel: name, memoryMiB: 4, diskMiB: [1], sr: 'local' })).uuid;
  await until(`${name} in the inventory`, () => call('GET', `/v1/instances/${uuid}`, { headers: { authorization: `Bearer ${READ}` } }), (r) => r.status === 200, 30_000);
  return uuid;
}

describe('os-services: a disabled host', () => {
  it('is never picked while disabled, is refused with Nova\'s reason when requested, stays disabled across an agent restart, and is picked again once enabled', async () => {
    const xenB = serviceUuid('xen-b');
    // Every host is up and enabled; ids are stable UUIDs from 2.53.
    const before = await until('three services up', services, (list) => list.length === 3 && list.every((s) => s.state === 'up'));
    expect(before.map((s) => [s.host, s.status, s.id])).toEqual([
      ['xen-a', 'enabled', serviceUuid('xen-a')],
      ['xen-b', 'enabled', xenB],
      ['xen-c', 'enabled', serviceUuid('xen-c')],
    ]);

    const disabled = await call('PUT', `/v2.1/os-services/${xenB}`, { headers: nova('2.53'), body: { status: 'disabled', disabled_reason: REASON } });
    expect(disabled.status, JSON.stringify(disabled.body)).toBe(200);
    expect(disabled.body.service).toMatchObject({ id: xenB, host: 'xen-b', binary: 'nova-compute', status: 'disabled', disabled_reason: REASON, forced_down: false });
    // xapi itself holds it: host.enabled false, the reason in other_config.
    const record = await hostRecord('xen-b');
    expect(record.enabled).toBe(false);
    expect(record.other_config[DISABLED_REASON_KEY]).toBe(REASON);
    expect(await serviceOf('xen-b')).toMatchObject({ status: 'disabled', disabled_reason: REASON, state: 'up' });

    // Several migrations without a requested host: none goes to xen-b.
    const vms = [await vmOn('xen-a', 'svc-1'), await vmOn('xen-a', 'svc-2'), await vmOn('xen-a', 'svc-3')];
    for (const uuid of vms) {
      const m = await migrate(uuid);
      expect(m.status, JSON.stringify(m.error)).toBe('completed');
      expect(m.dest_compute).toBe('xen-c');
      // Filtered out by the scheduler (never checked, never reserved): its only mention is the filter's reason.
      expect(m.attempts.filter((a) => a.host === 'xen-b')).toEqual([{ host: 'xen-b', reason: 'host is disabled' }]);
      expect((await placements(stack, uuid)).map((p) => p.host)).toEqual(['xen-c']);
    }

    // Requested: below 2.34 Nova's API answers the conductor's refusal (NoValidHost: the requested host is a scheduler hint, the disabled host is filtered out).
    const requested = await call('POST', `/v2.1/servers/${vms[0]}/action`, { headers: nova('2.30'), body: { 'os-migrateLive': { host: 'xen-b', block_migration: 'auto' } } });
    expect(requested.status, JSON.stringify(requested.body)).toBe(400);
    const message = (requested.body.badRequest as { message: string }).message;
    expect(message).toMatch(/^No valid host was found\./);
    expect(message).toContain(REASON);
    expect((await placements(stack, vms[0] as string)).map((p) => p.host)).toEqual(['xen-c']);

    // The agent restarts: its first report reads the state from xapi again.
    const restartedAt = Date.now();
    await stack.killAgent('xen-b');
    await stack.startAgent('xen-b');
    const after = await until('a report of the new agent', () => serviceOf('xen-b'), (s) => s.updated_at !== null && Date.parse(`${s.updated_at}Z`) >= restartedAt - 1000);
    expect(after).toMatchObject({ status: 'disabled', disabled_reason: REASON, state: 'up' });
    const m = await migrate(vms[1] as string);
    expect(m.dest_compute).not.toBe('xen-b');

    // Enabled: the reason goes, and the next migration picks xen-b (the most free memory).
    const enabled = await call('PUT', `/v2.1/os-services/${xenB}`, { headers: nova('2.53'), body: { status: 'enabled' } });
    expect(enabled.status).toBe(200);
    expect(enabled.body.service).toMatchObject({ status: 'enabled', disabled_reason: null });
    expect((await hostRecord('xen-b')).other_config[DISABLED_REASON_KEY]).toBeUndefined();
    const fresh = await vmOn('xen-a', 'svc-4');
    const back = await migrate(fresh);
    expect(back.status).toBe('completed');
    expect(back.dest_compute).toBe('xen-b');
  }, 600_000);
});
