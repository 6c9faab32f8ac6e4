// The foundation through the real stack: each host agent reports its host to the host inventory
// (a hostInventory entity per host, in the system namespace), readers see every host in one look-up
// without starting a workflow, and a host is down when xapi says so, when its XenAPI does not
// answer, or when its agent stops reporting.
import { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostInventory, type InventoryView } from '../../lib/host-inventory';
import { startStack, type Stack } from '../../lib/stack';
import { HOST_INVENTORY_WORKFLOW } from '../../workflows/definitions';
import { inventoryWhen as waitForInventory } from './helpers';

const STALE_SECONDS = 3;
let stack: Stack;
let inventory: HostInventory;
beforeAll(async () => {
  stack = await startStack({
    hosts: [
      { name: 'xen-a', pool: 'pool-1', productVersion: '8.2.1' },
      { name: 'xen-b', pool: 'pool-1', productVersion: '8.4.0' },
    ],
    inventory: { reportSeconds: 1, staleSeconds: STALE_SECONDS },
  });
  inventory = new HostInventory(stack.systemClient, stack.config);
});
afterAll(async () => {
  await stack?.stop();
});

const inventoryWhen = (predicate: (view: InventoryView) => boolean, ms?: number) => waitForInventory(stack, predicate, ms);

const host = (view: InventoryView, name: string) => view.hosts.find((h) => h.name === name);

describe('the host inventory', () => {
  it('shows every host as its agent reports it, and a VM created behind ferry’s back at once', async () => {
    const vm = await stack.sims.host('xen-b').admin.createVm({ nameLabel: 'web-1', memoryMiB: 16 });
    const view = await inventoryWhen((v) => host(v, 'xen-b')?.instances.some((i) => i.uuid === vm.uuid) ?? false);
    expect(view.hosts.map((h) => [h.name, h.up, h.productVersion])).toEqual([
      ['xen-a', true, '8.2.1'],
      ['xen-b', true, '8.4.0'],
    ]);
    const b = host(view, 'xen-b');
    expect(b?.instances.map((i) => [i.uuid, i.name, i.powerState, i.memoryBytes])).toEqual([[vm.uuid, 'web-1', 'Running', 16 * 2 ** 20]]);
    expect(b?.memoryFreeBytes).toBeLessThan(b?.memoryTotalBytes ?? 0);
    expect((await inventory.locate(vm.uuid))?.host.name).toBe('xen-b');
    // The entities live in the system namespace; reading them started no workflow in the main one.
    const system = new Client({ connection: stack.client.connection, namespace: stack.config.temporal.systemNamespace, dataConverter: stack.client.options.dataConverter });
    const entities = [];
    for await (const e of system.workflow.list({ query: `WorkflowType = '${HOST_INVENTORY_WORKFLOW}'` })) entities.push(e.workflowId);
    expect(entities.sort()).toEqual(['host-inventory-xen-a', 'host-inventory-xen-b']);
    const main = [];
    for await (const e of stack.client.workflow.list()) main.push(e.type);
    expect(main).toEqual([]);
  });

  it('a member host that crashed is down: xapi reports it not live', async () => {
    await stack.sims.crash('xen-b');
    try {
      const view = await inventoryWhen((v) => host(v, 'xen-b')?.up === false);
      expect(host(view, 'xen-b')?.downReason).toMatch(/not live/);
      expect(host(view, 'xen-a')?.up).toBe(true);
    } finally {
      await stack.sims.restart('xen-b');
    }
    expect(host(await inventoryWhen((v) => host(v, 'xen-b')?.up === true), 'xen-b')?.up).toBe(true);
  });

  it('a pool whose master crashed is down as a whole: its XenAPI does not answer', async () => {
    await stack.sims.crash('xen-a');
    try {
      const view = await inventoryWhen((v) => v.hosts.every((h) => !h.up));
      for (const name of ['xen-a', 'xen-b']) expect(host(view, name)?.downReason).toMatch(/did not answer/);
    } finally {
      await stack.sims.restart('xen-a');
    }
    expect((await inventoryWhen((v) => v.hosts.every((h) => h.up))).hosts.every((h) => h.up)).toBe(true);
  });

  it('an agent that stops reporting is down within inventory.staleSeconds, and up again when it returns', async () => {
    await inventoryWhen((v) => host(v, 'xen-b')?.up === true);
    const killedAt = Date.now();
    await stack.killAgent('xen-b');
    try {
      const view = await inventoryWhen((v) => host(v, 'xen-b')?.up === false, (STALE_SECONDS + 5) * 1000);
      const seenAfter = (Date.now() - killedAt) / 1000;
      expect(host(view, 'xen-b')?.downReason).toMatch(/its agent last reported \d+ s ago/);
      // Its last report was at most reportSeconds before the kill.
      expect(seenAfter).toBeLessThanOrEqual(STALE_SECONDS + 1 + 1);
      expect(host(view, 'xen-a')?.up).toBe(true);
    } finally {
      await stack.startAgent('xen-b');
    }
    expect(host(await inventoryWhen((v) => host(v, 'xen-b')?.up === true), 'xen-b')?.up).toBe(true);
  });
});
