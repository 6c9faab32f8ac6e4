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

    const arrived = await run(a('xen-c').postLiveMigrationAtDestination, { instanceUuid: vm.uuid, resume: false, vcpuCap: null });
    expect(await run(a('xen-c').postLiveMigrationAtDestination, { instanceUuid: vm.uuid, resume: false, vcpuCap: null })).toEqual(arrived);
    expect(arrived).toMatchObject({ present: true, powerState: 'Running' });
    await run(a('xen-a').postLiveMigration, { instanceUuid: vm.uuid });
    await run(a('xen-a').postLiveMigration, { instanceUuid: vm.uuid });
    expect((await sims.host('xen-a').admin.listVms()).some((v) => v.uuid === vm.uuid)).toBe(false);
    expect((await sims.host('xen-c').admin.listVms()).filter((v) => v.uuid === vm.uuid)).toHaveLength(1);
  });

  it('steering and rollback steps, twice', async () => {
    const vm = await sims.host('xen-a').admin.createVm({ nameLabel: 'steer', memoryMiB: 16, sr: 'shared' });
    await run(a('xen-a').capGuestVcpu, { instanceUuid: vm.uuid, vcpuCap: 30 });
    await run(a('xen-a').capGuestVcpu, { instanceUuid: vm.uuid, vcpuCap: 30 });
    await run(a('xen-a').forceCompleteGuest, { instanceUuid: vm.uuid });
    await run(a('xen-a').forceCompleteGuest, { instanceUuid: vm.uuid });
    const paused = await run(a('xen-a').instancePresence, { instanceUuid: vm.uuid });
    expect(paused).toMatchObject({ present: true, powerState: 'Paused', vcpuCap: 30 });

    const restored = await run(a('xen-a').rollbackLiveMigration, { instanceUuid: vm.uuid, resume: true, vcpuCap: null });
    expect(await run(a('xen-a').rollbackLiveMigration, { instanceUuid: vm.uuid, resume: true, vcpuCap: null })).toEqual(restored);
    expect(restored).toMatchObject({ present: true, powerState: 'Running', vcpuCap: null });

    // Nothing of this VM on the destination: the undo there is a no-op, however often it runs.
    expect(await run(a('xen-b').rollbackLiveMigrationAtDestination, { instanceUuid: vm.uuid })).toEqual({ removed: false });
    expect(await run(a('xen-b').rollbackLiveMigrationAtDestination, { instanceUuid: vm.uuid })).toEqual({ removed: false });
    expect((await sims.host('xen-a').admin.listVms()).filter((v) => v.uuid === vm.uuid)).toHaveLength(1);
  });
});
