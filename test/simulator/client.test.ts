// ferry's XenAPI client against a real simulator process: typed records, int64 as strings,
// re-login after SESSION_INVALID, XenApiError, and waitForTask's progress reports.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulators, type SimCluster } from '../../simulator/cluster';
import { XenApiClient } from '../../xenapi/client';
import { XenApiCode, XenApiError, isXenApiError } from '../../xenapi/errors';
import { waitForTask, type TaskProgress } from '../../xenapi/task';
import { PASSWORD, hostConfig, hostRefOf } from './helpers';

describe('XenApiClient', () => {
  let cluster: SimCluster;
  let client: XenApiClient;
  beforeAll(async () => {
    const fresh = await hostConfig('xen-new', 'p');
    const old = await hostConfig('xen-old', 'p');
    if (old.simulator) old.simulator.platformVersion = '3.3.0';
    const tiny = await hostConfig('xen-tiny', 'p', 64);
    cluster = await startSimulators({ hosts: [fresh, old, tiny], bandwidthMiBps: 512, password: PASSWORD });
    client = new XenApiClient({ url: fresh.xenapiUrl, user: 'root', password: PASSWORD, timeoutMs: 10_000 });
  });
  afterAll(async () => {
    await client?.logout();
    await cluster?.stop();
  });

  it('parses typed records, int64 fields as strings', async () => {
    const hosts = await client.getAllRecords('host');
    expect(Object.values(hosts).map((h) => h.name_label).sort()).toEqual(['xen-new', 'xen-old', 'xen-tiny']);
    const me = Object.values(hosts).find((h) => h.name_label === 'xen-new');
    expect(me?.software_version.platform_version).toBe('3.4.0');
    expect(me?.API_version_major).toBe('2');
    const metrics = await client.getRecord('host_metrics', me?.metrics as string);
    expect(metrics.memory_total).toBe(String(2048 * 1024 * 1024));
    // One pool database: a control domain per member, each resident on its host.
    const dom0 = await client.getAllRecordsWhere('VM', 'field "is_control_domain" = "true"');
    expect(Object.values(dom0).map((d) => d.resident_on).sort()).toEqual(Object.keys(hosts).sort());
    expect(Object.values(dom0).every((d) => d.domid === '0')).toBe(true);
  });

  it('sends int64 parameters as strings and reads them back unchanged', async () => {
    const big = String(64n * 1024n * 1024n * 1024n); // beyond 32 bits
    const vm = await client.call<string>('VM.create', { name_label: 'int64', memory_static_max: String(16 * 1024 * 1024) });
    await client.call('VM.set_memory_dynamic_max', vm, big);
    expect((await client.getRecord('VM', vm)).memory_dynamic_max).toBe(big);
    await client.call('VM.destroy', vm);
  });

  it('logs in again by itself after SESSION_INVALID', async () => {
    await client.call('pool.get_all');
    const first = client.sessionRef as string;
    await client.rawCall('session.logout', [first]);
    await expect(client.rawCall('pool.get_all', [first])).rejects.toMatchObject({ code: XenApiCode.SESSION_INVALID, params: [first] });
    expect(await client.call<string[]>('pool.get_all')).toHaveLength(1);
    expect(client.sessionRef).not.toBe(first);
  });

  it('throws XenApiError with the xapi code, parameters and method', async () => {
    const err = await client.call('VM.get_record', 'OpaqueRef:nope').catch((e: unknown) => e);
    expect(isXenApiError(err, XenApiCode.HANDLE_INVALID)).toBe(true);
    expect(err).toMatchObject({ code: 'HANDLE_INVALID', params: ['VM', 'OpaqueRef:nope'], method: 'VM.get_record' });
    expect((err as XenApiError).errorDescription).toEqual(['HANDLE_INVALID', 'VM', 'OpaqueRef:nope']);
    const bad = new XenApiClient({ url: cluster.host('xen-new').xenapiUrl, user: 'root', password: 'nope' });
    await expect(bad.call('pool.get_all')).rejects.toMatchObject({ code: 'SESSION_AUTHENTICATION_FAILED', params: ['root', 'Authentication failure'] });
  });

  it('waitForTask reports task progress until done; the figures are on the admin endpoint', async () => {
    const admin = cluster.host('xen-old').admin;
    const { ref, uuid } = await admin.createVm({ nameLabel: 'progress', memoryMiB: 64, dirtyRateMiBps: 32, sr: 'shared', vcpus: 1 });
    // The member's own endpoint accepts the pool's session for every call (as a slave forwards to the master).
    const old = new XenApiClient({ url: cluster.host('xen-old').xenapiUrl, user: 'root', password: PASSWORD });
    const reports: TaskProgress[] = [];
    const task = await old.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(old, 'xen-new'), {});
    expect(await waitForTask(old, task, { onProgress: (p) => void reports.push(p) })).toBe('');
    const last = reports.at(-1) as TaskProgress;
    expect(last.status).toBe('success');
    const progress = reports.map((r) => r.progress);
    expect(progress.every((p, i) => i === 0 || (progress[i - 1] as number) <= p)).toBe(true);
    expect(progress.every((p) => p >= 0 && p <= 1)).toBe(true);
    const fig = (await admin.migrations()).find((m) => m.taskRef === task);
    expect(fig).toMatchObject({ vmUuid: uuid, kind: 'pool_migrate', phase: 'done', status: 'success', memoryTotalBytes: 64 * 1024 * 1024, memoryRemainingBytes: 0 });
    expect(fig?.bytesSent).toBeGreaterThanOrEqual(64 * 1024 * 1024);
    expect((await old.getRecord('task', task)).other_config).toEqual({});
  });

  it('refuses to move a VM to an older platform (VM_INCOMPATIBLE_WITH_THIS_HOST)', async () => {
    const admin = cluster.host('xen-new').admin;
    const { ref } = await admin.createVm({ nameLabel: 'newer', memoryMiB: 16, sr: 'shared' });
    await expect(client.call('VM.pool_migrate', ref, await hostRefOf(client, 'xen-old'), {})).rejects.toMatchObject({
      code: 'VM_INCOMPATIBLE_WITH_THIS_HOST',
    });
    expect(await client.call('VM.get_power_state', ref)).toBe('Running');
  });

  it('refuses a migration the destination has no memory for (HOST_NOT_ENOUGH_FREE_MEMORY), leaving the VM running', async () => {
    const admin = cluster.host('xen-new').admin;
    const { ref } = await admin.createVm({ nameLabel: 'too-big', memoryMiB: 128, sr: 'shared' });
    const tinyRef = await hostRefOf(client, 'xen-tiny');
    await expect(client.call('VM.pool_migrate', ref, tinyRef, {})).rejects.toMatchObject({
      code: 'HOST_NOT_ENOUGH_FREE_MEMORY',
      params: [String(128 * 1024 * 1024), String(64 * 1024 * 1024)],
    });
    const task = await client.call<string>('Async.VM.assert_can_migrate', ref, { host: tinyRef, xenops: 'tcp://127.0.0.1:1' }, true, {}, {}, {});
    await expect(waitForTask(client, task)).rejects.toMatchObject({ code: 'CANNOT_CONTACT_HOST' });
    expect(await client.call('VM.get_power_state', ref)).toBe('Running');
  });

  it('a slowed host still answers, later', async () => {
    const admin = cluster.host('xen-new').admin;
    await admin.slow(400);
    const impatient = new XenApiClient({ url: cluster.host('xen-new').xenapiUrl, user: 'root', password: PASSWORD, timeoutMs: 100 });
    await expect(impatient.login()).rejects.toMatchObject({ name: 'XenApiTransportError', timedOut: true });
    const patient = new XenApiClient({ url: cluster.host('xen-new').xenapiUrl, user: 'root', password: PASSWORD, timeoutMs: 10_000 });
    expect(await patient.call<string[]>('pool.get_all')).toHaveLength(1);
    await admin.slow(0);
  });
});
