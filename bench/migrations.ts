// Migrations as the benchmarks drive them: started through Temporal as any client would (the public
// interface of the README), the simulator's own figures of the transfer (bytes, time: what xapi
// does not publish, read from the simulator's admin port, never by ferry's product code), and the
// timestamps of a workflow history.
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { InstanceUuid } from '../lib/search-attributes';
import type { Stack } from '../lib/stack';
import type { AdminClient, MigrationFigures } from '../simulator/admin-client';
import { LIVE_MIGRATION_WORKFLOW, liveMigrationWorkflowId, type LiveMigrationInput } from '../workflows/definitions';
import type { MigrationOutcome } from '../workflows/outcome';

export type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export function startMigration(client: Client, taskQueue: string, input: LiveMigrationInput): Promise<WorkflowHandle> {
  return client.workflow.start(LIVE_MIGRATION_WORKFLOW, {
    taskQueue,
    workflowId: liveMigrationWorkflowId(input.instanceUuid),
    args: [input],
    typedSearchAttributes: [{ key: InstanceUuid, value: input.instanceUuid }],
  });
}

/** The newest finished transfer of a VM that `source` sent (the simulator keeps the last 50). */
export async function lastTransfer(source: AdminClient, vmUuid: string): Promise<MigrationFigures> {
  const figures = (await source.migrations()).filter((m) => m.vmUuid === vmUuid && m.status === 'success');
  const last = figures[figures.length - 1];
  if (!last || last.totalMs === null) throw new Error(`the simulator has no finished transfer of ${vmUuid} from ${source.url}`);
  return last;
}

export interface TimedMigration {
  handle: WorkflowHandle;
  outcome: MigrationOutcome;
  /** Client side: from just before the start request to the result in hand. */
  e2eMs: number;
  /** Server side: the run's start and close times as Temporal recorded them. */
  serverMs: number;
  /** The simulator's transfer, from the migrate call's task starting to the VM resumed on the destination. */
  transfer: MigrationFigures;
  /** e2eMs minus the simulator's transfer time: what ferry and Temporal add. */
  overheadMs: number;
}

/** Live-migrates a VM from `source` to `dest` through the stack and times it. Throws unless it completed. */
export async function timedMigration(stack: Stack, vmUuid: string, source: string, dest: string): Promise<TimedMigration> {
  const started = performance.now();
  const handle = await startMigration(stack.client, stack.config.taskQueues.conductor, { instanceUuid: vmUuid, host: dest });
  const outcome = (await handle.result()) as MigrationOutcome;
  const e2eMs = performance.now() - started;
  if (outcome.status !== 'completed') throw new Error(`migration of ${vmUuid} ${source} -> ${dest} ended ${outcome.status}: ${outcome.message ?? ''}`);
  const transfer = await lastTransfer(stack.sims.host(source).admin, vmUuid);
  const described = await handle.describe();
  const serverMs = (described.closeTime?.getTime() ?? NaN) - described.startTime.getTime();
  return { handle, outcome, e2eMs, serverMs, transfer, overheadMs: e2eMs - Number(transfer.totalMs) };
}

/** A history timestamp in milliseconds since the epoch (with the sub-millisecond part). */
export function eventMs(t: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  return t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : NaN;
}
