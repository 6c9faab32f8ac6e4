// The conductor's side of a cold migration: one operation per instance at a time, whatever its
// kind. Both kinds have deterministic workflow ids, so the question is one describe.
import type { Client } from '@temporalio/client';
import { liveMigrationWorkflowId } from '../../workflows/definitions';

/** The id of a running live migration of the instance, or null (a resize must not start beside it). */
export async function runningLiveMigration(client: Client, instanceUuid: string): Promise<string | null> {
  const workflowId = liveMigrationWorkflowId(instanceUuid);
  try {
    const description = await client.workflow.getHandle(workflowId).describe();
    return description.status.name === 'RUNNING' ? workflowId : null;
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return null;
    throw err;
  }
}
