// Waits for a XenAPI task: polls it, reports what xapi publishes of it (status, progress 0..1,
// whether it can still be cancelled), cancels it when the AbortSignal fires, and resolves with its
// result or throws the XenApiError of its error_info. xapi writes no migration figures (bytes,
// rounds, phase) anywhere a client can read them: task.progress is all there is.
import type { XenApiClient } from './client';
import { XenApiCode, XenApiError } from './errors';
import type { TaskRecord } from './records';

export interface TaskProgress {
  status: TaskRecord['status'];
  progress: number;
  /**
   * Whether task.cancel is still allowed. xapi makes a migration task not cancellable once the
   * main body of the migration is done (TaskHelper.set_not_cancellable in xapi_vm_migrate.ml):
   * from then on there is no way back to the source.
   */
  cancellable: boolean;
}

export interface WaitForTaskOptions {
  onProgress?: (p: TaskProgress) => void | Promise<void>;
  /** When it fires, task.cancel is called once; a task past its point of no return keeps going. */
  signal?: AbortSignal;
  pollMs?: number;
  /** Called when task.cancel was refused (e.g. OPERATION_NOT_ALLOWED after stop-and-copy began). */
  onCancelRefused?: (err: XenApiError) => void;
}

/** The value inside a task's result, which xapi sends as an XML-RPC `<value>` fragment. */
export function parseTaskResult(result: string): string {
  const m = /^\s*<value>(?:<string>)?([\s\S]*?)(?:<\/string>)?<\/value>\s*$/.exec(result);
  return m?.[1] ?? result;
}

/** Sleeps pollMs, waking early when the signal fires (so a cancel goes out at once). */
function sleepUnlessAborted(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export async function waitForTask(client: XenApiClient, taskRef: string, options: WaitForTaskOptions = {}): Promise<string> {
  const pollMs = options.pollMs ?? 250;
  let cancelRequested = false;
  for (;;) {
    if (options.signal?.aborted && !cancelRequested) {
      cancelRequested = true;
      try {
        await client.call('task.cancel', taskRef);
      } catch (err) {
        if (err instanceof XenApiError) options.onCancelRefused?.(err);
        else throw err;
      }
    }
    const task = await client.getRecord('task', taskRef);
    await options.onProgress?.({
      status: task.status,
      progress: task.progress,
      cancellable: task.allowed_operations.includes('cancel'),
    });
    switch (task.status) {
      case 'success':
        return parseTaskResult(task.result);
      case 'failure':
        throw XenApiError.fromDescription(task.error_info.length ? task.error_info : ['INTERNAL_ERROR', 'task failed'], 'task');
      case 'cancelled':
        throw new XenApiError(XenApiCode.TASK_CANCELLED, [taskRef], 'task');
      default:
        break;
    }
    await sleepUnlessAborted(pollMs, cancelRequested ? undefined : options.signal);
  }
}
