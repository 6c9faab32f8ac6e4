// Joins the migration-slots entity workflow's queue, starting that workflow if it is not running.
import type { Client } from '@temporalio/client';
import type { FerryConfig } from '../../lib/config';
import {
  MIGRATION_SLOTS_WORKFLOW,
  MIGRATION_SLOTS_WORKFLOW_ID,
  requestSlotSignal,
  type SlotRequest,
} from '../../workflows/definitions';

export type { SlotRequest };

export async function requestSlot(client: Client, config: FerryConfig, request: SlotRequest): Promise<void> {
  await client.workflow.signalWithStart(MIGRATION_SLOTS_WORKFLOW, {
    workflowId: MIGRATION_SLOTS_WORKFLOW_ID,
    taskQueue: config.taskQueues.conductor,
    args: [{ queue: [], holders: [] }],
    signal: requestSlotSignal,
    signalArgs: [request],
    staticSummary: 'ferry: migration concurrency limits (leases per host and cluster)',
  });
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
