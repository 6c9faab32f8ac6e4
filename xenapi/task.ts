// Waits for a XenAPI task as xapi's own clients do (xapi-client/tasks.ml, xapi-cli-server/cli_util.ml):
// event.from on the one object ["task/<ref>"], starting from the empty token (the task's current
// record comes back at once) and passing each returned token back. It reports what xapi publishes of
// the task (status, progress 0..1, whether it can still be cancelled), cancels it as soon as the
// AbortSignal fires (without waiting for the event.from in flight), and resolves with its result or
// throws the XenApiError of its error_info. xapi writes no migration figures (bytes, rounds, phase)
// anywhere a client can read them: task.progress is all there is.
import type { XenApiClient } from './client';
import { XenApiCode, XenApiError } from './errors';
import { TaskRecord } from './records';

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
  /**
   * Called with the task's state at the start, on each change xapi reports, and again (same
   * figures) after each event.from that waited `eventTimeoutS` for nothing: a caller that
   * heartbeats or applies a time-based policy from here runs at least that often.
   */
  onProgress?: (p: TaskProgress) => void | Promise<void>;
  /** When it fires, task.cancel is called once, at once; a task past its point of no return keeps going. */
  signal?: AbortSignal;
  /**
   * The longest one event.from waits on the server, in seconds (default 1). The call itself may
   * take that plus the client's per-call timeout: a host that stops answering is noticed then.
   */
  eventTimeoutS?: number;
  /** Called when task.cancel was refused (e.g. OPERATION_NOT_ALLOWED after stop-and-copy began). */
  onCancelRefused?: (err: XenApiError) => void;
}

/** The value inside a task's result, which xapi sends as an XML-RPC `<value>` fragment. */
export function parseTaskResult(result: string): string {
  const m = /^\s*<value>(?:<string>)?([\s\S]*?)(?:<\/string>)?<\/value>\s*$/.exec(result);
  return m?.[1] ?? result;
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

/** Resolves when the signal fires (never without one); `dispose` removes the listener. */
function abortOf(signal?: AbortSignal): { fired: Promise<void>; dispose: () => void } {
  if (!signal) return { fired: new Promise<void>(() => undefined), dispose: () => undefined };
  let onAbort = () => undefined as void;
  const fired = new Promise<void>((resolve) => {
    onAbort = resolve;
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  return { fired, dispose: () => signal.removeEventListener('abort', onAbort) };
}

export async function waitForTask(client: XenApiClient, taskRef: string, options: WaitForTaskOptions = {}): Promise<string> {
  const timeoutS = options.eventTimeoutS ?? 1;
  const classes = [`task/${taskRef}`];
  const abort = abortOf(options.signal);
  let cancelRequested = false;
  const cancel = async () => {
    cancelRequested = true;
    try {
      await client.call('task.cancel', taskRef);
    } catch (err) {
      if (err instanceof XenApiError) options.onCancelRefused?.(err);
      else throw err;
    }
  };
  let token = '';
  let task: TaskRecord | undefined;
  try {
    for (;;) {
      if (options.signal?.aborted && !cancelRequested) await cancel();
      const pending = settle(client.eventFrom(classes, token, timeoutS));
      let batch = cancelRequested ? await pending : await Promise.race([pending, abort.fired.then(() => null)]);
      if (batch === null) {
        // The signal fired while event.from waits: cancel now; the task's change ends that wait.
        await cancel();
        batch = await pending;
      }
      if (!batch.ok) throw batch.error;
      token = batch.value.token;
      const event = batch.value.events.filter((e) => e.ref === taskRef && e.class === 'task').at(-1);
      if (event?.snapshot !== undefined) task = TaskRecord.parse(event.snapshot);
      // Deleted, or not seen yet (the empty token returns no event for a ref that does not exist):
      // get_record says why (HANDLE_INVALID), or has the record after all.
      else if (event || !task) task = await client.getRecord('task', taskRef);
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
    }
  } finally {
    abort.dispose();
  }
}
