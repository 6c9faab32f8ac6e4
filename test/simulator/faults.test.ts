// Fault injection through the admin endpoint: each fault must leave a consistent state (the VM
// running on exactly one host, nothing half-received on the destination).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimCluster } from '../../simulator/cluster';
import { XenApiClient } from '../../xenapi/client';
import { XenApiTransportError } from '../../xenapi/errors';
import { waitForTask } from '../../xenapi/task';
import { PASSWORD, clientFor, crossPoolArgs, destinationIsClean, figuresOf, hostRefOf, startTestCluster, waitForFigures, waitUntil } from './helpers';

describe('faults', () => {
  let cluster: SimCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ bandwidthMiBps: 256 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('fails the next call of a method with the injected error, then behaves again', async () => {
    const a = cluster.host('xen-a').admin;
    const xa = clientFor(cluster, 'xen-a');
    const vm = await xa.call<string>('VM.create', { name_label: 'fail-next', memory_static_max: String(16 * 1024 * 1024) });
    await a.failNext('VM.start', 'HOST_OFFLINE', ['xen-a']);
    await expect(xa.call('VM.start', vm, false, false)).rejects.toMatchObject({ code: 'HOST_OFFLINE', params: ['xen-a'] });
    expect(await xa.call('VM.get_power_state', vm)).toBe('Halted');
    await xa.call('VM.start', vm, false, false);
    expect(await xa.call('VM.get_power_state', vm)).toBe('Running');

    // Async calls get a task that fails with the injected error.
    await a.failNext('VM.pool_migrate', 'VM_MIGRATE_FAILED', [vm, 'src', 'dst', 'injected']);
    const task = await xa.call<string>('Async.VM.pool_migrate', vm, await hostRefOf(xa, 'xen-b'), {});
    await expect(waitForTask(xa, task)).rejects.toMatchObject({ code: 'VM_MIGRATE_FAILED', params: [vm, 'src', 'dst', 'injected'] });
    expect(await xa.call('VM.get_power_state', vm)).toBe('Running');
  });

  for (const side of ['xen-a', 'xen-b'] as const) {
    it(`a data connection cut on ${side === 'xen-a' ? 'the source' : 'the destination'} fails the migration cleanly, and a retry succeeds`, async () => {
      const a = cluster.host('xen-a').admin;
      const xa = clientFor(cluster, 'xen-a');
      const { uuid, ref } = await a.createVm({ nameLabel: `cut-${side}`, memoryMiB: 32, dirtyRateMiBps: 16, sr: 'shared', diskMiB: [2] });
      const before = await a.checksums(uuid);
      await cluster.host(side).admin.cutDataAfter(5 * 1024 * 1024);
      const hostB = await hostRefOf(xa, 'xen-b');
      const task = await xa.call<string>('Async.VM.pool_migrate', ref, hostB, {});
      await expect(waitForTask(xa, task)).rejects.toMatchObject({ code: 'VM_MIGRATE_FAILED' });
      expect((await xa.getRecord('VM', ref)).power_state).toBe('Running');
      expect((await a.checksums(uuid))?.disks).toEqual(before?.disks);
      await destinationIsClean(cluster, 'xen-b', uuid);
      const retry = await xa.call<string>('Async.VM.pool_migrate', ref, hostB, {});
      await waitForTask(xa, retry);
      expect((await cluster.host('xen-b').admin.checksums(uuid))?.memoryAtArrival).toBe((await figuresOf(cluster, 'xen-a', retry))?.memorySha256);
    });
  }

  it('a frozen host accepts calls and never answers: the client times out; after thaw it answers', async () => {
    const c = cluster.host('xen-c');
    const client = new XenApiClient({ url: c.xenapiUrl, user: 'root', password: PASSWORD, timeoutMs: 300 });
    await client.login();
    await c.admin.freeze();
    const err = await client.call('host.get_all').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(XenApiTransportError);
    expect((err as XenApiTransportError).timedOut).toBe(true);
    await c.admin.thaw();
    expect(await client.call<string[]>('host.get_all')).toHaveLength(1);
  });

  it('a source crash mid-migration leaves the destination clean; the restarted source has the VM halted', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setMaxIterations(0);
    const xa = clientFor(cluster, 'xen-a');
    const { uuid, ref } = await a.createVm({ nameLabel: 'src-crash', memoryMiB: 16, dirtyRateMiBps: 512, sr: 'shared', diskMiB: [4] });
    const disks = (await a.checksums(uuid))?.disks;
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
    await waitForFigures(cluster, 'xen-a', task, (f) => f.iteration >= 2, 'pre-copy');
    await cluster.crash('xen-a');
    await destinationIsClean(cluster, 'xen-b', uuid);
    await cluster.restart('xen-a');
    // The old session died with the host: the client logs in again by itself.
    const vm = await xa.getRecord('VM', ref);
    expect(vm.power_state).toBe('Halted');
    expect(vm.resident_on).toBe('OpaqueRef:NULL');
    expect((await a.checksums(uuid))?.disks).toEqual(disks);
    expect((await a.checksums(uuid))?.memory).toBeNull();
    // It can run again.
    await xa.call('VM.start', ref, false, false);
    expect(await xa.call('VM.get_power_state', ref)).toBe('Running');
  });

  it('a destination crash mid-migration fails the task and keeps the VM running on the source', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setMaxIterations(0);
    await a.setBandwidth(64);
    const xa = clientFor(cluster, 'xen-a');
    const { uuid, ref } = await a.createVm({ nameLabel: 'dst-crash', memoryMiB: 16, dirtyRateMiBps: 128, diskMiB: [8] });
    const { token, vdiMap, vifMap } = await crossPoolArgs(cluster, ref);
    const task = await xa.call<string>('Async.VM.migrate_send', ref, token, true, vdiMap, vifMap, {});
    await waitForFigures(cluster, 'xen-a', task, (f) => f.diskProcessedBytes > 0, 'disk copy');
    await cluster.host('xen-c').admin.crash();
    await expect(waitForTask(xa, task)).rejects.toMatchObject({ code: 'VM_MIGRATE_FAILED' });
    expect((await xa.getRecord('VM', ref)).power_state).toBe('Running');
    expect(Object.keys((await a.checksums(uuid))?.disks ?? {})).toEqual(['0']);
    await cluster.restart('xen-c');
    await destinationIsClean(cluster, 'xen-c', uuid);
    // With the destination back, the same migration goes through.
    await a.setMaxIterations(5);
    const again = await crossPoolArgs(cluster, ref);
    const retry = await xa.call<string>('Async.VM.migrate_send', ref, again.token, true, again.vdiMap, again.vifMap, {});
    await waitForTask(xa, retry);
    expect((await cluster.host('xen-c').admin.listVms()).find((v) => v.uuid === uuid)?.powerState).toBe('Running');
  });

  it('an unreachable destination gives CANNOT_CONTACT_HOST', async () => {
    const a = cluster.host('xen-a').admin;
    const xa = clientFor(cluster, 'xen-a');
    const { ref } = await a.createVm({ nameLabel: 'unreachable', memoryMiB: 8, sr: 'shared' });
    const hostB = await hostRefOf(xa, 'xen-b');
    const metricsB = await xa.call<string>('host.get_metrics', hostB);
    const liveB = async () => (await xa.getRecord('host_metrics', metricsB)).live;
    await waitUntil(liveB, 'xen-a to see xen-b live');
    await cluster.crash('xen-b');
    await expect(xa.call('VM.pool_migrate', ref, hostB, {})).rejects.toMatchObject({ code: 'CANNOT_CONTACT_HOST', params: [hostB] });
    expect(await xa.call('VM.get_power_state', ref)).toBe('Running');
    // The pool's view of the dead member: live=false until it is back.
    expect(await liveB()).toBe(false);
    await cluster.restart('xen-b');
    expect(await liveB()).toBe(true);
  });
});
