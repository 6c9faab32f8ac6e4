// Host maintenance and resize against QEMU hosts through the real stack (issue 15's gaps): two QEMU
// hosts sharing one images directory (pool q1), real Temporal, real QEMU under TCG, tiny guests
// (32 MiB RAM, 16 MiB region that is hardly dirtied), at most 3 QEMU processes at once.
//   - hostMaintenance drains qa of 2 guests to qb, marks qa in maintenance, then leaves with
//     bring-back: both guests run on qa again, counting, and nothing is left on qb;
//   - a resize (coldMigration) of a QEMU guest is refused at its first host step, with why, and
//     touches nothing.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQemuGuest, readQemuGuestSerial, type CreateQemuGuestOptions } from '../../activities/host/qemu/admin';
import { findHost } from '../../lib/config';
import { InstanceUuid } from '../../lib/search-attributes';
import { startStack, type Stack } from '../../lib/stack';
import { pidIfRunning } from '../../qemu/process';
import { COLD_MIGRATION_WORKFLOW, coldMigrationStatusQuery, coldMigrationWorkflowId, type ColdMigrationInput } from '../../workflows/cold-migration-definitions';
import {
  HOST_MAINTENANCE_WORKFLOW,
  hostMaintenanceWorkflowId,
  leaveMaintenanceUpdate,
  maintenanceStatusQuery,
  type MaintenanceView,
} from '../../workflows/definitions';
import { failureOf, inventoryWhen, listsInstance, slots } from './helpers';

let stack: Stack;
const host = (name: string) => findHost(stack.config, name);
const guestDir = (hostName: string, uuid: string) => join(host(hostName).qemu?.stateDir ?? '', 'guests', uuid);
const serviceFile = (hostName: string) => join(host(hostName).qemu?.stateDir ?? '', 'service.json');

/** A guest that hardly dirties memory: pre-copy converges at once. */
const TINY: Omit<CreateQemuGuestOptions, 'name'> = { memoryMiB: 32, regionMiB: 16, delayLoops: 3_000_000 };

async function guestOn(hostName: string, name: string) {
  const guest = await createQemuGuest(host(hostName), stack.config.hosts, { name, ...TINY });
  const view = await inventoryWhen(stack, listsInstance(hostName, guest.uuid), 20_000);
  expect(listsInstance(hostName, guest.uuid)(view)).toBe(true);
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

async function viewWhen(handle: WorkflowHandle, predicate: (v: MaintenanceView) => boolean, ms = 120_000): Promise<MaintenanceView> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await handle.query(maintenanceStatusQuery);
    if (predicate(v)) return v;
    if (Date.now() > deadline) throw new Error(`maintenance never reached the expected state: ${JSON.stringify({ status: v.status, vms: v.vms })}`);
    await sleep(200);
  }
}

const service = async (hostName: string) => JSON.parse(await readFile(serviceFile(hostName), 'utf8')) as { enabled: boolean; disabledReason: string | null; maintenanceMode: boolean };

beforeAll(async () => {
  stack = await startStack({
    hosts: [
      { name: 'qa', pool: 'q1', driver: 'qemu', memoryMiB: 512, qemu: { bandwidthMiBps: 64 } },
      { name: 'qb', pool: 'q1', driver: 'qemu', memoryMiB: 512, qemu: { bandwidthMiBps: 64 } },
    ],
    encryption: false,
    inventory: { reportSeconds: 5, staleSeconds: 60 },
    migration: { hostTimeout: 30, limits: { outboundPerHost: 2, inboundPerHost: 1, cluster: 2 } },
  });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

describe('maintenance of a QEMU host', () => {
  it('drains a QEMU host of 2 guests to the other, marks it in maintenance, then leaves with both brought back', async () => {
    const guests = [await guestOn('qa', 'drain-1'), await guestOn('qa', 'drain-2')];
    const pids = await Promise.all(guests.map((g) => pidIfRunning(g.stateDir)));
    const handle = await stack.client.workflow.start(HOST_MAINTENANCE_WORKFLOW, {
      taskQueue: stack.config.taskQueues.conductor,
      workflowId: hostMaintenanceWorkflowId('qa'),
      args: [{ host: 'qa' }],
    });
    const drained = await viewWhen(handle, (v) => v.status === 'drained' || v.status === 'partial');
    expect(drained.status, JSON.stringify(drained.vms.map((v) => [v.name, v.state, v.reason]))).toBe('drained');
    expect(drained.counts).toMatchObject({ total: 2, moved: 2, failed: 0 });
    for (const g of guests) {
      expect(drained.vms.find((v) => v.uuid === g.uuid)?.destHost).toBe('qb');
      // Moved live: no second boot on qb, it counts on there; no QEMU or state left on qa.
      const onB = await countsOn('qb', g.uuid, 0);
      expect(onB.starts).toBe(0);
      expect(existsSync(guestDir('qa', g.uuid))).toBe(false);
    }
    // Disabled with the maintenance reason and marked in maintenance, in the host's own state.
    expect(await service('qa')).toMatchObject({ enabled: false, disabledReason: 'maintenance (workflow host-maintenance-qa)', maintenanceMode: true });
    const inv = await inventoryWhen(stack, (view) => view.hosts.find((h) => h.name === 'qa')?.enabled === false);
    expect(inv.hosts.find((h) => h.name === 'qa')?.disabledReason).toBe('maintenance (workflow host-maintenance-qa)');

    await handle.executeUpdate(leaveMaintenanceUpdate, { args: [{ bringBack: true }] });
    const left = (await handle.result()) as MaintenanceView;
    expect(left.status).toBe('left');
    expect(left.counts.returned).toBe(2);
    for (const [i, g] of guests.entries()) {
      // Back on qa in a new QEMU process that came by migration (no boot), counting; gone from qb.
      const onA = await countsOn('qa', g.uuid, 0);
      expect(onA.starts).toBe(0);
      expect(await pidIfRunning(guestDir('qa', g.uuid))).not.toBe(pids[i]);
      await countsOn('qa', g.uuid, onA.passes);
      expect(existsSync(guestDir('qb', g.uuid))).toBe(false);
    }
    expect(await service('qa')).toMatchObject({ enabled: true, disabledReason: null, maintenanceMode: false });
    await inventoryWhen(stack, (view) => view.hosts.find((h) => h.name === 'qa')?.enabled === true);
    expect((await slots(stack)).holders).toEqual([]);
  }, 240_000);
});

describe('resize and cold migration of a QEMU guest', () => {
  it('is refused at once with why, and touches nothing', async () => {
    const guest = await guestOn('qa', 'resize-1');
    const pid = await pidIfRunning(guest.stateDir);
    const input: ColdMigrationInput = { instanceUuid: guest.uuid, flavor: { id: 'r1', name: 'bigger', vcpus: 1, ram: 48, disk: 0 } };
    const handle = await stack.client.workflow.start(COLD_MIGRATION_WORKFLOW, {
      taskQueue: stack.config.taskQueues.conductor,
      workflowId: coldMigrationWorkflowId(guest.uuid),
      args: [input],
      typedSearchAttributes: [{ key: InstanceUuid, value: guest.uuid }],
    });
    const failure = await failureOf(handle);
    expect(failure.type).toBe('MigrationPreCheckError');
    expect(failure.message).toBe("qa is a QEMU host: ferry's QEMU driver does not support resize or cold migration yet (live migration only)");
    const view = await handle.query(coldMigrationStatusQuery);
    expect(view.status).toBe('error');
    expect(view.error?.message).toBe(failure.message);
    // Nothing touched: the same QEMU runs the guest on qa and counts; nothing on qb; no slot held.
    expect(await pidIfRunning(guest.stateDir)).toBe(pid);
    const serial = await readQemuGuestSerial(host('qa'), guest.uuid);
    await countsOn('qa', guest.uuid, serial.passes);
    expect(existsSync(guestDir('qb', guest.uuid))).toBe(false);
    expect((await slots(stack)).holders).toEqual([]);
  }, 90_000);
});
