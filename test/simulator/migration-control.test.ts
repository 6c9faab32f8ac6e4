// Cancelling a migration at several points, the point of no return, convergence steering
// (through the ferry dom0 plugin: domain pause and vCPU cap; xapi itself refuses VM.pause during a
// migration and cannot change a running domain's cap) and the concurrency rules (one operation
// per VM as xapi_vm_lifecycle.ml allows, at most 3 storage migrations per host).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SimCluster } from '../../simulator/cluster';
import type { XenApiClient } from '../../xenapi/client';
import { XenApiError } from '../../xenapi/errors';
import { waitForTask } from '../../xenapi/task';
import { clientFor, crossPoolArgs, destinationIsClean, figuresOf, hostRefOf, startTestCluster, waitForFigures } from './helpers';

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

  const figures = (task: string, pred: Parameters<typeof waitForFigures>[3], what: string) => waitForFigures(cluster, 'xen-a', task, pred, what);
  const plugin = async (host: string, fn: string, args: Record<string, string>) =>
    JSON.parse(await xa.call<string>('host.call_plugin', await hostRefOf(xa, host), 'ferry', fn, args)) as Record<string, unknown>;

  async function expectCancelled(task: string, vmRef: string, vmUuid: string, dest: string) {
    await expect(waitForTask(xa, task)).rejects.toMatchObject({ code: 'TASK_CANCELLED' });
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
    // The VM names its migration task from the start (current_operations), so a retried caller can find it.
    expect((await xa.getRecord('VM', ref)).current_operations).toEqual({ [task]: 'migrate_send' });
    expect((await xa.getRecord('task', task)).other_config).toEqual({});
    await xa.call('task.cancel', task);
    await expectCancelled(task, ref, uuid, 'xen-c');
  });

  it('cancels during the disk copy of a storage migration', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(32);
    const { uuid, ref } = await a.createVm({ nameLabel: 'cancel-disk', memoryMiB: 16, diskMiB: [64] });
    const { token, vdiMap, vifMap } = await crossPoolArgs(cluster, ref);
    const task = await xa.call<string>('Async.VM.migrate_send', ref, token, true, vdiMap, vifMap, {});
    await figures(task, (f) => f.phase === 'disk' && f.diskProcessedBytes > 0, 'disk copy');
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
    await figures(task, (f) => f.phase === 'precopy' && f.iteration === 1 && f.memoryProcessedBytes > 0, 'first round');
    await xa.call('task.cancel', task);
    await expectCancelled(task, ref, uuid, 'xen-b');
  });

  it('cancels a migration that does not converge (dirty rate above bandwidth, unlimited rounds)', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(64);
    const { uuid, ref } = await a.createVm({ nameLabel: 'cancel-late', memoryMiB: 8, dirtyRateMiBps: 128, sr: 'shared' });
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
    const f = await figures(task, (x) => x.iteration >= 6, 'six rounds');
    expect(f.phase).toBe('precopy');
    expect(f.dirtyRateBytesPerS).toBeGreaterThan(0);
    expect((await xa.getRecord('task', task)).allowed_operations).toContain('cancel');
    const controller = new AbortController();
    controller.abort();
    // waitForTask cancels through its AbortSignal.
    await expect(waitForTask(xa, task, { signal: controller.signal })).rejects.toMatchObject({ code: 'TASK_CANCELLED' });
    await expectCancelled(task, ref, uuid, 'xen-b');
  });

  it('refuses to cancel once stop-and-copy began, and completes', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setMaxIterations(1);
    await a.setBandwidth(64);
    const { uuid, ref } = await a.createVm({ nameLabel: 'no-return', memoryMiB: 64, dirtyRateMiBps: 128, sr: 'shared' });
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
    await figures(task, (f) => f.phase === 'stop_and_copy', 'stop-and-copy');
    expect((await xa.getRecord('task', task)).allowed_operations).not.toContain('cancel');
    const refusal = await xa.call('task.cancel', task).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(XenApiError);
    expect((refusal as XenApiError).code).toBe('OPERATION_NOT_ALLOWED');
    await waitForTask(xa, task);
    const f = await figuresOf(cluster, 'xen-a', task);
    expect(f?.phase).toBe('done');
    expect(f?.status).toBe('success');
    expect(f?.downtimeMs).toBeGreaterThan(0);
    expect((await cluster.host('xen-b').admin.checksums(uuid))?.memoryAtArrival).toBe(f?.memorySha256);
  });

  it('refuses VM.pause during a migration; the plugin pauses the domain, it converges and runs on the destination', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(64);
    const { uuid, ref } = await a.createVm({ nameLabel: 'force', memoryMiB: 8, dirtyRateMiBps: 128, sr: 'shared' });
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
    await figures(task, (f) => f.iteration >= 4, 'non-convergence');
    // xapi_vm_lifecycle.ml: nothing but hard_shutdown/hard_reboot may run alongside pool_migrate.
    await expect(xa.call('VM.pause', ref)).rejects.toMatchObject({ code: 'OTHER_OPERATION_IN_PROGRESS', params: ['VM', ref, 'pool_migrate', task] });
    const vm = await xa.getRecord('VM', ref);
    expect(vm.current_operations).toEqual({ [task]: 'pool_migrate' });
    expect(vm.allowed_operations).not.toContain('pause');
    const domid = vm.domid;
    expect(await plugin('xen-a', 'pause', { domid })).toEqual({ domid, paused: true });
    expect(await plugin('xen-a', 'get_domain', { domid })).toEqual({ domid, paused: true, cap: 0 });
    // The record keeps what xapi last saw.
    expect((await xa.getRecord('VM', ref)).power_state).toBe('Running');
    await waitForTask(xa, task);
    const after = await xa.getRecord('VM', ref);
    expect(after.power_state).toBe('Running');
    expect(after.resident_on).toBe(await hostRefOf(xa, 'xen-b'));
    // xenopsd built a fresh domain on the destination: running, not paused.
    expect(await plugin('xen-b', 'get_domain', { domid: after.domid })).toMatchObject({ paused: false });
    expect((await cluster.host('xen-b').admin.checksums(uuid))?.memoryAtArrival).toBe((await figuresOf(cluster, 'xen-a', task))?.memorySha256);
  });

  it('VCPUs_params change only the record; the plugin caps the running domain until pre-copy converges', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(64);
    const { ref } = await a.createVm({ nameLabel: 'capped', memoryMiB: 8, dirtyRateMiBps: 128, sr: 'shared' });
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
    const before = await figures(task, (f) => f.iteration >= 4, 'non-convergence');
    await xa.call('VM.add_to_VCPUs_params', ref, 'cap', '1');
    await figures(task, (f) => f.iteration >= before.iteration + 3, 'more rounds');
    expect((await xa.getRecord('task', task)).status).toBe('pending');
    await expect(xa.call('VM.add_to_VCPUs_params_live', ref, 'cap', '1')).rejects.toMatchObject({ code: 'OTHER_OPERATION_IN_PROGRESS' });
    const domid = (await xa.getRecord('VM', ref)).domid;
    expect(await plugin('xen-a', 'set_vcpu_cap', { domid, cap: '2' })).toEqual({ domid, cap: '2' });
    await waitForTask(xa, task);
    const vm = await xa.getRecord('VM', ref);
    expect(vm.power_state).toBe('Running');
    expect(vm.VCPUs_params).toEqual({ cap: '1' });
    // The plugin's cap stayed with the old domain; the new one starts with the record's.
    expect(await plugin('xen-b', 'get_domain', { domid: vm.domid })).toMatchObject({ cap: 1, paused: false });
    // Not through xapi: xapi_vm.ml answers NOT_IMPLEMENTED.
    await expect(xa.call('VM.add_to_VCPUs_params_live', ref, 'cap', '1')).rejects.toMatchObject({ code: 'NOT_IMPLEMENTED', params: ['add_to_VCPUs_params_live'] });
    await xa.call('VM.remove_from_VCPUs_params', ref, 'cap');
    expect((await xa.getRecord('VM', ref)).VCPUs_params).toEqual({});
  });

  it('hard_shutdown during a pool_migrate cancels it and halts the VM; clean_shutdown is refused', async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(64);
    const { uuid, ref } = await a.createVm({ nameLabel: 'shutdown-mid', memoryMiB: 8, dirtyRateMiBps: 128, sr: 'shared' });
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
    await figures(task, (f) => f.iteration >= 2, 'pre-copy');
    // xapi_vm_lifecycle.ml: only hard_shutdown and hard_reboot may run alongside pool_migrate.
    await expect(xa.call('VM.clean_shutdown', ref)).rejects.toMatchObject({ code: 'OTHER_OPERATION_IN_PROGRESS', params: ['VM', ref, 'pool_migrate', task] });
    await xa.call('VM.hard_shutdown', ref);
    const rec = await xa.getRecord('task', task);
    expect([rec.status, rec.error_info[0]]).toEqual(['cancelled', 'TASK_CANCELLED']);
    const vm = await xa.getRecord('VM', ref);
    expect([vm.power_state, vm.resident_on, vm.current_operations]).toEqual(['Halted', 'OpaqueRef:NULL', {}]);
    await destinationIsClean(cluster, 'xen-b', uuid);
  });

  it('plugin errors: a missing plugin, an unknown function, a bad argument, a domain not on that host', async () => {
    const a = cluster.host('xen-a').admin;
    const { ref } = await a.createVm({ nameLabel: 'plugin-errors', memoryMiB: 8, sr: 'shared' });
    const domid = (await xa.getRecord('VM', ref)).domid;
    const hostA = await hostRefOf(xa, 'xen-a');
    await expect(xa.call('host.call_plugin', hostA, 'nope', 'pause', { domid })).rejects.toMatchObject({ code: 'XENAPI_MISSING_PLUGIN', params: ['nope'] });
    await expect(xa.call('host.call_plugin', hostA, 'ferry', 'reboot', { domid })).rejects.toMatchObject({ code: 'UNKNOWN_XENAPI_PLUGIN_FUNCTION', params: ['reboot'] });
    await expect(xa.call('host.call_plugin', hostA, 'ferry', 'set_vcpu_cap', { domid, cap: 'lots' })).rejects.toMatchObject({ code: 'XENAPI_PLUGIN_FAILURE', params: ['set_vcpu_cap', 'ValueError', expect.stringContaining('cap')] });
    await expect(xa.call('host.call_plugin', await hostRefOf(xa, 'xen-b'), 'ferry', 'pause', { domid })).rejects.toMatchObject({ code: 'XENAPI_PLUGIN_FAILURE', params: ['pause', 'LookupError', expect.stringContaining(`no running domain ${domid}`)] });
    expect(await xa.call('VM.get_power_state', ref)).toBe('Running');
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
        params: ['VM', tasks[0]?.ref, 'migrate_send', tasks[0]?.task],
      });
    }
    // A retried activity finds the running migration of a VM in its current_operations.
    for (const t of tasks) expect((await xa.getRecord('VM', t.ref)).current_operations).toEqual({ [t.task]: 'migrate_send' });
    for (const t of tasks) await xa.call('task.cancel', t.task);
    for (const t of tasks) await expectCancelled(t.task, t.ref, t.uuid, 'xen-c');
  });
});
