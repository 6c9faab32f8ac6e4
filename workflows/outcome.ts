// What a live migration's run returns, and how a failure's cause is read: shared by every version
// of the workflow.

import type { NovaMigrationStatus } from './definitions';

export interface MigrationOutcome {
  status: NovaMigrationStatus;
  sourceHost: string | null;
  destHost: string | null;
  bytesSent: number;
  downtimeMs: number | null;
  transferMs: number;
  message: string | null;
}

/** The real reason of a failure: an ActivityFailure wraps the activity's ApplicationFailure. */
export function describeFailure(err: unknown): { type: string; message: string } {
  let e = err as { cause?: unknown; type?: string; message?: string; name?: string };
  while (e.cause && !(e as { type?: string }).type) e = e.cause as typeof e;
  return { type: e.type ?? e.name ?? 'Error', message: e.message ?? String(err) };
}
