// coldMigration: Nova's resize and cold migrate as a durable workflow. The story is told by
// ColdMigrationTask (cold-migration-task.ts); this function only parses the input, wires the
// handlers and runs the task. Its public interface is cold-migration-definitions.ts.
import { ApplicationFailure } from '@temporalio/workflow';
import { ColdMigrationInputSchema, type ColdMigrationInput } from './cold-migration-definitions';
import { ColdMigrationTask, type ColdMigrationOutcome } from './cold-migration-task';

export type { ColdMigrationOutcome };

export async function coldMigration(rawInput: ColdMigrationInput): Promise<ColdMigrationOutcome> {
  const parsed = ColdMigrationInputSchema.safeParse(rawInput);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
    throw ApplicationFailure.nonRetryable(`invalid coldMigration input: ${problems}`, 'InvalidInput');
  }
  const task = new ColdMigrationTask(parsed.data);
  task.installHandlers();
  return task.execute();
}
