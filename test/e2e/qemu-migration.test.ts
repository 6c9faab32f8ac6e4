// liveMigration through the real stack against QEMU hosts (issue 15): two QEMU hosts sharing one
// images directory (pool q1) and one simulated Xen host, real Temporal, real QEMU 7.2 under TCG.
// Small guests (64 MiB), two QEMU processes at a time. qa permits post-copy, qb does not; both
// send at 16 MiB/s, so a guest that dirties its 32 MiB as fast as TCG runs never converges by
// itself, and one that hardly dirties converges in a few seconds.
import { copyFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createQemuGuest, destroyQemuGuests, readQemuGuestSerial, type CreateQemuGuestOptions } from '../../activities/host/qemu/admin';
import { findHost } from '../../lib/config';
import { executeControlUpdate } from '../../lib/control-update';
import { startStack, type Stack } from '../../lib/stack';
import { disksIdentical } from '../../qemu/disk';
import { pidIfRunning } from '../../qemu/process';
import { abortUpdate, forceCompleteUpdate } from '../../workflows/definitions';
import { failureOf, inventoryWhen, listsInstance, startMigration, waitForStatus } from './helpers';

let stack: Stack;
const host = (name: string) => findHost(stack.config, name);
const guestDir = (hostName: string, uuid: string) => join(host(hostName).qemu?.stateDir ?? '', 'guests', uuid);

/** A guest that hardly dirties memory: pre-copy converges at 16 MiB/s. */
const CALM: Omit<CreateQemuGuestOptions, 'name'> = { regionMiB: 16, delayLoops: 3_000_000 };
/** A guest that dirties 32 MiB as fast as it runs: pre-copy alone never converges at 16 MiB/s. */
const BUSY: Omit<CreateQemuGuestOptions, 'name'> = { regionMiB: 32, delayLoops: 0 };

async function guestOn(hostName: string, name: string, opts: Omit<CreateQemuGuestOptions, 'name'>) {
  const guest = await createQemuGuest(host(hostName), stack.config.hosts, { name, ...opts });
  await inventoryWhen(stack, listsInstance(hostName, guest.uuid), 20_000);
  return guest;
}

/** Waits (bounded) until the guest's serial log on `hostName` shows more than `passes` passes. */
async function countsOn(hostName: string, uuid: string, passes: number, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const serial = await readQemuGuestSerial(host(hostName), uuid);
    if (serial.passes > passes) return serial;
    if (Date.now() > deadline) throw new Error(`guest ${uuid} on ${hostName} wrote ${serial.passes} passes, wanted more than ${passes}`);
    await sleep(200);
  }
}

beforeAll(async () => {
  stack = await startStack({
    hosts: [
      { name: 'qa', pool: 'q1', driver: 'qemu', qemu: { permitPostCopy: true, bandwidthMiBps: 16 } },
      { name: 'qb', pool: 'q1', driver: 'qemu', qemu: { permitPostCopy: false, bandwidthMiBps: 16 } },
      { name: 'xen-x', pool: 'x1' },
    ],
    encryption: false,
    inventory: { reportSeconds: 5, staleSeconds: 60 },
    // Long enough for the agent-restart case (the transfer's heartbeat timeout is 30 s); auto-converge's
    // vCPU caps are Xen's (QEMU throttles by itself): the tests choose what ends a transfer.
    migration: { completionTimeoutPerGiB: 4000, autoConverge: { enabled: false } },
  });
}, 180_000);

afterEach(async () => {
  for (const name of ['qa', 'qb']) await destroyQemuGuests(host(name));
});

afterAll(async () => {
  await stack?.stop();
});

describe('live migration between QEMU hosts', () => {
  it('moves a guest on shared storage: it keeps counting on the destination, and the source is gone', async () => {
    const guest = await guestOn('qa', 'shared-1', CALM);
    await countsOn('qa', guest.uuid, 0);
    const handle = await startMigration(stack, { instanceUuid: guest.uuid });
    const result = await handle.result();
    expect(result).toMatchObject({ status: 'completed', sourceHost: 'qa', destHost: 'qb' });
    expect(result.bytesSent).toBeGreaterThan(16 * 2 ** 20);
    // The destination carried on: no second boot ('A'), and its pass count grows there.
    const first = await countsOn('qb', guest.uuid, 0);
    expect(first.starts).toBe(0);
    expect(first.unexpected).toBe(0);
    await countsOn('qb', guest.uuid, first.passes);
    expect(existsSync(guestDir('qa', guest.uuid))).toBe(false);
    // Shared storage: the destination runs from the same image, which stays.
    expect(existsSync(guest.diskPath)).toBe(true);
    await inventoryWhen(stack, listsInstance('qb', guest.uuid), 10_000);
  }, 120_000);

  it('moves a guest with a local disk by block migration: the copy is identical and the source disk removed', async () => {
    const guest = await guestOn('qa', 'block-1', { ...CALM, localDisk: true });
    // The guest never writes its disk: a copy taken now is what the destination must end up with.
    const before = join(stack.workDir, `${guest.uuid}-before.qcow2`);
    await copyFile(guest.diskPath, before);
    const handle = await startMigration(stack, { instanceUuid: guest.uuid });
    expect(await handle.result()).toMatchObject({ status: 'completed', destHost: 'qb' });
    const spec = JSON.parse(await readFile(join(guestDir('qb', guest.uuid), 'guest.json'), 'utf8')) as { disks: Array<{ path: string }>; incoming: boolean };
    expect(spec.incoming).toBe(false);
    const received = spec.disks[0]?.path ?? '';
    expect(received).not.toBe(guest.diskPath);
    expect(await disksIdentical(before, received)).toBe(true);
    expect(existsSync(guest.diskPath)).toBe(false);
    expect((await countsOn('qb', guest.uuid, 0)).starts).toBe(0);
  }, 120_000);

  it('aborts during pre-copy: the source runs on, the destination QEMU is gone', async () => {
    const guest = await guestOn('qa', 'abort-1', BUSY);
    const handle = await startMigration(stack, { instanceUuid: guest.uuid });
    await waitForStatus(handle, (s) => s.phase === 'precopy' && (s.progress?.memoryProcessedBytes ?? 0) > 0, 60_000);
    await executeControlUpdate(handle, abortUpdate, 'test abort');
    expect((await handle.result()).status).toBe('cancelled');
    expect(existsSync(guestDir('qb', guest.uuid))).toBe(false);
    const serial = await readQemuGuestSerial(host('qa'), guest.uuid);
    await countsOn('qa', guest.uuid, serial.passes);
  }, 120_000);

  it('aborts during the disk mirror: the mirror is cancelled, the received disk removed, and a second block migration succeeds', async () => {
    // 48 MiB of data mirrored at the host's 16 MiB/s (libvirt gives the mirror the migration's bandwidth): about 3 s.
    const guest = await guestOn('qa', 'abort-mirror', { ...CALM, localDisk: true, diskMiB: 64, diskDataMiB: 48 });
    const before = join(stack.workDir, `${guest.uuid}-before.qcow2`);
    await copyFile(guest.diskPath, before);
    const first = await startMigration(stack, { instanceUuid: guest.uuid, host: 'qb' });
    const mirroring = await waitForStatus(first, (s) => s.phase === 'precopy' && (s.progress?.diskProcessedBytes ?? 0) > 0, 60_000);
    expect(mirroring.progress?.memoryProcessedBytes).toBe(0);
    await executeControlUpdate(first, abortUpdate, 'abort during the mirror');
    expect((await first.result()).status).toBe('cancelled');
    expect(existsSync(guestDir('qb', guest.uuid))).toBe(false);
    expect(existsSync(join(host('qb').qemu?.stateDir ?? '', 'disks', `${guest.uuid}-disk0.qcow2`))).toBe(false);
    const serial = await readQemuGuestSerial(host('qa'), guest.uuid);
    await countsOn('qa', guest.uuid, serial.passes);
    // No mirror job or NBD target was left on the source: a new block migration mirrors afresh and completes.
    const second = await startMigration(stack, { instanceUuid: guest.uuid, host: 'qb' });
    expect(await second.result()).toMatchObject({ status: 'completed', destHost: 'qb' });
    expect(await disksIdentical(before, join(host('qb').qemu?.stateDir ?? '', 'disks', `${guest.uuid}-disk0.qcow2`))).toBe(true);
  }, 180_000);

  it('force-completes by post-copy where permitted (qa) and by pausing where not (qb)', async () => {
    const guest = await guestOn('qa', 'force-1', BUSY);
    const there = await startMigration(stack, { instanceUuid: guest.uuid, host: 'qb' });
    await waitForStatus(there, (s) => s.phase === 'precopy' && (s.progress?.memoryProcessedBytes ?? 0) > 0, 60_000);
    await executeControlUpdate(there, forceCompleteUpdate);
    expect(await there.result()).toMatchObject({ status: 'completed', destHost: 'qb' });
    const onB = await countsOn('qb', guest.uuid, 0);
    expect(onB.starts).toBe(0);
    expect(await readFile(join(stack.workDir, 'logs', 'agent-qa.log'), 'utf8')).toContain('force-complete by post-copy');

    // Back from qb, which does not permit post-copy: the guest is paused, moved, and resumed on qa.
    const back = await startMigration(stack, { instanceUuid: guest.uuid, host: 'qa' });
    await waitForStatus(back, (s) => s.phase === 'precopy' && (s.progress?.memoryProcessedBytes ?? 0) > 0, 60_000);
    await executeControlUpdate(back, forceCompleteUpdate);
    const view = await waitForStatus(back, (s) => s.progress?.guestPaused === true || s.phase === 'done', 60_000);
    expect(view.progress?.guestPaused).toBe(true);
    expect(await back.result()).toMatchObject({ status: 'completed', destHost: 'qa' });
    const onA = await countsOn('qa', guest.uuid, 0);
    expect(onA.starts).toBe(0);
    await countsOn('qa', guest.uuid, onA.passes);
  }, 180_000);

  it("applies the policy's completion timeout to a guest that does not converge: abort, then force-complete", async () => {
    const guest = await guestOn('qa', 'timeout-1', BUSY);
    // 64 MiB of RAM on shared storage: 80 s per GiB is 5 s.
    const aborted = await startMigration(stack, { instanceUuid: guest.uuid, host: 'qb', options: { completionTimeoutPerGiB: 80, timeoutAction: 'abort' } });
    expect(await aborted.result()).toMatchObject({ status: 'cancelled', message: expect.stringContaining('completion timeout') as unknown });
    expect(existsSync(guestDir('qb', guest.uuid))).toBe(false);
    const serial = await readQemuGuestSerial(host('qa'), guest.uuid);
    await countsOn('qa', guest.uuid, serial.passes);
    const forced = await startMigration(stack, { instanceUuid: guest.uuid, host: 'qb', options: { completionTimeoutPerGiB: 80, timeoutAction: 'force_complete' } });
    expect(await forced.result()).toMatchObject({ status: 'completed', destHost: 'qb' });
    expect((await countsOn('qb', guest.uuid, 0)).starts).toBe(0);
  }, 120_000);

  // QEMU throttles the guest by itself; if it still does not converge, the policy's last step force-completes it
  // (here by pausing: qb does not permit post-copy). Either way it completes; the throttle shows as vcpuCap.
  it("turns on QEMU's auto-converge when the policy permits it: the guest is throttled, its throttle shows in the progress", async () => {
    const guest = await guestOn('qb', 'converge-1', BUSY);
    const handle = await startMigration(stack, { instanceUuid: guest.uuid, host: 'qa', options: { autoConverge: true } });
    const throttled = await waitForStatus(handle, (s) => s.progress?.vcpuCap !== undefined || s.phase === 'done', 90_000);
    expect(throttled.progress?.vcpuCap).toBeLessThan(100);
    expect(await handle.result()).toMatchObject({ status: 'completed', destHost: 'qa' });
    expect((await countsOn('qa', guest.uuid, 0)).starts).toBe(0);
  }, 120_000);

  it('survives the destination QEMU killed mid-way: the migration fails, the source keeps running', async () => {
    const guest = await guestOn('qa', 'kill-dest', BUSY);
    const handle = await startMigration(stack, { instanceUuid: guest.uuid, host: 'qb' });
    await waitForStatus(handle, (s) => s.phase === 'precopy' && (s.progress?.memoryProcessedBytes ?? 0) > 0, 60_000);
    const pid = await pidIfRunning(guestDir('qb', guest.uuid));
    expect(pid).not.toBeNull();
    process.kill(pid as number, 'SIGKILL');
    const failure = await failureOf(handle);
    expect(failure.message).toMatch(/failed/);
    expect(existsSync(guestDir('qb', guest.uuid))).toBe(false);
    const serial = await readQemuGuestSerial(host('qa'), guest.uuid);
    await countsOn('qa', guest.uuid, serial.passes);
  }, 120_000);

  it('follows the migration again after the source agent was killed, without restarting it', async () => {
    const guest = await guestOn('qa', 'kill-agent', BUSY);
    const sourcePid = await pidIfRunning(guest.stateDir);
    const handle = await startMigration(stack, { instanceUuid: guest.uuid, host: 'qb' });
    await waitForStatus(handle, (s) => s.phase === 'precopy' && (s.progress?.memoryProcessedBytes ?? 0) > 0, 60_000);
    await stack.killAgent('qa');
    await stack.startAgent('qa');
    // The transfer's heartbeat timeout (30 s) passes, the new agent's attempt finds the migration through QMP.
    await sleep(35_000);
    // The source QEMU outlived its agent (daemonized) and is the same process.
    expect(await pidIfRunning(guest.stateDir)).toBe(sourcePid);
    await executeControlUpdate(handle, forceCompleteUpdate);
    expect(await handle.result()).toMatchObject({ status: 'completed', destHost: 'qb' });
    // The same source QEMU sent it (it was followed, not started again), and the guest never rebooted.
    const log = await readFile(join(stack.workDir, 'logs', 'agent-qa.log'), 'utf8');
    expect(log).toContain('found the migration under way');
    expect((await countsOn('qb', guest.uuid, 0)).starts).toBe(0);
  }, 180_000);
});

describe('mixed clusters', () => {
  it('never sends a QEMU guest to a Xen host: InvalidHypervisorType naming both', async () => {
    const guest = await guestOn('qa', 'mixed-1', CALM);
    const handle = await startMigration(stack, { instanceUuid: guest.uuid, host: 'xen-x' });
    const failure = await failureOf(handle);
    expect(failure.type).toBe('InvalidHypervisorType');
    expect(failure.message).toContain('The supplied hypervisor type of is invalid.');
    expect(failure.message).toMatch(/QEMU/);
    expect(failure.message).toMatch(/xen/);
    expect(existsSync(guestDir('qa', guest.uuid))).toBe(true);
  }, 60_000);

  it('never sends a Xen VM to a QEMU host either', async () => {
    const vm = await stack.sims.host('xen-x').admin.createVm({ nameLabel: 'xen-vm-1', memoryMiB: 64, vcpus: 1, diskMiB: [16], sr: 'local' });
    await inventoryWhen(stack, listsInstance('xen-x', vm.uuid), 20_000);
    const failure = await failureOf(await startMigration(stack, { instanceUuid: vm.uuid, host: 'qa' }));
    expect(failure).toMatchObject({ type: 'InvalidHypervisorType', message: expect.stringContaining('xen-x runs xen, qa runs QEMU') as unknown });
  }, 60_000);
});
