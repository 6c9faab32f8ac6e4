// xenopsd's end-of-migration handshake (HANDOFF -> READY, the source gives up its domain,
// RESUME -> DONE) broken at each point by each fault: wherever it breaks, the VM ends running on
// exactly one host or halted, never on two.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HandoffAction, HandoffPoint } from '../../simulator/admin-client';
import type { SimCluster } from '../../simulator/cluster';
import { waitForTask } from '../../xenapi/task';
import { clientFor, crossPoolArgs, hostRefOf, startTestCluster, waitUntil } from './helpers';

type Outcome = 'source' | 'destination' | 'halted';

/** Contract (simulator/README.md, "The end of a migration"). */
const OUTCOME: Record<HandoffPoint, Record<HandoffAction, Outcome>> = {
  'after-handoff': { 'crash-source': 'halted', 'crash-destination': 'source', 'drop-connection': 'source' },
  'after-ready': { 'crash-source': 'halted', 'crash-destination': 'halted', 'drop-connection': 'halted' },
  'after-resume': { 'crash-source': 'destination', 'crash-destination': 'halted', 'drop-connection': 'destination' },
};

describe('handshake faults at the end of a migration', () => {
  let cluster: SimCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ bandwidthMiBps: 512 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  /** Hosts whose domains really run the VM (guest memory), whatever the databases say. */
  async function runningOn(uuid: string): Promise<string[]> {
    const where: string[] = [];
    for (const h of cluster.hosts) {
      const st = await h.admin.state();
      if (st.domains.some((d) => d.vmUuid === uuid)) where.push(h.name);
    }
    return where;
  }

  for (const crossPool of [false, true]) {
    const src = 'xen-a';
    const dst = crossPool ? 'xen-c' : 'xen-b';
    for (const point of Object.keys(OUTCOME) as HandoffPoint[]) {
      for (const action of Object.keys(OUTCOME[point]) as HandoffAction[]) {
        const expected = OUTCOME[point][action];
        it(`${crossPool ? 'migrate_send to another pool' : 'pool_migrate'}: ${action} ${point} leaves the VM ${expected === 'halted' ? 'halted' : `running on the ${expected}`}`, async () => {
          const xa = clientFor(cluster, src);
          const xd = clientFor(cluster, dst);
          const a = cluster.host(src).admin;
          const name = `hs-${crossPool ? 'x' : 'p'}-${point}-${action}`;
          const { uuid, ref } = await a.createVm({ nameLabel: name, memoryMiB: 16, dirtyRateMiBps: 8, diskMiB: [2], sr: crossPool ? 'local' : 'shared' });
          await a.failAtHandoff(point, action);
          let task: string;
          if (crossPool) {
            const { token, vdiMap, vifMap } = await crossPoolArgs(cluster, ref, src, dst);
            task = await xa.call<string>('Async.VM.migrate_send', ref, token, true, vdiMap, vifMap, {});
          } else {
            task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, dst), {});
          }
          if (action === 'crash-source') {
            // xen-a is pool-1's master: its API is gone with it, and with it the task.
            await waitUntil(async () => (await a.health()).crashed, 'the source to crash');
          } else {
            await expect(waitForTask(xa, task)).rejects.toMatchObject({ code: 'VM_MIGRATE_FAILED' });
          }
          for (const h of cluster.hosts) if ((await h.admin.health()).crashed) await cluster.restart(h.name);
          // Both ends let go of what they staged or gave up.
          await waitUntil(async () => (await cluster.host(dst).admin.state()).incoming.length === 0, 'the destination to settle');

          const where = await runningOn(uuid);
          expect(where).toEqual(expected === 'halted' ? [] : [expected === 'source' ? src : dst]);
          // The databases say the same.
          const inSource = await xa.getAllRecordsWhere('VM', `field "uuid" = "${uuid}"`);
          const inDest = crossPool ? await xd.getAllRecordsWhere('VM', `field "uuid" = "${uuid}"`) : {};
          if (!crossPool) {
            expect(Object.keys(inSource)).toEqual([ref]);
            const rec = inSource[ref];
            if (expected === 'halted') expect([rec?.power_state, rec?.resident_on]).toEqual(['Halted', 'OpaqueRef:NULL']);
            else expect([rec?.power_state, rec?.resident_on]).toEqual(['Running', await hostRefOf(xa, where[0] as string)]);
          } else {
            const src1 = inSource[ref];
            if (expected === 'source') {
              expect([src1?.power_state, src1?.resident_on]).toEqual(['Running', await hostRefOf(xa, src)]);
              expect(inDest).toEqual({});
            } else {
              // The source pool keeps a halted record (it gave up its domain).
              expect([src1?.power_state, src1?.resident_on]).toEqual(['Halted', 'OpaqueRef:NULL']);
              const d = Object.values(inDest);
              if (expected === 'destination') expect(d.map((r) => r.power_state)).toEqual(['Running']);
              else expect(d.every((r) => r.power_state === 'Halted')).toBe(true);
            }
          }
          // Nothing half-received stays behind.
          const st = await cluster.host(dst).admin.state();
          expect([...st.srFiles.local, ...st.srFiles.shared].filter((f) => f.endsWith('.partial'))).toEqual([]);
        });
      }
    }
  }
});
