// A migration's calls to the migration-slots entity workflow, and the entity's look-ups of migration
// workflows. Every call from a migration goes through signalWithStart: an entity that was lost
// (terminated, reset) is started afresh by the next call, so a release never fails and a request
// never waits on an entity that is not there.
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/activity';
import { WithStartWorkflowOperation, WorkflowNotFoundError } from '@temporalio/client';
import type { SignalDefinition, UpdateDefinition } from '@temporalio/common';
import type { FerryConfig } from '../../lib/config';
import { COLD_MIGRATION_WORKFLOW } from '../../workflows/cold-migration-definitions';
import {
  LIVE_MIGRATION_WORKFLOW,
  MIGRATION_SLOTS_WORKFLOW,
  MIGRATION_SLOTS_WORKFLOW_ID,
  releaseDestinationSignal,
  releaseSlotSignal,
  requestSlotSignal,
  requestSlotUpdate,
  reserveDestinationSignal,
  reserveDestinationUpdate,
  type DestinationReservation,
  type ReservationAnswer,
  type SlotAnswer,
  type SlotRequest,
  type SlotsState,
} from '../../workflows/definitions';

export type { DestinationReservation, SlotRequest };

/** Signals the entity, starting it (with no state: a fresh entity re-collects leases) if it is not running. */
async function signalSlots<A>(client: Client, config: FerryConfig, signal: SignalDefinition<[A]>, arg: A): Promise<void> {
  const fresh: SlotsState = { queue: [], holders: [] };
  await client.workflow.signalWithStart(MIGRATION_SLOTS_WORKFLOW, {
    workflowId: MIGRATION_SLOTS_WORKFLOW_ID,
    taskQueue: config.taskQueues.conductor,
    args: [fresh],
    signal,
    signalArgs: [arg] as [A],
    staticSummary: 'ferry: migration concurrency limits (leases per host and cluster)',
  });
}

/** Updates the entity, starting it (with no state) if it is not running; answers the update's result. */
async function updateSlots<A, R>(client: Client, config: FerryConfig, update: UpdateDefinition<R, [A]>, arg: A): Promise<R> {
  const fresh: SlotsState = { queue: [], holders: [] };
  const startWorkflowOperation = new WithStartWorkflowOperation(MIGRATION_SLOTS_WORKFLOW, {
    workflowId: MIGRATION_SLOTS_WORKFLOW_ID,
    taskQueue: config.taskQueues.conductor,
    args: [fresh],
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: 'ferry: migration concurrency limits (leases per host and cluster)',
  });
  return client.workflow.executeUpdateWithStart(update, { args: [arg] as [A], startWorkflowOperation });
}

/** Joins the entity's queue and answers at once whether the slot was granted (else slotGranted follows). */
export function requestSlotNow(client: Client, config: FerryConfig, request: SlotRequest): Promise<SlotAnswer> {
  return updateSlots(client, config, requestSlotUpdate, request);
}

/** Reserves a destination's inbound slot and memory, answering at once. */
export function reserveDestinationNow(client: Client, config: FerryConfig, reservation: DestinationReservation): Promise<ReservationAnswer> {
  return updateSlots(client, config, reserveDestinationUpdate, reservation);
}

/** Joins the entity's queue (or re-asserts a held lease, with held: true). */
export function requestSlot(client: Client, config: FerryConfig, request: SlotRequest): Promise<void> {
  return signalSlots(client, config, requestSlotSignal, request);
}

/** Asks the entity to reserve a destination's inbound slot and memory; it answers with destinationReserved. */
export function reserveDestination(client: Client, config: FerryConfig, reservation: DestinationReservation): Promise<void> {
  return signalSlots(client, config, reserveDestinationSignal, reservation);
}

export function releaseDestination(client: Client, config: FerryConfig, workflowId: string): Promise<void> {
  return signalSlots(client, config, releaseDestinationSignal, { workflowId });
}

/** Gives back a lease or a place in the queue; to an entity that knows neither, a no-op. */
export function releaseSlot(client: Client, config: FerryConfig, workflowId: string): Promise<void> {
  return signalSlots(client, config, releaseSlotSignal, { workflowId });
}

/**
 * Which of these migration workflows have closed. A run that was terminated never releases its
 * lease itself; the entity asks this now and then and takes such leases back.
 */
export async function closedMigrations(client: Client, workflowIds: string[]): Promise<string[]> {
  const closed: string[] = [];
  for (const workflowId of workflowIds) {
    try {
      const description = await client.workflow.getHandle(workflowId).describe();
      if (description.status.name !== 'RUNNING') closed.push(workflowId);
    } catch (err) {
      if ((err as Error).name === 'WorkflowNotFoundError') closed.push(workflowId);
      else throw err;
    }
  }
  return closed;
}

/** The running liveMigration and coldMigration workflows (visibility): a fresh entity asks them to re-assert their leases. */
export async function runningMigrations(client: Client): Promise<string[]> {
  const ids: string[] = [];
  const query = `(WorkflowType = '${LIVE_MIGRATION_WORKFLOW}' OR WorkflowType = '${COLD_MIGRATION_WORKFLOW}') AND ExecutionStatus = 'Running'`;
  for await (const execution of client.workflow.list({ query })) ids.push(execution.workflowId);
  return ids;
}

/**
 * A signal from the entity to a migration workflow (the entity may run in the system namespace,
 * where it cannot signal the migrations itself). A migration that is gone fails at once.
 */
export async function signalMigration(client: Client, { workflowId, signal, args }: { workflowId: string; signal: string; args: unknown[] }): Promise<void> {
  try {
    await client.workflow.getHandle(workflowId).signal(signal, ...args);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw ApplicationFailure.nonRetryable(`migration ${workflowId} is not running: ${err.message}`, 'MigrationGone');
    throw err;
  }
}
