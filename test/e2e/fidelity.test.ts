// A live migration on xapi's terms, through the real stack: one database per pool (a VM keeps its
// ref when it moves inside the pool), agents logged in to the pool master, progress from
// task.progress only, and a compensation that never destroys or shuts down the copy that runs,
// including when the end of the handshake breaks (xenopsd's order: the destination resumes the VM
// only after the source gave its domain up).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeControlUpdate } from '../../lib/control-update';
import { startStack, type Stack } from '../../lib/stack';
import { abortUpdate, forceCompleteUpdate } from '../../workflows/definitions';
import { XenApiClient } from '../../xenapi/client';
import { failureOf, leftovers, placements, recordHistory, startMigration, status, waitForSlots, waitForStatus } from './helpers';

let stack: Stack;
let xen: XenApiClient;

beforeAll(async () => {
  stack = await startStack({
    bandwidthMiBps: 512,
    migration: { autoConverge: { enabled: false, stepSeconds: 1, capSteps: [50, 10] } },
  });
  // Through a member's address on purpose: the client follows HOST_IS_SLAVE to the master.
  xen = new XenApiClient({ url: stack.sims.host('xen-b').xenapiUrl, user: 'root', password: stack.password });
  await xen.login();
});

afterAll(async () => {
  await xen?.logout();
  await stack?.stop();
});

const admin = (host: string) => stack.sims.host(host).admin;
const hostRef = async (host: string) => (await admin(host).health()).hostRef;

async function withSlowLink(host: string, body: () => Promise<void>): Promise<void> {
  await admin(host).setBandwidth(16);
  await admin(host).setMaxIterations(0);
  try {
    await body();
  } finally {
    await admin(host).setBandwidth(512);
    await admin(host).setMaxIterations(5);
  }
}

/** The VM is the same pool object as before (same ref), running on `host`. */
async function expectRunsWithRef(uuid: string, ref: string, host: string): Promise<void> {
  expect(await xen.getByUuid('VM', uuid)).toBe(ref);
  const record = await xen.getRecord('VM', ref);
  expect(record.resident_on).toBe(await hostRef(host));
  expect(record.power_state).toBe('Running');
  expect(record.current_operations).toEqual({});
}

describe('same pool: the one record of the VM is never destroyed', () => {
  it('an abort during pre-copy: the VM runs on the source with its ref', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'fid-abort', memoryMiB: 32, sr: 'shared', dirtyRateMiBps: 32 });
    expect(xen.url).toBe(stack.sims.host('xen-a').xenapiUrl); // logged in to the master
    await withSlowLink('xen-a', async () => {
      const handle = await startMigration(stack, { instanceUuid: vm.uuid, host: 'xen-b' });
      await waitForStatus(handle, (s) => s.phase === 'precopy' && (s.progress?.fraction ?? 0) > 0);
      // While it migrates xapi shows the task in the VM's current_operations.
      expect(Object.values((await xen.getRecord('VM', vm.ref)).current_operations)).toEqual(['pool_migrate']);
      await executeControlUpdate(handle, abortUpdate, 'changed plans');
      expect((await handle.result()).status).toBe('cancelled');
    });
    await expectRunsWithRef(vm.uuid, vm.ref, 'xen-a');
    expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-a', powerState: 'Running' }]);
    expect(await leftovers(stack)).toEqual([]);
  });

  it('a completion timeout: the VM runs on the source with its ref', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'fid-timeout', memoryMiB: 32, sr: 'shared', dirtyRateMiBps: 48 });
    await withSlowLink('xen-a', async () => {
      // 64 s per GiB of a 1/32 GiB VM: 2 s.
      const handle = await startMigration(stack, { instanceUuid: vm.uuid, host: 'xen-b', options: { completionTimeoutPerGiB: 64, timeoutAction: 'abort' } });
      expect((await handle.result()).status).toBe('cancelled');
      expect((await status(handle)).error?.message).toMatch(/completion timeout/);
    });
    await expectRunsWithRef(vm.uuid, vm.ref, 'xen-a');
    expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-a', powerState: 'Running' }]);
  });

  it('preLiveMigration failing on the destination: the VM runs on the source with its ref', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'fid-pre', memoryMiB: 16, sr: 'shared' });
    // Every agent of pool-1 talks to the master's XenAPI: the fault sits there.
    await admin('xen-a').failNext('PIF.get_all_records_where', 'INTERNAL_ERROR', ['injected in pre_live_migration']);
    const handle = await startMigration(stack, { instanceUuid: vm.uuid, host: 'xen-b', force: true });
    const failure = await failureOf(handle);
    expect(failure.message).toContain('injected in pre_live_migration');
    expect((await status(handle)).status).toBe('failed');
    await expectRunsWithRef(vm.uuid, vm.ref, 'xen-a');
    expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-a', powerState: 'Running' }]);
  });

  it('the last reply of the handshake lost: the VM runs on the destination, completed, same ref', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'fid-lost-1', memoryMiB: 16, sr: 'shared' });
    await admin('xen-a').failAtHandoff('after-resume', 'drop-connection');
    const handle = await startMigration(stack, { instanceUuid: vm.uuid, host: 'xen-b' });
    expect((await handle.result()).status).toBe('completed');
    await expectRunsWithRef(vm.uuid, vm.ref, 'xen-b');
    expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-b', powerState: 'Running' }]);
  });
});

describe('across pools', () => {
  it('an abort rolls back: the VM keeps running on the source with its ref, nothing in the other pool', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'fid-x-abort', memoryMiB: 32, sr: 'local', diskMiB: [4], dirtyRateMiBps: 32 });
    await withSlowLink('xen-a', async () => {
      const handle = await startMigration(stack, { instanceUuid: vm.uuid, host: 'xen-c' });
      await waitForStatus(handle, (s) => s.phase === 'precopy' && (s.progress?.fraction ?? 0) > 0);
      await executeControlUpdate(handle, abortUpdate, 'not today');
      expect((await handle.result()).status).toBe('cancelled');
    });
    await expectRunsWithRef(vm.uuid, vm.ref, 'xen-a');
    expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-a', powerState: 'Running' }]);
    expect(await leftovers(stack)).toEqual([]);
  });

  it('the last reply of the handshake lost: the VM runs in the other pool, completed, no halted copy left', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'fid-lost-2', memoryMiB: 16, sr: 'local', diskMiB: [4] });
    const disks = (await admin('xen-a').checksums(vm.uuid))?.disks;
    await admin('xen-a').failAtHandoff('after-resume', 'drop-connection');
    const handle = await startMigration(stack, { instanceUuid: vm.uuid, host: 'xen-c' });
    expect((await handle.result()).status).toBe('completed');
    expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-c', powerState: 'Running' }]);
    expect((await admin('xen-c').checksums(vm.uuid))?.disks).toEqual(disks);
    await recordHistory(stack, handle, 'completed-after-lost-handoff-reply');
  });

  it('the source host crashing after the destination resumed: the VM runs on the destination, never destroyed', async () => {
    const vm = await admin('xen-c').createVm({ nameLabel: 'fid-src-crash', memoryMiB: 16, sr: 'local', diskMiB: [4] });
    await admin('xen-c').failAtHandoff('after-resume', 'crash-source');
    const handle = await startMigration(stack, { instanceUuid: vm.uuid, host: 'xen-a' });
    // The destination resumed the VM; the source's pool (xen-c alone) is down until it restarts.
    const deadline = Date.now() + 60_000;
    while (!(await placements(stack, vm.uuid)).some((p) => p.host === 'xen-a' && p.powerState === 'Running')) {
      if (Date.now() > deadline) throw new Error('the VM never resumed on xen-a');
      await new Promise((r) => setTimeout(r, 200));
    }
    await stack.sims.restart('xen-c');
    const result = await handle.result();
    // The source copy was halted by the crash: the destination said the VM runs there, so it went forward.
    expect(result.status).toBe('completed');
    expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-a', powerState: 'Running' }]);
    await recordHistory(stack, handle, 'completed-after-source-crash-past-resume');
    expect((await waitForSlots(stack, (s) => s.holders.length === 0)).holders).toEqual([]);
  });
});

describe('steering through the dom0 plugin', () => {
  it('force-complete pauses the domain with the plugin (VM.pause is refused while it migrates); the VM runs on', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'fid-force', memoryMiB: 32, sr: 'shared', dirtyRateMiBps: 48 });
    await withSlowLink('xen-a', async () => {
      const handle = await startMigration(stack, { instanceUuid: vm.uuid, host: 'xen-b', options: { autoConverge: false } });
      await waitForStatus(handle, (s) => s.phase === 'precopy' && (s.progress?.fraction ?? 0) > 0);
      await expect(xen.call('VM.pause', vm.ref)).rejects.toThrow(/OTHER_OPERATION_IN_PROGRESS/);
      await executeControlUpdate(handle, forceCompleteUpdate);
      expect((await handle.result()).status).toBe('completed');
      expect((await status(handle)).progress?.guestPaused).toBe(true);
    });
    await expectRunsWithRef(vm.uuid, vm.ref, 'xen-b');
    // A fresh domain on the destination: not paused.
    const record = await xen.getRecord('VM', vm.ref);
    const domain = JSON.parse(await xen.callPlugin(record.resident_on, 'ferry', 'get_domain', { domid: record.domid })) as { paused: boolean };
    expect(domain.paused).toBe(false);
  });
});
