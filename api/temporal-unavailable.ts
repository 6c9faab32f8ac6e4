// Temporal not answering is the API's 503, never a 500: one judgement for every service that
// talks to Temporal (migrations, maintenance, cold migrations).
import { BackendUnavailableError } from './ferry-service';

/** Whether an error (or one of its causes) says Temporal did not answer: gRPC UNAVAILABLE or DEADLINE_EXCEEDED, or a refused connection. */
export function isTemporalUnavailable(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown; message?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === 14 || e.code === 4) return true; // UNAVAILABLE, DEADLINE_EXCEEDED
    if (typeof e.message === 'string' && /ECONNREFUSED|UNAVAILABLE|Deadline exceeded|transport/i.test(e.message)) return true;
  }
  return false;
}

/** Runs `fn`; Temporal not answering becomes a BackendUnavailableError naming `what`. */
export async function guardTemporal<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isTemporalUnavailable(err)) throw new BackendUnavailableError(`Temporal did not answer (${what}): ${(err as Error).message}`);
    throw err;
  }
}
