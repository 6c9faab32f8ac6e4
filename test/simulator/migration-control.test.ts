// Cancelling a migration at several points, the point of no return, convergence steering
// (force-complete by VM.pause, vCPU cap) and the concurrency rules (one migration per VM, at
// most 3 storage migrations per host).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SimCluster } from '../../simulator/cluster';
import type { XenApiClient } from '../../xenapi/client';
import { XenApiError } from '../../xenapi/errors';
import { waitForTask } from '../../xenapi/task';
import { clientFor, crossPoolArgs, destinationIsClean, hostRefOf, startTestCluster, waitUntil } from './helpers';

describe('migration control', () => {
  let cluster: SimCluster;
  let xa: XenApiClient;
  beforeAll(async () => {
    cluster = await startTestCluster({ bandwidthMiBps: 512 });
    xa = clientFor(cluster, 'xen-a');
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  beforeEach(async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(512);
    await a.setMaxIterations(0);
  });

  const otherConfig = (task: string) => xa.call<Record<string, string>>('task.get_other_config', task);

  async function expectCancelled(task: string, vmRef: string, vmUuid: string, dest: string) {
    await expect(waitForTask(xa, task, { pollMs: 25 })).rejects.toMatchObject({ code: 'TASK_CANCELLED' });
    const rec = await xa.getRecord('task', task);
    expect(rec.status).toBe('cancelled');
    expect(rec.error_info).toEqual(['TASK_CANCELLED', task]);
    expect((await xa.getRecord('VM', vmRef)).power_state).toBe('Running');
    expect((await xa.getRecord('VM', vmRef)).current_operations).toEqual({});
    await destinationIsClean(cluster, dest, vmUuid);
  }

  it('cancels right after the call, while the destination is being checked', async () => {
    const a = cluster.host('xen-a').admin;
    const { uuid, ref } = await a.createVm({ nameLabel: 'cancel-at-once', memoryMiB: 16, diskMiB: [4] });
    const { token, vdiMap, vifMap } = await crossPoolArgs(cluster, ref);
    const task = await xa.call<string>('Async.VM.migrate_send', ref, token, true, vdiMap, vifMap, {});
    // The task names its VM from the start, so a retried caller can find it.
    expect((await otherConfig(task)).vm_uuid).toBe(uuid);
    await xa.call('task.cancel', task);
    await expectCancelled(task, ref, uuid, 'xen-c');
  });

  it('cancels during the disk copy of a storage migration', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(32);
    const { uuid, ref } = await a.createVm({ nameLabel: 'cancel-disk', memoryMiB: 16, diskMiB: [64] });
    const { token, vdiMap, vifMap } = await crossPoolArgs(cluster, ref);
    const task = await xa.call<string>('Async.VM.migrate_send', ref, token, true, vdiMap, vifMap, {});
    await waitUntil(async () => {
      const oc = await otherConfig(task);
      return oc.phase === 'disk' && Number(oc.disk_processed_bytes) > 0;
    }, 'disk copy');
    await xa.call('task.cancel', task);
    await expectCancelled(task, ref, uuid, 'xen-c');
    // The VM's disk is still whole on the source.
    expect(Object.keys((await a.checksums(uuid))?.disks ?? {})).toEqual(['0']);
  });

  it('cancels during the first pre-copy round', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(32);
    const { uuid, ref } = await a.createVm({ nameLabel: 'cancel-first', memoryMiB: 128, sr: 'shared', diskMiB: [1] });
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
    await waitUntil(async () => {
      const oc = await otherConfig(task);
      return oc.phase === 'precopy' && oc.iteration === '1' && Number(oc.memory_processed_bytes) > 0;
    }, 'first round');
    await xa.call('task.cancel', task);
    await expectCancelled(task, ref, uuid, 'xen-b');
  });

  it('cancels a migration that does not converge (dirty rate above bandwidth, unlimited rounds)', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(64);
    const { uuid, ref } = await a.createVm({ nameLabel: 'cancel-late', memoryMiB: 8, dirtyRateMiBps: 128, sr: 'shared' });
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
    const oc = await waitUntil(async () => {
      const o = await otherConfig(task);
      return Number(o.iteration) >= 6 ? o : undefined;
    }, 'six rounds');
    expect(oc.phase).toBe('precopy');
    expect(Number(oc.dirty_rate_bytes_per_s)).toBeGreaterThan(0);
    expect((await xa.getRecord('task', task)).allowed_operations).toContain('cancel');
    const controller = new AbortController();
    controller.abort();
    // waitForTask cancels through its AbortSignal.
    await expect(waitForTask(xa, task, { signal: controller.signal, pollMs: 25 })).rejects.toMatchObject({ code: 'TASK_CANCELLED' });
    await expectCancelled(task, ref, uuid, 'xen-b');
  });

  it('refuses to cancel once stop-and-copy began, and completes', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setMaxIterations(1);
    await a.setBandwidth(64);
    const { uuid, ref } = await a.createVm({ nameLabel: 'no-return', memoryMiB: 64, dirtyRateMiBps: 128, sr: 'shared' });
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
    await waitUntil(async () => (await otherConfig(task)).phase === 'stop_and_copy', 'stop-and-copy');
    expect((await xa.getRecord('task', task)).allowed_operations).not.toContain('cancel');
    const refusal = await xa.call('task.cancel', task).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(XenApiError);
    expect((refusal as XenApiError).code).toBe('OPERATION_NOT_ALLOWED');
    await waitForTask(xa, task, { pollMs: 25 });
    const oc = await otherConfig(task);
    expect(oc.phase).toBe('done');
    expect(Number(oc.downtime_ms)).toBeGreaterThan(0);
    expect((await cluster.host('xen-b').admin.checksums(uuid))?.memoryAtArrival).toBe(oc.memory_sha256);
  });

  it('force-completes by pausing the VM: it arrives paused and unpauses on the destination', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(64);
    const { uuid, ref } = await a.createVm({ nameLabel: 'force', memoryMiB: 8, dirtyRateMiBps: 128, sr: 'shared' });
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
    await waitUntil(async () => Number((await otherConfig(task)).iteration) >= 4, 'non-convergence');
    await expect(xa.call('VM.hard_shutdown', ref)).rejects.toMatchObject({ code: 'OTHER_OPERATION_IN_PROGRESS' });
    await xa.call('VM.pause', ref);
    await waitForTask(xa, task, { pollMs: 25 });
    const xb = clientFor(cluster, 'xen-b');
    const onB = await xb.getByUuid('VM', uuid);
    expect((await xb.getRecord('VM', onB)).power_state).toBe('Paused');
    expect((await cluster.host('xen-b').admin.checksums(uuid))?.memoryAtArrival).toBe((await otherConfig(task)).memory_sha256);
    await xb.call('VM.unpause', onB);
    expect((await xb.getRecord('VM', onB)).power_state).toBe('Running');
  });

  it('a vCPU cap lowers the dirty rate until pre-copy converges; VCPUs_params travel with the VM', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(64);
    const { uuid, ref } = await a.createVm({ nameLabel: 'capped', memoryMiB: 8, dirtyRateMiBps: 128, sr: 'shared' });
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
    await waitUntil(async () => Number((await otherConfig(task)).iteration) >= 4, 'non-convergence');
    expect((await xa.getRecord('task', task)).status).toBe('pending');
    await xa.call('VM.add_to_VCPUs_params', ref, 'cap', '1');
    await waitForTask(xa, task, { pollMs: 25 });
    const xb = clientFor(cluster, 'xen-b');
    const vm = await xb.getRecord('VM', await xb.getByUuid('VM', uuid));
    expect(vm.power_state).toBe('Running');
    expect(vm.VCPUs_params).toEqual({ cap: '1' });
    await xb.call('VM.remove_from_VCPUs_params', await xb.getByUuid('VM', uuid), 'cap');
    expect((await xb.getRecord('VM', await xb.getByUuid('VM', uuid))).VCPUs_params).toEqual({});
  });

  it('allows one migration per VM and at most 3 storage migrations per host', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(64);
    const tasks: { task: string; ref: string; uuid: string }[] = [];
    for (let i = 0; i < 4; i++) {
      const { uuid, ref } = await a.createVm({ nameLabel: `storage-${i}`, memoryMiB: 16, diskMiB: [1], dirtyRateMiBps: 64 });
      const { token, vdiMap, vifMap } = await crossPoolArgs(cluster, ref);
      if (i < 3) {
        tasks.push({ task: await xa.call<string>('Async.VM.migrate_send', ref, token, true, vdiMap, vifMap, {}), ref, uuid });
        continue;
      }
      await expect(xa.call('VM.migrate_send', ref, token, true, vdiMap, vifMap, {})).rejects.toMatchObject({
        code: 'TOO_MANY_STORAGE_MIGRATES',
        params: ['3'],
      });
      await expect(xa.call('VM.assert_can_migrate', ref, token, true, vdiMap, vifMap, {})).rejects.toMatchObject({ code: 'TOO_MANY_STORAGE_MIGRATES' });
      const again = await crossPoolArgs(cluster, tasks[0]?.ref as string);
      await expect(xa.call('VM.migrate_send', tasks[0]?.ref, again.token, true, again.vdiMap, again.vifMap, {})).rejects.toMatchObject({
        code: 'OTHER_OPERATION_IN_PROGRESS',
        params: ['VM', tasks[0]?.ref],
      });
    }
    // A retried activity finds the running migration of a VM by its task's vm_uuid.
    const running = await xa.getAllRecordsWhere('task', 'field "status" = "pending"');
    expect(Object.values(running).map((t) => t.other_config.vm_uuid).sort()).toEqual(tasks.map((t) => t.uuid).sort());
    for (const t of tasks) await xa.call('task.cancel', t.task);
    for (const t of tasks) await expectCancelled(t.task, t.ref, t.uuid, 'xen-c');
  });
});
