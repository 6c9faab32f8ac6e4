// Sends a control update (abort, force-complete) to a migration workflow. An update is lost when
// the workflow task that accepted it fails, which the server does on purpose when a new event
// (an activity finishing) raced the task (UnhandledCommand); the update is then safe to send again.
import type { WorkflowHandle } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';

function lostWithWorkflowTask(err: unknown): boolean {
  const text = `${(err as Error)?.message ?? ''} ${String((err as { cause?: unknown })?.cause ?? '')}`;
  return text.includes('unexpected workflow task failure');
}

export async function executeControlUpdate<Ret, Args extends unknown[]>(
  handle: WorkflowHandle,
  update: UpdateDefinition<Ret, Args>,
  ...args: Args
): Promise<Ret> {
  // The update's name is what travels; the SDK's overloads cannot express "any argument list".
  const send = handle.executeUpdate.bind(handle) as unknown as (name: string, options: { args: unknown[] }) => Promise<Ret>;
  for (let attempt = 1; ; attempt++) {
    try {
      return await send(update.name, { args });
    } catch (err) {
      if (attempt >= 5 || !lostWithWorkflowTask(err)) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}
