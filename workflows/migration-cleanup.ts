// migrationCleanup: what a migration could not undo or finish because a host (or its agent) did not
// answer within the policy's hostTimeout. The migration ended in Nova's error status and gave its
// slots back; this workflow waits for the host as long as it takes and runs the steps left, each
// of which is idempotent and never touches a VM that runs where it should.
import { log, setCurrentDetails } from '@temporalio/workflow';
import type { RollbackAtDestinationInput, RollbackSourceInput, InstanceRef } from '../activities/types';
import { hostStepsUntilDone } from './activities';

export const MIGRATION_CLEANUP_WORKFLOW = 'migrationCleanup';

export type CleanupStep =
  | { activity: 'rollbackLiveMigrationAtDestination'; args: RollbackAtDestinationInput }
  | { activity: 'rollbackLiveMigration'; args: RollbackSourceInput }
  | { activity: 'postLiveMigration'; args: InstanceRef };

export interface MigrationCleanupInput {
  migrationWorkflowId: string;
  instanceUuid: string;
  host: string;
  queue: string;
  steps: CleanupStep[];
}

export async function migrationCleanup(input: MigrationCleanupInput): Promise<{ done: string[] }> {
  const on = hostStepsUntilDone(input.queue);
  const done: string[] = [];
  for (const step of input.steps) {
    setCurrentDetails(`waiting for **${input.host}** to ${step.activity} of \`${input.instanceUuid}\` (left by ${input.migrationWorkflowId}); done: ${done.join(', ') || 'nothing yet'}`);
    const summary = { summary: `${step.activity} of ${input.instanceUuid} on ${input.host}` };
    if (step.activity === 'rollbackLiveMigrationAtDestination') await on.rollbackLiveMigrationAtDestination.executeWithOptions(summary, [step.args]);
    else if (step.activity === 'rollbackLiveMigration') await on.rollbackLiveMigration.executeWithOptions(summary, [step.args]);
    else await on.postLiveMigration.executeWithOptions(summary, [step.args]);
    done.push(step.activity);
    log.info('cleanup step done', { host: input.host, step: step.activity });
  }
  setCurrentDetails(`done on **${input.host}**: ${done.join(', ')}`);
  return { done };
}
