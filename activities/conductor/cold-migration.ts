// One operation per instance at a time, whatever its kind (Nova refuses a live migration of an
// instance in the middle of a resize, and a resize of one that is being live-migrated, by its
// task_state). Both kinds have deterministic workflow ids, so the question is one describe.
import type { Client } from '@temporalio/client';
import { coldMigrationWorkflowId } from '../../workflows/cold-migration-definitions';
import { liveMigrationWorkflowId } from '../../workflows/definitions';

/** The workflow id if that workflow runs, else null. */
async function runningWorkflow(client: Client, workflowId: string): Promise<string | null> {
  try {
    const description = await client.workflow.getHandle(workflowId).describe();
    return description.status.name === 'RUNNING' ? workflowId : null;
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return null;
    throw err;
  }
}

/** The id of a running live migration of the instance, or null (a resize must not start beside it). */
export function runningLiveMigration(client: Client, instanceUuid: string): Promise<string | null> {
  return runningWorkflow(client, liveMigrationWorkflowId(instanceUuid));
}

/**
 * The id of a running resize or cold migration of the instance, or null. Its run stays open until
 * it is confirmed or reverted (VERIFY_RESIZE), and a live migration must wait for that too.
 */
export function runningColdMigration(client: Client, instanceUuid: string): Promise<string | null> {
  return runningWorkflow(client, coldMigrationWorkflowId(instanceUuid));
}
