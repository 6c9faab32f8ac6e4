// coldMigrationCleanup: what a cold migration could not undo or finish because a host (or its
// agent) did not answer within the policy's hostTimeout (as migrationCleanup does for live
// migrations). The migration ended in Nova's error status and gave its slot back; this workflow
// waits for the host as long as it takes and runs the steps left, each idempotent.
import { log, setCurrentDetails } from '@temporalio/workflow';
import type { CleanSourceInput, FinishRevertInput, RevertAtDestinationInput } from '../activities/host/cold-migration';
import { hostStepsUntilDone } from './activities';

export const COLD_MIGRATION_CLEANUP_WORKFLOW = 'coldMigrationCleanup';

export type ColdCleanupStep =
  | { activity: 'revertMigrationAtDestination'; args: RevertAtDestinationInput }
  | { activity: 'finishRevertMigration'; args: FinishRevertInput }
  | { activity: 'confirmMigration'; args: CleanSourceInput };

export interface ColdMigrationCleanupInput {
  migrationWorkflowId: string;
  instanceUuid: string;
  host: string;
  queue: string;
  steps: ColdCleanupStep[];
}

export async function coldMigrationCleanup(input: ColdMigrationCleanupInput): Promise<{ done: string[] }> {
  const on = hostStepsUntilDone(input.queue);
  const done: string[] = [];
  for (const step of input.steps) {
    setCurrentDetails(`waiting for **${input.host}** to ${step.activity} of \`${input.instanceUuid}\` (left by ${input.migrationWorkflowId}); done: ${done.join(', ') || 'nothing yet'}`);
    const summary = { summary: `${step.activity} of ${input.instanceUuid} on ${input.host}` };
    if (step.activity === 'revertMigrationAtDestination') await on.revertMigrationAtDestination.executeWithOptions(summary, [step.args]);
    else if (step.activity === 'finishRevertMigration') await on.finishRevertMigration.executeWithOptions(summary, [step.args]);
    else await on.confirmMigration.executeWithOptions(summary, [step.args]);
    done.push(step.activity);
    log.info('cold migration cleanup step done', { host: input.host, step: step.activity });
  }
  setCurrentDetails(`done on **${input.host}**: ${done.join(', ')}`);
  return { done };
}
