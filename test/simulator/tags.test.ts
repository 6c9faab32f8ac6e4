// VM.tags and other_config as xapi keeps them (what migration policies select on): tags is a set
// (add_tags / remove_tags do nothing when the value is already there or absent,
// ocaml/idl/datamodel_utils.ml), other_config a map (add_to_ refuses a key already there), and both
// travel with the VM's record across pools.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimCluster } from '../../simulator/cluster';
import { waitForTask } from '../../xenapi/task';
import { clientFor, crossPoolArgs, startTestCluster } from './helpers';

describe('VM.tags and other_config', () => {
  let cluster: SimCluster;
  beforeAll(async () => {
    cluster = await startTestCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('createVm sets them; add_tags and remove_tags are idempotent set operations', async () => {
    const xa = clientFor(cluster, 'xen-a');
    const vm = await cluster.host('xen-a').admin.createVm({ nameLabel: 'tagged', memoryMiB: 4, tags: ['database', 'database'], otherConfig: { 'XenCenter.CustomFields.tier': 'gold' } });
    const ref = await xa.getByUuid('VM', vm.uuid);
    let rec = await xa.getRecord('VM', ref);
    expect(rec.tags).toEqual(['database']);
    expect(rec.other_config['XenCenter.CustomFields.tier']).toBe('gold');
    await xa.call('VM.add_tags', ref, 'batch');
    await xa.call('VM.add_tags', ref, 'batch');
    expect(await xa.call('VM.get_tags', ref)).toEqual(['database', 'batch']);
    await xa.call('VM.remove_tags', ref, 'database');
    await xa.call('VM.remove_tags', ref, 'not-there');
    expect(await xa.call('VM.get_tags', ref)).toEqual(['batch']);
    await expect(xa.call('VM.add_to_other_config', ref, 'XenCenter.CustomFields.tier', 'silver')).rejects.toMatchObject({ code: 'MAP_DUPLICATE_KEY' });
    // A map is not a set: add_<field> is unknown for it, as in xapi.
    await expect(xa.call('VM.add_other_config', ref, 'x')).rejects.toMatchObject({ code: 'MESSAGE_METHOD_UNKNOWN' });
    rec = await xa.getRecord('VM', ref);
    expect(rec.tags).toEqual(['batch']);
    await xa.logout();
  });

  it('a cross-pool migrate_send carries them to the destination pool', async () => {
    const xa = clientFor(cluster, 'xen-a');
    const xc = clientFor(cluster, 'xen-c');
    const vm = await cluster.host('xen-a').admin.createVm({ nameLabel: 'travels', memoryMiB: 4, diskMiB: [1], tags: ['batch'], otherConfig: { tier: 'bronze' } });
    const ref = await xa.getByUuid('VM', vm.uuid);
    const { token, vdiMap, vifMap } = await crossPoolArgs(cluster, ref);
    await waitForTask(xa, await xa.call<string>('Async.VM.migrate_send', ref, token, true, vdiMap, vifMap, {}));
    const there = await xc.getRecord('VM', await xc.getByUuid('VM', vm.uuid));
    expect(there.tags).toEqual(['batch']);
    expect(there.other_config.tier).toBe('bronze');
    await xa.logout();
    await xc.logout();
  });
});
