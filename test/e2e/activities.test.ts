// Host activities against real simulators (the Temporal side is the SDK's MockActivityEnvironment):
// each is idempotent, so a retry after a worker crash changes nothing more.
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHostActivities, type HostActivities } from '../../activities/host';
import type { HostConfig } from '../../lib/config';
import { createLogger } from '../../lib/logger';
import { simulatedHostConfig, startSimulators, type SimCluster } from '../../simulator/cluster';
import { XenApiClient } from '../../xenapi/client';
import type { TransferProgress } from '../../workflows/definitions';

const password = 'idempotency';
let sims: SimCluster;
const hosts: HostConfig[] = [];
const acts: Record<string, HostActivities> = {};
const clients: XenApiClient[] = [];
const progress: TransferProgress[] = [];

beforeAll(async () => {
  for (const [name, pool] of [['xen-a', 'pool-1'], ['xen-b', 'pool-1'], ['xen-c', 'pool-2']] as const) {
    hosts.push(await simulatedHostConfig(name, pool, { memoryMiB: 4096 }));
  }
  sims = await startSimulators({ hosts, bandwidthMiBps: 512, password });
  for (const host of hosts) {
    const xenapi = new XenApiClient({ url: host.xenapiUrl, user: 'root', password });
    clients.push(xenapi);
    acts[host.name] = createHostActivities({
      host,
      xenapi,
      logger: createLogger('test', { host: host.name }),
      reportProgress: async (_id, p) => {
        progress.push(p);
      },
    });
  }
});

afterAll(async () => {
  for (const c of clients) await c.logout();
  await sims?.stop();
});

const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => new MockActivityEnvironment().run(fn, ...args);
const a = (name: string) => acts[name] as HostActivities;

describe('host activities run twice change nothing more', () => {
  it('a block migration: every step, twice', async () => {
    const vm = await sims.host('xen-a').admin.createVm({ nameLabel: 'twice', memoryMiB: 16, diskMiB: [4], sr: 'local' });
    const instance = await run(a('xen-a').checkInstanceActive, { instanceUuid: vm.uuid });
    expect(await run(a('xen-a').checkInstanceActive, { instanceUuid: vm.uuid })).toEqual(instance);

    const check = { instance, sourceHost: { name: 'xen-a', pool: 'pool-1' }, blockMigration: true };
    const facts = await run(a('xen-c').checkCanLiveMigrateDestination, check);
    expect((await run(a('xen-c').checkCanLiveMigrateDestination, check)).srRef).toBe(facts.srRef);
    const token = await run(a('xen-c').migrateReceive);
    await run(a('xen-c').migrateReceive); // a second token does no harm
    const prepared = await run(a('xen-c').preLiveMigration);
    expect(await run(a('xen-c').preLiveMigration)).toEqual(prepared);

    const send = { instanceUuid: vm.uuid, destination: prepared, blockMigration: true, token, samePool: false, workflowId: 'wf' };
    await run(a('xen-a').assertCanMigrate, send);
    const first = await run(a('xen-a').migrateSend, send);
    expect(first.alreadyDone).toBe(false);
    expect(first.bytesSent).toBeGreaterThan(16 * 2 ** 20);
    expect(progress.length).toBeGreaterThan(0);
    // The retry of a migrateSend whose task already finished: it finds the VM gone and reports done.
    const second = await run(a('xen-a').migrateSend, send);
    expect(second.alreadyDone).toBe(true);

    const arrived = await run(a('xen-c').postLiveMigrationAtDestination, { instanceUuid: vm.uuid });
    expect(await run(a('xen-c').postLiveMigrationAtDestination, { instanceUuid: vm.uuid })).toEqual(arrived);
    expect(arrived).toMatchObject({ present: true, runningHere: true, powerState: 'Running', residentOn: 'xen-c' });
    await run(a('xen-a').postLiveMigration, { instanceUuid: vm.uuid });
    await run(a('xen-a').postLiveMigration, { instanceUuid: vm.uuid });
    expect((await sims.host('xen-a').admin.listVms()).some((v) => v.uuid === vm.uuid)).toBe(false);
    expect((await sims.host('xen-c').admin.listVms()).filter((v) => v.uuid === vm.uuid)).toHaveLength(1);
  });

  it('steering and rollback steps, twice', async () => {
    const vm = await sims.host('xen-a').admin.createVm({ nameLabel: 'steer', memoryMiB: 16, sr: 'shared' });
    const xen = clients[0] as XenApiClient;
    const domain = async () => {
      const record = await xen.getRecord('VM', vm.ref);
      return JSON.parse(await xen.callPlugin(record.resident_on, 'ferry', 'get_domain', { domid: record.domid })) as { paused: boolean; cap: number };
    };
    await run(a('xen-a').capGuestVcpu, { instanceUuid: vm.uuid, vcpuCap: 30 });
    await run(a('xen-a').capGuestVcpu, { instanceUuid: vm.uuid, vcpuCap: 30 });
    await run(a('xen-a').forceCompleteGuest, { instanceUuid: vm.uuid });
    await run(a('xen-a').forceCompleteGuest, { instanceUuid: vm.uuid });
    // The plugin acts on the domain; xapi's record keeps what it had (no cap, Running).
    expect(await domain()).toEqual({ domid: expect.any(String), paused: true, cap: 30 });
    const steered = await run(a('xen-a').instancePresence, { instanceUuid: vm.uuid });
    expect(steered).toMatchObject({ present: true, runningHere: true, powerState: 'Running', vcpuCap: null, migrationTask: null });

    const restored = await run(a('xen-a').rollbackLiveMigration, { instanceUuid: vm.uuid, resume: true, vcpuCap: null });
    expect(await run(a('xen-a').rollbackLiveMigration, { instanceUuid: vm.uuid, resume: true, vcpuCap: null })).toEqual(restored);
    expect(restored).toMatchObject({ present: true, runningHere: true, powerState: 'Running' });
    expect(await domain()).toMatchObject({ paused: false, cap: 0 });

    // In one pool there is one record of the VM: the undo on the destination never touches it.
    const kept = { removed: false, kept: 'one record in pool pool-1' };
    expect(await run(a('xen-b').rollbackLiveMigrationAtDestination, { instanceUuid: vm.uuid, sourcePool: 'pool-1' })).toEqual(kept);
    expect(await run(a('xen-b').rollbackLiveMigrationAtDestination, { instanceUuid: vm.uuid, sourcePool: 'pool-1' })).toEqual(kept);
    // And seen from the destination, the VM does not run there.
    expect(await run(a('xen-b').instancePresence, { instanceUuid: vm.uuid })).toMatchObject({ present: false, runningHere: false, residentOn: 'xen-a' });
    expect((await xen.getRecord('VM', vm.ref)).power_state).toBe('Running');
  });
});
