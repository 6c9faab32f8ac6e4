// Turns an XML-RPC call on one member's endpoint into a XenAPI method call: injected failures
// first, then method lookup (MESSAGE_METHOD_UNKNOWN), session check against the pool's sessions
// (SESSION_INVALID), arity (MESSAGE_PARAMETER_COUNT_MISMATCH, counting the session like xapi),
// and Async.* as tasks in the pool's database.
import { XenApiError } from '../xenapi/errors';
import { buildMethods, fieldMethod, resultXml, type Method } from './api';
import type { SimHost } from './host';
import { addMigrationMethods } from './migration';
import { addStorageMethods } from './storage-methods';

export function createDispatcher(host: SimHost): (method: string, params: unknown[]) => Promise<unknown> {
  const pool = host.pool;
  const methods = buildMethods(host);
  addMigrationMethods(pool, methods);
  addStorageMethods(host, methods);

  return async (method, params) => {
    const isAsync = method.startsWith('Async.');
    const injected = host.faults.takeFailure(method);
    if (injected && isAsync && pool.sessions.has(String(params[0]))) {
      // As xapi would: the call returns a task, and the task fails.
      const taskRef = pool.createTask(method, host.hostRef);
      pool.finishTask(taskRef, 'failure', '', [injected.code, ...injected.params]);
      return taskRef;
    }
    if (injected) throw new XenApiError(injected.code, injected.params, method);
    const name = isAsync ? method.slice('Async.'.length) : method;
    const def: Method | undefined = methods.get(name) ?? fieldMethod(host, name);
    if (!def || (isAsync && def.noSession)) throw new XenApiError('MESSAGE_METHOD_UNKNOWN', [method]);
    const [min, max] = typeof def.arity === 'number' ? [def.arity, def.arity] : def.arity;
    const extra = def.noSession ? 0 : 1;
    if (params.length < min + extra || params.length > max + extra) {
      throw new XenApiError('MESSAGE_PARAMETER_COUNT_MISMATCH', [method, String(max + extra), String(params.length)]);
    }
    let session = '';
    if (!def.noSession) {
      session = String(params[0]);
      if (!pool.sessions.has(session)) throw new XenApiError('SESSION_INVALID', [session]);
    }
    const args = params.slice(extra);
    if (!isAsync) return (await def.fn(args, { method, session })) ?? '';

    const taskRef = pool.createTask(method, host.hostRef);
    void (async () => {
      try {
        const value = await def.fn(args, { method, session, taskRef });
        pool.finishTask(taskRef, 'success', resultXml(value));
      } catch (err) {
        const desc = err instanceof XenApiError ? err.errorDescription : ['INTERNAL_ERROR', (err as Error).message];
        if (!(err instanceof XenApiError)) host.log.error({ err, method }, 'async call failed');
        pool.finishTask(taskRef, desc[0] === 'TASK_CANCELLED' ? 'cancelled' : 'failure', '', desc);
      }
    })();
    return taskRef;
  };
}
