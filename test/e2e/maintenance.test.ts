// hostMaintenance through the real stack: dev server, simulators, conductor, one agent per host.
// One stack for the file: each test drains xen-a and leaves it enabled again.
import type { WorkflowHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../lib/stack';
import {
  HOST_MAINTENANCE_WORKFLOW,
  cancelMaintenanceUpdate,
  pauseMaintenanceUpdate,
  resumeMaintenanceUpdate,
  hostMaintenanceWorkflowId,
  leaveMaintenanceUpdate,
  maintenanceStatusQuery,
  type HostMaintenanceInput,
  type MaintenanceView,
} from '../../workflows/definitions';
import { XenApiClient } from '../../xenapi/client';
import { inventoryWhen, leftovers, placements, recordHistory, slots } from './helpers';

const MiB = 2 ** 20;
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    hosts: [
      { name: 'xen-a', pool: 'pool-1', memoryMiB: 4096 },
      { name: 'xen-b', pool: 'pool-1', memoryMiB: 640 },
      { name: 'xen-c', pool: 'pool-2', memoryMiB: 640 },
    ],
    bandwidthMiBps: 256,
    migration: { limits: { outboundPerHost: 2, inboundPerHost: 1, cluster: 3 } },
  });
});

afterAll(async () => {
  await stack?.stop();
});

const admin = (host: string) => stack.sims.host(host).admin;

function startMaintenance(input: HostMaintenanceInput): Promise<WorkflowHandleWithFirstExecutionRunId> {
  return stack.client.workflow.start(HOST_MAINTENANCE_WORKFLOW, {
    taskQueue: stack.config.taskQueues.conductor,
    workflowId: hostMaintenanceWorkflowId(input.host),
    args: [input],
  });
}

const view = (handle: WorkflowHandle) => handle.query(maintenanceStatusQuery);

async function viewWhen(handle: WorkflowHandle, predicate: (v: MaintenanceView) => boolean, ms = 120_000): Promise<MaintenanceView> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await view(handle);
    if (predicate(v)) return v;
    if (Date.now() > deadline) throw new Error(`maintenance never reached the expected state: ${JSON.stringify({ status: v.status, counts: v.counts })}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Samples the slots entity while `until` runs: the highest number of leases seen per source and in all. */
async function watchLimits<T>(until: Promise<T>): Promise<{ result: T; maxOut: Record<string, number>; maxIn: Record<string, number>; maxAll: number }> {
  const maxOut: Record<string, number> = {};
  const maxIn: Record<string, number> = {};
  let maxAll = 0;
  let done = false;
  const sampler = (async () => {
    while (!done) {
      const s = await slots(stack).catch(() => null);
      if (s) {
        maxAll = Math.max(maxAll, s.holders.length);
        const out: Record<string, number> = {};
        const inn: Record<string, number> = {};
        for (const h of s.holders) {
          out[h.sourceHost] = (out[h.sourceHost] ?? 0) + 1;
          if (h.destHost) inn[h.destHost] = (inn[h.destHost] ?? 0) + 1;
        }
        for (const [k, n] of Object.entries(out)) maxOut[k] = Math.max(maxOut[k] ?? 0, n);
        for (const [k, n] of Object.entries(inn)) maxIn[k] = Math.max(maxIn[k] ?? 0, n);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    const result = await until;
    return { result, maxOut, maxIn, maxAll };
  } finally {
    done = true;
    await sampler;
  }
}

/** The workflow's reason for refusing an update (WorkflowUpdateFailedError's cause). */
async function refusal(update: Promise<unknown>): Promise<string> {
  try {
    await update;
  } catch (err) {
    return ((err as { cause?: Error }).cause ?? (err as Error)).message;
  }
  throw new Error('the update was accepted');
}

async function createMixed(prefix: string, sizes: number[]) {
  const vms: { uuid: string; memory: string | null; size: number }[] = [];
  for (const [i, size] of sizes.entries()) {
    const vm = await admin('xen-a').createVm({ nameLabel: `${prefix}-${i}-${size}`, memoryMiB: size, sr: i % 2 ? 'local' : 'shared', diskMiB: [4] });
    vms.push({ uuid: vm.uuid, memory: (await admin('xen-a').checksums(vm.uuid))?.memory ?? null, size });
  }
  await inventoryWhen(stack, (inv) => vms.every((vm) => inv.hosts.some((h) => h.name === 'xen-a' && h.instances.some((i) => i.uuid === vm.uuid))));
  return vms;
}

/** other_config:MAINTENANCE_MODE of the host, from its XenAPI. */
async function maintenanceMode(name: string, key = 'MAINTENANCE_MODE'): Promise<string | undefined> {
  const xen = new XenApiClient({ url: stack.sims.host(name).xenapiUrl, user: 'root', password: stack.password });
  const address = new URL(stack.sims.host(name).xenapiUrl).hostname;
  const [ref] = Object.keys(await xen.getAllRecordsWhere('host', `field "address" = "${address}"`));
  const other = await xen.call<Record<string, string>>('host.get_other_config', ref);
  return other[key];
}

/** Whether the host is enabled, as xapi says (host.enabled). */
async function hostEnabled(name: string): Promise<boolean> {
  const xen = new XenApiClient({ url: stack.sims.host(name).xenapiUrl, user: 'root', password: stack.password });
  const address = new URL(stack.sims.host(name).xenapiUrl).hostname;
  const hosts = await xen.getAllRecordsWhere('host', `field "address" = "${address}"`);
  return Object.values(hosts)[0]?.enabled ?? false;
}

describe('drain', () => {
  it('drains a host of 6 VMs of mixed sizes under the limits, memory identical, then leaves with every VM brought back', async () => {
    const vms = await createMixed('mixed', [16, 96, 32, 128, 48, 64]);
    const handle = await startMaintenance({ host: 'xen-a' });
    const { result: drained, maxOut, maxIn, maxAll } = await watchLimits(viewWhen(handle, (v) => v.status === 'drained' || v.status === 'partial'));
    expect(drained.status, JSON.stringify(drained.vms.map((v) => [v.name, v.state, v.reason]))).toBe('drained');
    expect(drained.counts).toMatchObject({ total: 6, moved: 6, failed: 0, waiting: 0, migrating: 0 });
    expect(drained.bytesMoved).toBeGreaterThanOrEqual(vms.reduce((s, vm) => s + vm.size * MiB, 0));
    expect(drained.bytesLeft).toBe(0);
    // The limits: 2 outbound from xen-a, 1 inbound per host, 3 in all.
    expect(maxOut['xen-a'] ?? 0).toBeLessThanOrEqual(2);
    for (const n of Object.values(maxIn)) expect(n).toBeLessThanOrEqual(1);
    expect(maxAll).toBeLessThanOrEqual(3);
    for (const vm of vms) {
      const [where] = await placements(stack, vm.uuid);
      expect(where?.host).not.toBe('xen-a');
      expect(where?.powerState).toBe('Running');
      expect((await admin(where?.host as string).checksums(vm.uuid))?.memory).toBe(vm.memory);
    }
    // Disabled, and marked as XenCenter marks a host in maintenance.
    expect(await hostEnabled('xen-a')).toBe(false);
    expect(await maintenanceMode('xen-a')).toBe('true');
    // The reason os-services shows (GET /v2.1/os-services: disabled_reason).
    expect(await maintenanceMode('xen-a', 'ferry_disabled_reason')).toBe('maintenance (workflow host-maintenance-xen-a)');
    await inventoryWhen(stack, (inv) => inv.hosts.find((h) => h.name === 'xen-a')?.enabled === false);

    await handle.executeUpdate(leaveMaintenanceUpdate, { args: [{ bringBack: true }] });
    const left = (await handle.result()) as MaintenanceView;
    expect(left.status).toBe('left');
    expect(left.counts.returned).toBe(6);
    await recordHistory(stack, handle, 'drained-brought-back', 'maintenance');
    for (const vm of vms) {
      expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-a', powerState: 'Running' }]);
      expect((await admin('xen-a').checksums(vm.uuid))?.memory).toBe(vm.memory);
    }
    expect(await hostEnabled('xen-a')).toBe(true);
    expect(await maintenanceMode('xen-a')).toBeUndefined();
    expect(await maintenanceMode('xen-a', 'ferry_disabled_reason')).toBeUndefined();
    expect(await leftovers(stack)).toEqual([]);
    // Found by host and status in visibility (the dev server's visibility may lag a moment).
    for (;;) {
      const found: string[] = [];
      for await (const w of stack.client.workflow.list({ query: `MaintenanceHost = 'xen-a' AND MaintenanceStatus = 'left'` })) found.push(w.workflowId);
      if (found.includes('host-maintenance-xen-a')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  });
});

describe('a drain that meets trouble', () => {
  it('survives kill -9 of the conductor mid-way, reports the VM that cannot move (no host with room) and moves the rest', async () => {
    // The 6 VMs brought back by the first test are on xen-a again; 3 more, and one no other host can take.
    const vms = [...(await createMixed('more', [64, 64, 64]))];
    const big = await admin('xen-a').createVm({ nameLabel: 'too-big', memoryMiB: 800 });
    await inventoryWhen(stack, (inv) => inv.hosts.some((h) => h.name === 'xen-a' && h.instances.some((i) => i.uuid === big.uuid)));
    const handle = await startMaintenance({ host: 'xen-a' });
    await viewWhen(handle, (v) => v.counts.moved >= 2);
    await stack.killConductor();
    await stack.startConductor();
    const ended = await viewWhen(handle, (v) => v.status === 'drained' || v.status === 'partial', 180_000);
    expect(ended.status).toBe('partial');
    const stuck = ended.vms.filter((v) => v.state !== 'moved');
    expect(stuck.map((v) => v.uuid)).toEqual([big.uuid]);
    expect(stuck[0]?.reason?.type).toBe('NoValidHost');
    expect(ended.reason).toContain('too-big');
    expect(ended.counts).toMatchObject({ total: 10, moved: 9, failed: 1 });
    for (const vm of vms) {
      const [where] = await placements(stack, vm.uuid);
      expect(where?.host).not.toBe('xen-a');
      expect((await admin(where?.host as string).checksums(vm.uuid))?.memory).toBe(vm.memory);
    }
    expect(await placements(stack, big.uuid)).toEqual([{ host: 'xen-a', powerState: 'Running' }]);
    // Leave without bringing them back: enabled, the moved VMs stay where they are.
    await handle.executeUpdate(leaveMaintenanceUpdate, { args: [{ bringBack: false }] });
    const left = (await handle.result()) as MaintenanceView;
    expect(left.status).toBe('left');
    expect(left.counts.returned).toBe(0);
    await recordHistory(stack, handle, 'partial-no-valid-host-after-conductor-crash', 'maintenance');
    expect(await hostEnabled('xen-a')).toBe(true);
    for (const vm of vms) expect((await placements(stack, vm.uuid))[0]?.host).not.toBe('xen-a');
  });

  it('pause stops new migrations, resume goes on; cancel aborts the running one and the host stays disabled until leave', async () => {
    const vms = await createMixed('pause', [64, 64, 64, 64]);
    const handle = await startMaintenance({ host: 'xen-a', parallelism: 1 });
    await viewWhen(handle, (v) => v.status === 'draining' && v.counts.migrating + v.counts.moved >= 1);
    const paused = await handle.executeUpdate(pauseMaintenanceUpdate);
    expect(paused.status).toBe('paused');
    // The running migration finishes; nothing new starts while paused.
    const settled = await viewWhen(handle, (v) => v.counts.migrating === 0);
    expect(settled.status).toBe('paused');
    expect(settled.counts.waiting).toBeGreaterThanOrEqual(2);
    // Nothing starts while paused: the waiting VMs stay as they were (a VM refused by the scheduler
    // before the pause may have an attempt behind it).
    const waitingThen = settled.vms.filter((v) => v.state === 'waiting').map((v) => [v.uuid, v.attempts, v.reason?.message ?? null]);
    await new Promise((r) => setTimeout(r, 1500));
    const still = await view(handle);
    expect(still.counts.migrating).toBe(0);
    expect(still.vms.filter((v) => v.state === 'waiting').map((v) => [v.uuid, v.attempts, v.reason?.message ?? null])).toEqual(waitingThen);
    expect(await refusal(handle.executeUpdate(leaveMaintenanceUpdate, { args: [{ bringBack: false }] }))).toMatch(/cannot leave a maintenance that is paused/);
    const resumed = await handle.executeUpdate(resumeMaintenanceUpdate);
    expect(resumed.status).toBe('draining');
    const ended = await viewWhen(handle, (v) => v.status === 'drained' || v.status === 'partial');
    for (const vm of vms) expect(ended.vms.find((v) => v.uuid === vm.uuid)?.state).toBe('moved');
    await handle.executeUpdate(leaveMaintenanceUpdate, { args: [{ bringBack: false }] });
    await handle.result();

    // Cancel with abort: the running migration is aborted (it rolls back), the rest never start.
    const more = await createMixed('cancel', [64, 64, 64]);
    const second = await startMaintenance({ host: 'xen-a', parallelism: 1 });
    await viewWhen(second, (v) => v.counts.migrating === 1);
    const cancelling = await second.executeUpdate(cancelMaintenanceUpdate, { args: [{ abortRunning: true }] });
    expect(cancelling.status).toBe('cancelling');
    const cancelled = await viewWhen(second, (v) => v.status === 'cancelled');
    expect(cancelled.counts.migrating).toBe(0);
    expect(cancelled.counts.waiting).toBeGreaterThanOrEqual(2);
    expect(await hostEnabled('xen-a')).toBe(false);
    expect(await refusal(second.executeUpdate(pauseMaintenanceUpdate))).toMatch(/cannot pause a maintenance that is cancelled/);
    await second.executeUpdate(leaveMaintenanceUpdate, { args: [{ bringBack: true }] });
    const left = (await second.result()) as MaintenanceView;
    expect(left.status).toBe('left');
    await recordHistory(stack, second, 'cancelled-brought-back', 'maintenance');
    expect(await hostEnabled('xen-a')).toBe(true);
    // Each VM runs on exactly one host, the aborted one too.
    for (const vm of more) expect(await placements(stack, vm.uuid)).toHaveLength(1);
    expect(await leftovers(stack)).toEqual([]);
  });
});

describe('a long drain', () => {
  it('continues as new when its history is long, and the next run carries on with the same view', async () => {
    // Drain xen-b, which the drains above filled (xen-a has room for its VMs), with a history bound
    // so small that every few migrations end a run.
    // The scheduler reads the inventory: wait until it shows xen-a enabled again (left above).
    const inventory = await inventoryWhen(
      stack,
      (inv) => inv.hosts.find((h) => h.name === 'xen-a')?.enabled === true && (inv.hosts.find((h) => h.name === 'xen-b')?.instances.length ?? 0) >= 3,
    );
    const extra = (inventory.hosts.find((h) => h.name === 'xen-b')?.instances ?? []).map((i) => i.uuid);
    const handle = await startMaintenance({ host: 'xen-b', maxHistory: 30 });
    const first = handle.firstExecutionRunId;
    const drained = await viewWhen(stack.client.workflow.getHandle(hostMaintenanceWorkflowId('xen-b')), (v) => v.status === 'drained' || v.status === 'partial', 180_000);
    expect(drained.status, JSON.stringify(drained.vms.map((v) => [v.name, v.state, v.reason]))).toBe('drained');
    expect(drained.counts.moved).toBe(drained.counts.total);
    expect(drained.counts.total).toBeGreaterThanOrEqual(extra.length);
    expect((await stack.client.workflow.getHandle(hostMaintenanceWorkflowId('xen-b'), first).describe()).status.name).toBe('CONTINUED_AS_NEW');
    for (const uuid of extra) expect((await placements(stack, uuid))[0]?.host).not.toBe('xen-b');
    const latest = stack.client.workflow.getHandle(hostMaintenanceWorkflowId('xen-b'));
    await latest.executeUpdate(leaveMaintenanceUpdate, { args: [{ bringBack: false }] });
    expect(((await latest.result()) as MaintenanceView).status).toBe('left');
    await recordHistory(stack, latest, 'continued-as-new-left', 'maintenance');
    expect(await hostEnabled('xen-b')).toBe(true);
  });
});
