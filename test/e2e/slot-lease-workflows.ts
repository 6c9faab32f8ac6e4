// Test workflows for test/e2e/slots.test.ts: a stand-in migration that only holds a SlotLease. Its
// type is liveMigration, so a fresh slots entity finds it among the running migrations and asks it
// to re-assert its lease. Run by test/e2e/slot-lease-worker.ts on a task queue of its own.
import { CancellationScope, condition, defineQuery, defineSignal, setHandler, workflowInfo } from '@temporalio/workflow';
import type { MigrationLimits } from '../../workflows/definitions';
import { SlotLease } from '../../workflows/slot-lease';

export interface LeaseHolderInput {
  sourceHost: string;
  destHost: string | null;
  memoryBytes: number;
  limits: MigrationLimits;
}

export interface LeaseHolderView {
  held: boolean;
  queued: number;
  granted: number;
}

/** The task queue of test/e2e/slot-lease-worker.ts (its SlotLease activities run there too). */
export const SLOT_LEASE_TEST_QUEUE = 'ferry-slot-lease-test';

export const finishSignal = defineSignal('finish');
export const leaseQuery = defineQuery<LeaseHolderView>('lease');

export async function liveMigration(input: LeaseHolderInput): Promise<void> {
  let queued = 0;
  let granted = 0;
  let finished = false;
  const lease = new SlotLease(workflowInfo().workflowId, { onQueued: () => queued++, onGranted: () => granted++ });
  lease.install();
  setHandler(finishSignal, () => {
    finished = true;
  });
  setHandler(leaseQuery, () => ({ held: lease.held, queued, granted }));
  try {
    await lease.acquire(input);
    await condition(() => finished);
  } finally {
    await CancellationScope.nonCancellable(() => lease.release());
    await lease.release(); // a second release is a no-op
  }
}
