// Data integrity: a 256 MiB VM whose guest keeps dirtying memory during the migration arrives
// with exactly the memory it had when it was paused on the source, and with identical disks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimCluster } from '../../simulator/cluster';
import { waitForTask } from '../../xenapi/task';
import { clientFor, figuresOf, startTestCluster } from './helpers';

describe('live migration moves real bytes', () => {
  let cluster: SimCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ bandwidthMiBps: 256 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('a 256 MiB VM with a dirtying guest pool-migrates with identical memory and disks', async () => {
    const a = cluster.host('xen-a').admin;
    const b = cluster.host('xen-b').admin;
    const { uuid, ref } = await a.createVm({ nameLabel: 'big', memoryMiB: 256, diskMiB: [16], dirtyRateMiBps: 64, sr: 'shared' });
    const before = await a.checksums(uuid);
    const xa = clientFor(cluster, 'xen-a');
    const hostB = (await xa.getByNameLabel('host', 'xen-b'))[0] as string;
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, hostB, {});
    await waitForTask(xa, task);
    const f = await figuresOf(cluster, 'xen-a', task);
    expect(f?.iteration).toBeGreaterThan(1); // the guest dirtied pages during pre-copy
    const after = await b.checksums(uuid);
    expect(after?.memoryAtArrival).toBe(f?.memorySha256);
    expect(f?.memorySha256).not.toBe(before?.memory); // memory did change while migrating
    expect(after?.disks).toEqual(before?.disks);
    expect(await a.checksums(uuid)).toBeNull();
    expect((await b.listVms()).find((v) => v.uuid === uuid)?.powerState).toBe('Running');
    // One pool database: the same ref, now resident on xen-b.
    expect((await xa.getRecord('VM', ref)).resident_on).toBe(hostB);
  });

  it('a cross-pool storage migration of a dirtying VM copies memory and every disk exactly', async () => {
    const a = cluster.host('xen-a').admin;
    const c = cluster.host('xen-c').admin;
    const { uuid, ref } = await a.createVm({ nameLabel: 'storage', memoryMiB: 64, diskMiB: [24, 8], dirtyRateMiBps: 32 });
    const before = await a.checksums(uuid);
    const xa = clientFor(cluster, 'xen-a');
    const xc = clientFor(cluster, 'xen-c');
    const hostC = (await xc.call<string[]>('host.get_all'))[0];
    const netC = (await xc.call<string[]>('network.get_all'))[0] as string;
    const srC = Object.entries(await xc.getAllRecords('SR')).find(([, s]) => !s.shared)?.[0] as string;
    const token = await xc.call('host.migrate_receive', hostC, netC, {});
    const vm = await xa.getRecord('VM', ref);
    const vdiMap: Record<string, string> = {};
    for (const vbd of vm.VBDs) vdiMap[(await xa.getRecord('VBD', vbd)).VDI] = srC;
    const vifMap = Object.fromEntries(vm.VIFs.map((v) => [v, netC]));
    const task = await xa.call<string>('Async.VM.migrate_send', ref, token, true, vdiMap, vifMap, {});
    const newRef = await waitForTask(xa, task);
    const f = await figuresOf(cluster, 'xen-a', task);
    const after = await c.checksums(uuid);
    expect(after?.memoryAtArrival).toBe(f?.memorySha256);
    expect(after?.disks).toEqual(before?.disks);
    expect(Object.keys(after?.disks ?? {})).toHaveLength(2);
    expect(f?.diskProcessedBytes).toBe(32 * 1024 * 1024);
    // The VM left pool-1's database (new ref in pool-2's).
    await expect(xa.call('VM.get_record', ref)).rejects.toMatchObject({ code: 'HANDLE_INVALID' });
    expect((await xc.getRecord('VM', newRef)).power_state).toBe('Running');
    // The source's copies of the disks are gone, as after xapi's storage migration.
    const stateA = await a.state();
    expect(Object.values(stateA.records.VDI).filter((v) => String(v.name_label).startsWith('storage'))).toEqual([]);
  });
});
