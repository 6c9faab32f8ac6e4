// Placement from the host inventory: the best candidates whose agent polls, a capped list of
// reasons for the rest, and where an instance is (or why it cannot be moved).
import { describe, expect, it } from 'vitest';
import type { PolledHost } from '../../activities/conductor/hosts';
import { planLiveMigration, scheduleDestinations } from '../../activities/conductor/placement';
import type { HostInventory, InventoryHost, Located } from '../../lib/host-inventory';
import type { InstanceView } from '../../workflows/definitions';
import { policy } from '../workflow/fake-cluster';

const GiB = 2 ** 30;
const instance: InstanceView = { uuid: 'vm-1', name: 'vm', powerState: 'Running', host: 'h0', memoryBytes: GiB, vcpus: 1, vcpuCap: null, diskBytes: 0, storage: 'shared' };

function host(name: string, pool: string, freeGiB: number, extra: Partial<InventoryHost> = {}): InventoryHost {
  return {
    name,
    pool,
    queue: `ferry-host-${name}`,
    up: true,
    downReason: null,
    enabled: true,
    productVersion: '8.2.1',
    platformVersion: '3.4.0',
    memoryTotalBytes: 64 * GiB,
    memoryFreeBytes: freeGiB * GiB,
    instances: [],
    reportedAt: '2026-11-27T10:00:00.000Z',
    ...extra,
  };
}

function inventoryOf(hosts: InventoryHost[]): HostInventory {
  const located = (uuid: string): Located | null => {
    for (const h of hosts) {
      const i = h.instances.find((x) => x.uuid === uuid);
      if (i) return { host: h, instance: i };
    }
    return null;
  };
  return {
    view: async () => ({ hosts, observedAt: '2026-11-27T10:00:00.000Z' }),
    locate: async (uuid: string) => located(uuid),
  } as unknown as HostInventory;
}

const polling = (silent: string[] = []) => async (h: InventoryHost): Promise<PolledHost> => ({
  name: h.name,
  pool: h.pool,
  queue: h.queue,
  polled: !silent.includes(h.name),
  reason: silent.includes(h.name) ? 'no agent polls its queue' : null,
});

describe('scheduleDestinations', () => {
  const source = host('h0', 'p', 10, { instances: [instance] });
  const { instances: _i, reportedAt: _r, ...sourceSummary } = source;
  const request = { instance, source: sourceSummary, excluded: [], blockMigration: false, reservedBytes: {}, limit: 2 };

  it('answers the best candidates whose agent polls, skipping one that does not', async () => {
    const hosts = [source, host('h1', 'p', 8), host('h2', 'p', 32), host('h3', 'p', 16), host('h4', 'p', 4)];
    const asked: string[] = [];
    const answer = await scheduleDestinations(inventoryOf(hosts), async (h) => (asked.push(h.name), polling(['h2'])(h)), request);
    expect(answer.candidates.map((c) => c.name)).toEqual(['h3', 'h1']);
    expect(answer.rejected).toEqual([{ host: 'h2', reason: 'host is down: no agent polls its queue' }]);
    expect(answer.moreCandidates).toBe(1); // h4 fits, not asked
    expect(asked).toEqual(['h2', 'h3', 'h1']); // only the candidates' queues, best first
  });

  it('lists at most ten reasons and counts the rest, whatever the cluster size', async () => {
    const others = Array.from({ length: 1000 }, (_, i) => host(`o${i}`, `pool-${i}`, 32));
    const answer = await scheduleDestinations(inventoryOf([source, host('h1', 'p', 8), ...others]), polling(), request);
    expect(answer.candidates.map((c) => c.name)).toEqual(['h1']);
    expect(answer.rejected).toHaveLength(10);
    expect(answer.rejectedMore).toBe(990);
    expect(answer.rejected[0]?.reason).toMatch(/pool/);
  });
});

describe('planLiveMigration', () => {
  it('names the instance host and the requested host, with the policy', async () => {
    const hosts = [host('h0', 'p', 10, { instances: [instance] }), host('h1', 'p', 8)];
    const plan = await planLiveMigration(inventoryOf(hosts), polling(), policy(), { instanceUuid: 'vm-1', requestedHost: 'h1' });
    expect(plan.source.name).toBe('h0');
    expect(plan.requested?.name).toBe('h1');
    expect(plan.policy.limits.outboundPerHost).toBe(1);
    expect('instances' in plan.source).toBe(false);
  });

  it('refuses an instance on a host that is down, an unknown one, and an unknown requested host', async () => {
    const down = [host('h0', 'p', 10, { instances: [instance], up: false, downReason: 'its agent last reported 45 s ago' }), host('h1', 'p', 8)];
    await expect(planLiveMigration(inventoryOf(down), polling(), policy(), { instanceUuid: 'vm-1', requestedHost: null })).rejects.toMatchObject({
      type: 'ComputeServiceUnavailable',
      message: expect.stringMatching(/on h0, which is down: its agent last reported 45 s ago/),
    });
    const up = [host('h0', 'p', 10, { instances: [instance] })];
    await expect(planLiveMigration(inventoryOf(up), polling(), policy(), { instanceUuid: 'vm-2', requestedHost: null })).rejects.toMatchObject({ type: 'InstanceNotFound' });
    await expect(planLiveMigration(inventoryOf(up), polling(), policy(), { instanceUuid: 'vm-1', requestedHost: 'nope' })).rejects.toMatchObject({ type: 'ComputeHostNotFound' });
  });

  it("refuses a requested host whose hypervisor is older than the source's (Nova's DestinationHypervisorTooOld)", async () => {
    const hosts = [host('h0', 'p', 10, { instances: [instance], productVersion: '8.2.1' }), host('h1', 'p', 8, { productVersion: '8.2.0' }), host('h2', 'p', 8, { productVersion: '8.3.0' })];
    await expect(planLiveMigration(inventoryOf(hosts), polling(), policy(), { instanceUuid: 'vm-1', requestedHost: 'h1' })).rejects.toMatchObject({
      type: 'DestinationHypervisorTooOld',
      message: 'requested host h1: hypervisor version 8.2.0 is older than the source\'s 8.2.1',
    });
    expect((await planLiveMigration(inventoryOf(hosts), polling(), policy(), { instanceUuid: 'vm-1', requestedHost: 'h2' })).requested?.name).toBe('h2');
  });

  it('takes a host whose agent no longer polls its queue for down, though its last report is recent', async () => {
    const hosts = [host('h0', 'p', 10, { instances: [instance] }), host('h1', 'p', 8)];
    await expect(planLiveMigration(inventoryOf(hosts), polling(['h0']), policy(), { instanceUuid: 'vm-1', requestedHost: null })).rejects.toMatchObject({
      type: 'ComputeServiceUnavailable',
      message: expect.stringMatching(/on h0, which is down: no agent polls its queue/),
    });
    const plan = await planLiveMigration(inventoryOf(hosts), polling(['h1']), policy(), { instanceUuid: 'vm-1', requestedHost: 'h1' });
    expect(plan.requested).toMatchObject({ name: 'h1', up: false, downReason: 'no agent polls its queue' });
  });
});
