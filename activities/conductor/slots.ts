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
