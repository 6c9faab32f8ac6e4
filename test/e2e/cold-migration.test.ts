// The coldMigration workflow through the real stack: dev server, simulated hosts (disks as files
// with a parent chain, the dom0 plugin `migration` moving them with real rsync over sshd),
// conductor and one agent per host, each a real process. Resize up with disk growth, cold
// migration to a requested host, confirm, revert, the auto-confirm across a conductor restart, a
// kill -9 of the source agent during the base transfer and a destination crash before
// finishMigration.
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runningMigrations } from '../../activities/conductor/slots';
import { startStack, type Stack } from '../../lib/stack';
import { InstanceUuid } from '../../lib/search-attributes';
import { XenApiClient } from '../../xenapi/client';
import {
  COLD_MIGRATION_WORKFLOW,
  coldMigrationStatusQuery,
  coldMigrationWorkflowId,
  confirmResizeUpdate,
  revertResizeUpdate,
  type ColdMigrationInput,
  type ColdMigrationView,
  type Flavor,
} from '../../workflows/cold-migration-definitions';
import type { ColdMigrationOutcome } from '../../workflows/cold-migration-task';
import { failureOf, placements, recordHistory, startMigration } from './helpers';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const HOST_TIMEOUT_S = 15;
const GROW: Flavor = { id: 'g1', name: 'grow', vcpus: 2, ram: 64, disk: 1 };

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ bandwidthMiBps: 256, migration: { hostTimeout: HOST_TIMEOUT_S } });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

const admin = (host: string) => stack.sims.host(host).admin;

function start(input: ColdMigrationInput): Promise<WorkflowHandle> {
  return stack.client.workflow.start(COLD_MIGRATION_WORKFLOW, {
    taskQueue: stack.config.taskQueues.conductor,
    workflowId: coldMigrationWorkflowId(input.instanceUuid),
    args: [input],
    typedSearchAttributes: [{ key: InstanceUuid, value: input.instanceUuid }],
  });
}

async function waitForView(handle: WorkflowHandle, predicate: (v: ColdMigrationView) => boolean, timeoutMs = 90_000): Promise<ColdMigrationView> {
  const deadline = Date.now() + timeoutMs;
  let last: ColdMigrationView | undefined;
  for (;;) {
    last = await handle.query(coldMigrationStatusQuery).catch(() => last);
    if (last && predicate(last)) return last;
    if (last?.status === 'error' && !predicate(last)) throw new Error(`the migration failed: ${last.error?.message}`);
    if (Date.now() > deadline) throw new Error(`the migration did not reach the expected state; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const finished = (v: ColdMigrationView) => v.status === 'finished';

/** The uuid of a VM's root disk (userdevice 0), as the host's pool database has it. */
async function rootVdi(host: string, vmUuid: string): Promise<string> {
  const { records } = await admin(host).state();
  const vmRef = Object.entries(records.VM).find(([, r]) => r.uuid === vmUuid)?.[0];
  const vbd = Object.values(records.VBD).find((r) => r.VM === vmRef && r.userdevice === '0');
  const vdi = vbd ? records.VDI[String(vbd.VDI)] : undefined;
  if (!vdi) throw new Error(`no root disk of ${vmUuid} on ${host}`);
  return String(vdi.uuid);
}

/** A VM's record and the names of the networks of its VIFs, through XenAPI. */
async function described(host: string, uuid: string): Promise<{ record: Record<string, unknown>; networks: string[] }> {
  const xen = new XenApiClient({ url: stack.sims.host(host).xenapiUrl, user: 'root', password: stack.password });
  try {
    const ref = await xen.getByUuid('VM', uuid);
    const record = await xen.getRecord('VM', ref);
    const networks: string[] = [];
    for (const vif of record.VIFs) networks.push((await xen.getRecord('network', (await xen.getRecord('VIF', vif)).network)).name_label);
    return { record, networks: networks.sort() };
  } finally {
    await xen.logout();
  }
}

async function vmOn(host: string, uuid: string): Promise<{ powerState: string } | null> {
  const vms = await admin(host).listVms();
  const vm = vms.find((v) => v.uuid === uuid);
  return vm ? { powerState: vm.powerState } : null;
}

describe('coldMigration through the real stack', () => {
  it('resizes up with disk growth: content identical up to the old size, the new size visible; confirm destroys the source', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'grow-1', memoryMiB: 32, diskMiB: [16], sr: 'local', diskWriteMiBps: 2 });
    const handle = await start({ instanceUuid: vm.uuid, flavor: GROW, host: 'xen-c' });
    const view = await waitForView(handle, finished);
    expect(view).toMatchObject({ migrationType: 'resize', sourceHost: 'xen-a', destHost: 'xen-c', step: 'verifyResize' });
    expect(view.oldSize).toEqual({ vcpus: 1, ramMiB: 32, diskBytes: 16 * MiB });
    expect(view.newSize).toEqual({ vcpus: 2, ramMiB: 64, diskBytes: GiB });
    expect(view.downtimeMs).toBeGreaterThan(0);
    const dest = view.destInstanceUuid as string;
    expect(await vmOn('xen-c', dest)).toEqual({ powerState: 'Running' });
    // The source VM is halted and untouched until the confirm: its disk is the reference.
    expect(await vmOn('xen-a', vm.uuid)).toEqual({ powerState: 'Halted' });
    const before = await admin('xen-a').vdiChecksum(await rootVdi('xen-a', vm.uuid), 16 * MiB);
    const after = await admin('xen-c').vdiChecksum(await rootVdi('xen-c', dest), 16 * MiB);
    expect(after?.sha256).toBe(before?.sha256);
    expect(after?.virtualSize).toBe(GiB);
    // The flavor's memory and vCPUs, and its VIFs on the networks of the same name (another pool: other refs).
    const destVm = await described('xen-c', dest);
    expect(destVm.record).toMatchObject({ VCPUs_max: '2', VCPUs_at_startup: '2', memory_static_max: String(64 * MiB) });
    expect(destVm.networks).toEqual((await described('xen-a', vm.uuid)).networks);
    expect(destVm.networks.length).toBeGreaterThan(0);

    await handle.executeUpdate(confirmResizeUpdate);
    const again = await handle.executeUpdate(confirmResizeUpdate); // idempotent
    expect(['confirming', 'confirmed']).toContain(again.status);
    const outcome = (await handle.result()) as ColdMigrationOutcome;
    expect(outcome.status).toBe('confirmed');
    expect(await vmOn('xen-a', vm.uuid)).toBeNull();
    // Neither the old VM's disks nor the snapshot are left on the source.
    const { records } = await admin('xen-a').state();
    expect(Object.values(records.VM).filter((r) => String(r.name_label).startsWith('ferry-resize-'))).toEqual([]);
    const refused = await handle.executeUpdate(revertResizeUpdate).catch((e: unknown) => e as Error);
    expect(refused).toBeInstanceOf(Error);
    await recordHistory(stack, handle, 'resize-confirmed', 'cold-migration');
  }, 180_000);

  it('a cold migration to a requested host, reverted: the copy goes, the source runs again with its old size', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'cold-1', memoryMiB: 32, diskMiB: [8], sr: 'local' });
    const handle = await start({ instanceUuid: vm.uuid, flavor: null, host: 'xen-b' });
    const view = await waitForView(handle, finished);
    expect(view).toMatchObject({ migrationType: 'migration', destHost: 'xen-b', newSize: view.oldSize });
    const dest = view.destInstanceUuid as string;
    // Waiting for confirm or revert (VERIFY_RESIZE), the instance cannot be live-migrated.
    const live = await startMigration(stack, { instanceUuid: vm.uuid, host: 'xen-c' });
    const refusal = await failureOf(live);
    expect(refusal.type).toBe('InstanceInvalidState');
    expect(refusal.message).toContain(`being resized or cold-migrated (workflow ${coldMigrationWorkflowId(vm.uuid)})`);
    const answer = await handle.executeUpdate(revertResizeUpdate);
    expect(answer.status).toBe('reverting');
    const outcome = (await handle.result()) as ColdMigrationOutcome;
    expect(outcome.status).toBe('reverted');
    expect(await vmOn('xen-b', dest)).toBeNull();
    expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-a', powerState: 'Running' }]);
    const confirm = await handle.executeUpdate(confirmResizeUpdate).catch((e: unknown) => e as Error);
    expect(confirm).toBeInstanceOf(Error);
    await recordHistory(stack, handle, 'migrate-reverted', 'cold-migration');
  }, 180_000);

  it('a halted VM moves halted to a host the scheduler chooses: no shutdown, no downtime, and it stays halted there', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'halted-1', memoryMiB: 32, diskMiB: [8], sr: 'local' });
    const xen = new XenApiClient({ url: stack.sims.host('xen-a').xenapiUrl, user: 'root', password: stack.password });
    await xen.call('VM.hard_shutdown', vm.ref);
    await xen.logout();
    const handle = await start({ instanceUuid: vm.uuid, flavor: null });
    const view = await waitForView(handle, finished);
    expect(view.downtimeMs).toBeNull();
    expect(['xen-b', 'xen-c']).toContain(view.destHost);
    expect(await vmOn(view.destHost as string, view.destInstanceUuid as string)).toEqual({ powerState: 'Halted' });
    await handle.executeUpdate(confirmResizeUpdate);
    expect(((await handle.result()) as ColdMigrationOutcome).status).toBe('confirmed');
    expect(await vmOn('xen-a', vm.uuid)).toBeNull();
  }, 180_000);

  it('a paused instance is refused with InstanceInvalidState, and nothing is touched', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'paused-1', memoryMiB: 32, diskMiB: [8], sr: 'local' });
    const xen = new XenApiClient({ url: stack.sims.host('xen-a').xenapiUrl, user: 'root', password: stack.password });
    await xen.call('VM.pause', vm.ref);
    try {
      const failure = await failureOf(await start({ instanceUuid: vm.uuid, flavor: GROW }));
      expect(failure.type).toBe('InstanceInvalidState');
      expect(failure.message).toContain('paused');
      const { records } = await admin('xen-a').state();
      expect(Object.values(records.VM).filter((r) => String(r.name_label).startsWith('ferry-resize-'))).toEqual([]);
    } finally {
      await xen.call('VM.unpause', vm.ref);
      await xen.logout();
    }
  }, 180_000);

  it('a guest that ignores the clean shutdown is shut down hard after cleanShutdownTimeoutSeconds', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'stubborn-1', memoryMiB: 32, diskMiB: [8], sr: 'local' });
    await admin('xen-a').setGuest(vm.uuid, { ignoreCleanShutdown: true });
    const handle = await start({ instanceUuid: vm.uuid, flavor: null, host: 'xen-b', cleanShutdownTimeoutSeconds: 2 });
    const view = await waitForView(handle, finished);
    // The downtime includes the two seconds the guest was given.
    expect(view.downtimeMs).toBeGreaterThanOrEqual(2_000);
    expect(await vmOn('xen-b', view.destInstanceUuid as string)).toEqual({ powerState: 'Running' });
    await handle.executeUpdate(revertResizeUpdate);
    expect(((await handle.result()) as ColdMigrationOutcome).status).toBe('reverted');
  }, 180_000);

  it('confirms by itself after the window, across a conductor restart', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'auto-1', memoryMiB: 32, diskMiB: [8], sr: 'local' });
    const handle = await start({ instanceUuid: vm.uuid, flavor: null, host: 'xen-c', autoConfirmSeconds: 8 });
    const view = await waitForView(handle, finished);
    expect(view.autoConfirmAt).not.toBeNull();
    // A fresh slots entity asks running cold migrations to re-assert their leases too.
    for (let i = 0; i < 50 && !(await runningMigrations(stack.client)).includes(handle.workflowId); i++) await new Promise((r) => setTimeout(r, 200));
    expect(await runningMigrations(stack.client)).toContain(handle.workflowId);
    await stack.killConductor('SIGKILL');
    await new Promise((r) => setTimeout(r, 10_000)); // the window ends while no conductor runs
    await stack.startConductor();
    const outcome = (await handle.result()) as ColdMigrationOutcome;
    expect(outcome.status).toBe('confirmed');
    expect(await vmOn('xen-a', vm.uuid)).toBeNull();
    await recordHistory(stack, handle, 'auto-confirmed', 'cold-migration');
  }, 180_000);

  it('kill -9 of the source agent during the base transfer: the transfer is followed, not started over', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'kill-1', memoryMiB: 32, diskMiB: [48], sr: 'local' });
    await admin('xen-a').setBandwidth(8); // about 6 s for the base
    try {
      const handle = await start({ instanceUuid: vm.uuid, flavor: null, host: 'xen-c' });
      await waitForView(handle, (v) => v.step === 'transferBase');
      for (let i = 0; i < 100 && (await admin('xen-a').transfers()).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      await stack.killAgent('xen-a', 'SIGKILL');
      await new Promise((r) => setTimeout(r, 1_000));
      await stack.startAgent('xen-a');
      await waitForView(handle, finished, 120_000);
      await handle.executeUpdate(confirmResizeUpdate);
      const outcome = (await handle.result()) as ColdMigrationOutcome;
      expect(outcome.status).toBe('confirmed');
      const base = outcome.transfers.find((t) => t.seqNum === 1);
      expect(base?.followed).toBe(true);
      // One rsync carried the base: about one disk crossed, not two.
      const literal = Number(base?.plugin.literal_bytes ?? 0);
      expect(literal).toBeGreaterThan(40 * MiB);
      expect(literal).toBeLessThan(56 * MiB);
    } finally {
      await admin('xen-a').setBandwidth(256);
    }
  }, 240_000);

  it('a destination that crashes before finishMigration: rolled back, the source running', async () => {
    const vm = await admin('xen-a').createVm({ nameLabel: 'crash-1', memoryMiB: 32, diskMiB: [8], sr: 'local' });
    const handle = await start({ instanceUuid: vm.uuid, flavor: null, host: 'xen-c' });
    await waitForView(handle, (v) => v.step === 'shutdown' || v.step === 'transferLeaf' || v.step === 'transferBase');
    await admin('xen-c').crash();
    try {
      const failure = await failureOf(handle);
      expect(failure.message).toMatch(/xen-c/);
      const view = await handle.query(coldMigrationStatusQuery);
      expect(view.status).toBe('error');
      expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-a', powerState: 'Running' }]);
      const { records } = await admin('xen-a').state();
      expect(Object.values(records.VM).filter((r) => String(r.name_label).startsWith('ferry-resize-'))).toEqual([]);
      // What xen-c must still undo waits for it in a coldMigrationCleanup, which ends once it is back.
      expect(view.cleanups?.map((c) => ({ host: c.host, steps: c.steps }))).toEqual([{ host: 'xen-c', steps: ['revertMigrationAtDestination'] }]);
      await admin('xen-c').restart();
      const cleanup = stack.client.workflow.getHandle((view.cleanups?.[0] as { workflowId: string }).workflowId);
      expect(await cleanup.result()).toEqual({ done: ['revertMigrationAtDestination'] });
      await recordHistory(stack, handle, 'rolled-back-destination-crash', 'cold-migration');
    } finally {
      if ((await admin('xen-c').health()).crashed) await admin('xen-c').restart();
    }
  }, 240_000);
});
