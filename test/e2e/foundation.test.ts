// The foundation through the real stack: a workflow on the conductor queue calls activities on each
// host agent's own queue (describeCluster), and a host whose agent is gone counts as down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../lib/stack';
import { DESCRIBE_CLUSTER_WORKFLOW, type ClusterView } from '../../workflows/definitions';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ hosts: [{ name: 'xen-a', pool: 'pool-1', productVersion: '8.2.1' }, { name: 'xen-b', pool: 'pool-1', productVersion: '8.4.0' }] });
});
afterAll(async () => {
  await stack?.stop();
});

const describeCluster = (id: string) =>
  stack.client.workflow.execute(DESCRIBE_CLUSTER_WORKFLOW, { taskQueue: stack.config.taskQueues.conductor, workflowId: id, args: [] }) as Promise<ClusterView>;

describe('conductor and host agents', () => {
  it('a conductor workflow gets each host agent’s answer from its own queue', async () => {
    const vm = await stack.sims.host('xen-b').admin.createVm({ nameLabel: 'web-1', memoryMiB: 16 });
    const view = await describeCluster('describe-all-up');
    expect(view.hosts.map((h) => [h.name, h.up, h.productVersion])).toEqual([
      ['xen-a', true, '8.2.1'],
      ['xen-b', true, '8.4.0'],
    ]);
    const b = view.hosts.find((h) => h.name === 'xen-b');
    expect(b?.instances.map((i) => [i.uuid, i.name, i.powerState, i.memoryBytes])).toEqual([[vm.uuid, 'web-1', 'Running', 16 * 2 ** 20]]);
    expect(b?.memoryFreeBytes).toBeLessThan(b?.memoryTotalBytes ?? 0);
    // The history shows the activity ran on the host's queue.
    const history = await stack.client.workflow.getHandle('describe-all-up').fetchHistory();
    const queues = (history.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.taskQueue?.name ?? []);
    expect(queues).toEqual(expect.arrayContaining(['ferry-conductor', 'ferry-host-xen-a', 'ferry-host-xen-b']));
  });

  it('a member host that crashed is down: xapi reports it not live', async () => {
    await stack.sims.crash('xen-b');
    try {
      const view = await describeCluster('describe-xen-b-crashed');
      const b = view.hosts.find((h) => h.name === 'xen-b');
      expect(b?.up).toBe(false);
      expect(b?.downReason).toMatch(/not live/);
      expect(view.hosts.find((h) => h.name === 'xen-a')?.up).toBe(true);
    } finally {
      await stack.sims.restart('xen-b');
    }
  });

  it('a pool whose master crashed is down as a whole: its XenAPI does not answer', async () => {
    await stack.sims.crash('xen-a');
    try {
      const view = await describeCluster('describe-xen-a-crashed');
      for (const name of ['xen-a', 'xen-b']) {
        const h = view.hosts.find((x) => x.name === name);
        expect(h?.up).toBe(false);
        expect(h?.downReason).toMatch(/did not answer/);
      }
    } finally {
      await stack.sims.restart('xen-a');
    }
  });
});
