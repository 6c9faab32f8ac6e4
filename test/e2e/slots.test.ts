// The migration-slots entity through the real stack, with no migration: leases that cannot leak.
// The test signals the entity through the conductor's own slot functions (signalWithStart), uses
// liveMigration-typed workflows that no worker runs as stand-ins for running or terminated
// migrations, and, where a migration must answer, test workflows that hold a real SlotLease
// (test/e2e/slot-lease-workflows.ts, run by test/e2e/slot-lease-worker.ts).
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseSlot, requestSlot } from '../../activities/conductor/slots';
import { spawnTs } from '../../lib/processes';
import { startStack, type Stack } from '../../lib/stack';
import { stopProcess } from '../../lib/temporal-dev-server';
import { LIVE_MIGRATION_WORKFLOW, MIGRATION_SLOTS_WORKFLOW, MIGRATION_SLOTS_WORKFLOW_ID, type MigrationLimits, type SlotsState } from '../../workflows/definitions';
import { slots, waitForSlots } from './helpers';
import { finishSignal, leaseQuery, SLOT_LEASE_TEST_QUEUE, type LeaseHolderInput } from './slot-lease-workflows';

let stack: Stack;
let leaseWorker: ChildProcess;
const limits: MigrationLimits = { outboundPerHost: 1, inboundPerHost: 1, cluster: 5 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  stack = await startStack();
  leaseWorker = spawnTs('test/e2e/slot-lease-worker.ts', ['--config', stack.configPath], {
    logFile: join(stack.workDir, 'logs', 'slot-lease-worker.log'),
    exitWithParent: true,
  });
  const deadline = Date.now() + 90_000;
  for (;;) {
    const { pollers } = await stack.client.workflowService.describeTaskQueue({
      namespace: stack.config.temporal.namespace,
      taskQueue: { name: SLOT_LEASE_TEST_QUEUE },
      taskQueueType: 1,
    });
    if ((pollers ?? []).length > 0) break;
    if (leaseWorker.exitCode !== null || Date.now() > deadline) throw new Error('the slot lease test worker did not start');
    await sleep(200);
  }
});

afterAll(async () => {
  if (leaseWorker) await stopProcess(leaseWorker);
  await stack?.stop();
});

let counter = 0;
/** A running liveMigration that no worker runs: it can be signalled and terminated, and never answers. */
async function standIn(): Promise<WorkflowHandle> {
  return stack.client.workflow.start(LIVE_MIGRATION_WORKFLOW, { workflowId: `stand-in-${++counter}`, taskQueue: 'nobody-polls-this', args: [] });
}

/** A liveMigration-typed test workflow holding a real SlotLease. */
async function leaseHolder(input: Omit<LeaseHolderInput, 'limits' | 'memoryBytes'>): Promise<WorkflowHandle> {
  return stack.client.workflow.start(LIVE_MIGRATION_WORKFLOW, {
    workflowId: `lease-holder-${++counter}`,
    taskQueue: SLOT_LEASE_TEST_QUEUE,
    args: [{ ...input, memoryBytes: 1024, limits }],
  });
}

const request = (workflowId: string, sourceHost: string, extra: Partial<Parameters<typeof requestSlot>[2]> = {}) =>
  requestSlot(stack.systemClient, stack.config, { workflowId, sourceHost, memoryBytes: 1024, limits, ...extra });

async function terminateEntity(): Promise<void> {
  await stack.systemClient.workflow
    .getHandle(MIGRATION_SLOTS_WORKFLOW_ID)
    .terminate('test: the entity is lost')
    .catch(() => undefined);
}

const ids = (s: SlotsState) => ({ holders: s.holders.map((h) => h.workflowId).sort(), queue: s.queue.map((q) => q.workflowId) });

describe('migrationSlots: leases that cannot leak', () => {
  it('audits every 60 s while requests keep arriving: a terminated holder and a terminated waiter are taken back', async () => {
    const [holder, waiter, busy] = [await standIn(), await standIn(), await standIn()];
    await request(holder.workflowId, 'xen-a');
    await request(waiter.workflowId, 'xen-a'); // queued behind holder: xen-a's outbound limit
    await waitForSlots(stack, (s) => s.holders.some((h) => h.workflowId === holder.workflowId) && s.queue.length === 1);
    await holder.terminate('test: terminated while holding a lease');
    await waiter.terminate('test: terminated while queued');
    const terminatedAt = Date.now();
    // Traffic every 3 s: with the old 60-quiet-seconds audit it would never run.
    let stop = false;
    const traffic = (async () => {
      for (let i = 0; !stop; i++) {
        if (i % 2 === 0) await request(busy.workflowId, 'xen-b');
        else await releaseSlot(stack.systemClient, stack.config, busy.workflowId);
        await sleep(3000);
      }
    })();
    try {
      const state = await waitForSlots(stack, (s) => !ids(s).holders.includes(holder.workflowId) && !ids(s).queue.includes(waiter.workflowId) && !ids(s).holders.includes(waiter.workflowId), 75_000);
      expect(Date.now() - terminatedAt).toBeLessThan(72_000);
      expect(ids(state).queue).toEqual([]);
    } finally {
      stop = true;
      await traffic;
    }
    await releaseSlot(stack.systemClient, stack.config, busy.workflowId);
    await busy.terminate('test: done');
    expect(ids(await waitForSlots(stack, (s) => s.holders.length === 0 && s.queue.length === 0))).toEqual({ holders: [], queue: [] });
  }, 150_000);

  it('a lost entity is recreated by the next release (which does not fail) and re-fed by reassertLease', async () => {
    const first = await leaseHolder({ sourceHost: 'xen-a', destHost: 'xen-c' });
    await waitForSlots(stack, (s) => s.holders.some((h) => h.workflowId === first.workflowId));
    expect((await slots(stack)).holders.find((h) => h.workflowId === first.workflowId)?.destHost).toBe('xen-c');
    // The second one names a destination that is full: it waits, holding neither outbound nor cluster.
    const second = await leaseHolder({ sourceHost: 'xen-b', destHost: 'xen-c' });
    await waitForSlots(stack, (s) => s.queue.some((q) => q.workflowId === second.workflowId));
    expect(await second.query(leaseQuery)).toEqual({ held: false, queued: 1, granted: 0 });

    await terminateEntity();
    // A release to an entity that is not there starts a fresh one, where it is a no-op.
    await expect(releaseSlot(stack.systemClient, stack.config, 'never-held-anything')).resolves.toBeUndefined();
    // The fresh entity asks the running liveMigration workflows to re-assert: first comes back as a
    // holder (with its destination), second as a waiter.
    const refed = await waitForSlots(
      stack,
      (s) => s.holders.some((h) => h.workflowId === first.workflowId) && s.queue.some((q) => q.workflowId === second.workflowId),
      30_000,
    );
    expect(refed.holders).toEqual([{ workflowId: first.workflowId, sourceHost: 'xen-a', destHost: 'xen-c', memoryBytes: 1024 }]);
    expect((await stack.systemClient.workflow.getHandle(MIGRATION_SLOTS_WORKFLOW_ID).describe()).status.name).toBe('RUNNING');

    // The re-fed entity holds the limits: second gets xen-c only once first is done.
    await sleep(2000);
    expect(await second.query(leaseQuery)).toMatchObject({ held: false, granted: 0 });
    await first.signal(finishSignal);
    await first.result();
    await waitForSlots(stack, (s) => s.holders.some((h) => h.workflowId === second.workflowId));
    for (;;) {
      if ((await second.query(leaseQuery)).held) break;
      await sleep(200);
    }
    await second.signal(finishSignal);
    await second.result();
    expect(ids(await waitForSlots(stack, (s) => s.holders.length === 0 && s.queue.length === 0))).toEqual({ holders: [], queue: [] });
  });

  it('keeps its limits across continue-as-new, with an empty queue', async () => {
    await terminateEntity();
    const entity = await stack.systemClient.workflow.start(MIGRATION_SLOTS_WORKFLOW, {
      workflowId: MIGRATION_SLOTS_WORKFLOW_ID,
      taskQueue: stack.config.taskQueues.conductor,
      args: [{ queue: [], holders: [], maxHistory: 40 } satisfies SlotsState],
    });
    const custom: MigrationLimits = { outboundPerHost: 3, inboundPerHost: 2, cluster: 4 };
    const holder = await standIn();
    await request(holder.workflowId, 'xen-a', { limits: custom });
    await waitForSlots(stack, (s) => s.holders.length === 1);
    await releaseSlot(stack.systemClient, stack.config, holder.workflowId);
    await holder.terminate('test: done');
    // Releases of nothing until the history is long enough to continue as new.
    for (let i = 0; i < 40; i++) {
      const description = await stack.systemClient.workflow.getHandle(MIGRATION_SLOTS_WORKFLOW_ID).describe();
      if (description.runId !== entity.firstExecutionRunId && description.status.name === 'RUNNING') break;
      await releaseSlot(stack.systemClient, stack.config, `nobody-${i}`);
      await sleep(100);
    }
    const after = await stack.systemClient.workflow.getHandle(MIGRATION_SLOTS_WORKFLOW_ID).describe();
    expect(after.runId).not.toBe(entity.firstExecutionRunId);
    const state = await slots(stack);
    expect(state).toMatchObject({ queue: [], holders: [], limits: custom, maxHistory: 40 });
  });
});
