// The crash model: one host loses power (in-process), the pool database keeps its VMs as they
// were until the host is back and resync halts them; a crashed master takes the pool's API down
// with it; a killed pool process comes back with every VM halted.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimCluster } from '../../simulator/cluster';
import { XenApiClient } from '../../xenapi/client';
import { XenApiError, XenApiTransportError } from '../../xenapi/errors';
import { PASSWORD, clientFor, hostRefOf, startTestCluster } from './helpers';

function canConnect(url: string, port?: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = connect({ host: u.hostname, port: port ?? Number(u.port) });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('crash model', () => {
  let cluster: SimCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ bandwidthMiBps: 512 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('a member crash: its guests die and its endpoints close; the database keeps its VMs until it is back, then they are halted', async () => {
    const xa = clientFor(cluster, 'xen-a');
    const onA = await cluster.host('xen-a').admin.createVm({ nameLabel: 'stays-on-a', memoryMiB: 8 });
    const onB = await cluster.host('xen-b').admin.createVm({ nameLabel: 'dies-with-b', memoryMiB: 8, diskMiB: [1] });
    const hostB = await hostRefOf(xa, 'xen-b');
    const metricsB = await xa.call<string>('host.get_metrics', hostB);
    await cluster.crash('xen-b');
    const b = cluster.host('xen-b');
    expect(await canConnect(b.xenapiUrl)).toBe(false);
    expect(await canConnect(b.xenapiUrl, b.dataPort)).toBe(false);
    expect((await b.admin.health()).crashed).toBe(true);
    await expect(b.admin.listVms()).rejects.toMatchObject({ status: 503 });
    // The master answers; it has not noticed the VM died (xapi learns at the host's return).
    expect((await xa.getRecord('host_metrics', metricsB)).live).toBe(false);
    expect(await xa.call('VM.get_power_state', onB.ref)).toBe('Running');
    expect(await xa.call('VM.get_resident_on', onB.ref)).toBe(hostB);
    await expect(xa.call('VM.hard_shutdown', onB.ref)).rejects.toMatchObject({ code: 'HOST_OFFLINE', params: [hostB] });
    await cluster.restart('xen-b');
    expect((await xa.getRecord('host_metrics', metricsB)).live).toBe(true);
    const vm = await xa.getRecord('VM', onB.ref);
    expect([vm.power_state, vm.resident_on, vm.domid]).toEqual(['Halted', 'OpaqueRef:NULL', '-1']);
    expect(await xa.call('VM.get_power_state', onA.ref)).toBe('Running');
    // Its disk survived: it starts again where its affinity points.
    await xa.call('VM.start', onB.ref, false, false);
    expect(await xa.call('VM.get_resident_on', onB.ref)).toBe(hostB);
  });

  it("a master crash takes every member's XenAPI down; members' guests and data ports live on; sessions and tasks are gone after", async () => {
    const xa = clientFor(cluster, 'xen-a');
    const onA = await cluster.host('xen-a').admin.createVm({ nameLabel: 'on-master', memoryMiB: 8 });
    const onB = await cluster.host('xen-b').admin.createVm({ nameLabel: 'on-member', memoryMiB: 8 });
    await xa.call('pool.get_all');
    const oldSession = xa.sessionRef as string;
    const task = await xa.call<string>('Async.VM.get_record', onB.ref);
    await cluster.crash('xen-a');
    const a = cluster.host('xen-a');
    const b = cluster.host('xen-b');
    expect(await canConnect(a.xenapiUrl)).toBe(false);
    expect(await canConnect(b.xenapiUrl)).toBe(false);
    expect(await canConnect(b.xenapiUrl, b.dataPort)).toBe(true);
    expect((await b.admin.state()).domains.map((d) => d.vmUuid)).toContain(onB.uuid);
    const down = await new XenApiClient({ url: b.xenapiUrl, user: 'root', password: PASSWORD, timeoutMs: 2_000 }).login().catch((e: unknown) => e);
    expect(down).toBeInstanceOf(XenApiTransportError);
    // pool-2 does not care.
    expect(await clientFor(cluster, 'xen-c').call<string[]>('pool.get_all')).toHaveLength(1);

    await cluster.restart('xen-a');
    const raw = new XenApiClient({ url: a.xenapiUrl, user: 'root', password: PASSWORD });
    await expect(raw.rawCall('pool.get_all', [oldSession])).rejects.toMatchObject({ code: 'SESSION_INVALID' });
    // The client logs in again by itself.
    await expect(xa.call('task.get_record', task)).rejects.toBeInstanceOf(XenApiError);
    expect(await xa.call<string[]>('task.get_all')).toEqual([]);
    expect(await xa.call('VM.get_power_state', onA.ref)).toBe('Halted');
    expect(await xa.call('VM.get_power_state', onB.ref)).toBe('Running');
    expect(await xa.call('VM.get_resident_on', onB.ref)).toBe(await hostRefOf(xa, 'xen-b'));
    // The member's endpoint is back too.
    expect(await canConnect(b.xenapiUrl)).toBe(true);
  });

  it('a killed pool process comes back from its database with every VM halted and the same refs', async () => {
    const xa = clientFor(cluster, 'xen-a');
    const onA = await cluster.host('xen-a').admin.createVm({ nameLabel: 'pool-loss-a', memoryMiB: 8, diskMiB: [1], sr: 'shared' });
    const onB = await cluster.host('xen-b').admin.createVm({ nameLabel: 'pool-loss-b', memoryMiB: 8 });
    const disks = (await cluster.host('xen-a').admin.checksums(onA.uuid))?.disks;
    // Let the database reach the disk (it is written after every change, asynchronously).
    await new Promise((r) => setTimeout(r, 100));
    await cluster.killProcess('xen-a');
    await cluster.restart('xen-a');
    for (const ref of [onA.ref, onB.ref]) {
      const vm = await xa.getRecord('VM', ref);
      expect([vm.power_state, vm.resident_on]).toEqual(['Halted', 'OpaqueRef:NULL']);
    }
    expect((await cluster.host('xen-a').admin.checksums(onA.uuid))?.disks).toEqual(disks);
    expect((await cluster.host('xen-b').admin.health()).crashed).toBe(false);
    await xa.call('VM.start', onB.ref, false, false);
    expect(await xa.call('VM.get_resident_on', onB.ref)).toBe(await hostRefOf(xa, 'xen-b'));
  });
});
