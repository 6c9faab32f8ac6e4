// hostMaintenance through the real stack: dev server, simulators, conductor, one agent per host.
// One stack for the file: each test drains xen-a and leaves it enabled again.
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../lib/stack';
import {
  HOST_MAINTENANCE_WORKFLOW,
  hostMaintenanceWorkflowId,
  leaveMaintenanceUpdate,
  maintenanceStatusQuery,
  type HostMaintenanceInput,
  type MaintenanceView,
} from '../../workflows/definitions';
import { XenApiClient } from '../../xenapi/client';
import { inventoryWhen, leftovers, placements, slots } from './helpers';

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

function startMaintenance(input: HostMaintenanceInput): Promise<WorkflowHandle> {
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
async function maintenanceMode(name: string): Promise<string | undefined> {
  const xen = new XenApiClient({ url: stack.sims.host(name).xenapiUrl, user: 'root', password: stack.password });
  const address = new URL(stack.sims.host(name).xenapiUrl).hostname;
  const [ref] = Object.keys(await xen.getAllRecordsWhere('host', `field "address" = "${address}"`));
  const other = await xen.call<Record<string, string>>('host.get_other_config', ref);
  return other.MAINTENANCE_MODE;
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
    await inventoryWhen(stack, (inv) => inv.hosts.find((h) => h.name === 'xen-a')?.enabled === false);

    await handle.executeUpdate(leaveMaintenanceUpdate, { args: [{ bringBack: true }] });
    const left = (await handle.result()) as MaintenanceView;
    expect(left.status).toBe('left');
    expect(left.counts.returned).toBe(6);
    for (const vm of vms) {
      expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-a', powerState: 'Running' }]);
      expect((await admin('xen-a').checksums(vm.uuid))?.memory).toBe(vm.memory);
    }
    expect(await hostEnabled('xen-a')).toBe(true);
    expect(await maintenanceMode('xen-a')).toBeUndefined();
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
