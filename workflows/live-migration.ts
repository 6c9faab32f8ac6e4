// liveMigration: Nova's conductor live migration as a durable workflow. The story is told by
// LiveMigrationTask (live-migration-task.ts); this function only parses the input, wires the
// handlers and runs the task.
//
// Versions: the patch 'xapi-fidelity' marks version 2 (progress from task.progress only, steering
// through the dom0 plugin and the agent, compensation that asks where the VM runs, every wait
// bounded). Runs started before it finish with the frozen live-migration-v1.ts. Inside
// LiveMigrationTask, the patch 'host-inventory' marks version 3 (hosts from the inventory, the
// conductor's steps as local activities, the slots entity asked with updates).
import { ApplicationFailure, patched } from '@temporalio/workflow';
import { LiveMigrationInputSchema, type LiveMigrationInput } from './definitions';
import { LiveMigrationTask } from './live-migration-task';
import { liveMigrationV1 } from './live-migration-v1';
import type { MigrationOutcome } from './outcome';

export type { MigrationOutcome };

export async function liveMigration(rawInput: LiveMigrationInput): Promise<MigrationOutcome> {
  if (!patched('xapi-fidelity')) return liveMigrationV1(rawInput);
  const parsed = LiveMigrationInputSchema.safeParse(rawInput);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
    throw ApplicationFailure.nonRetryable(`invalid liveMigration input: ${problems}`, 'InvalidInput');
  }
  const task = new LiveMigrationTask(parsed.data);
  task.installHandlers();
  return task.execute();
}
