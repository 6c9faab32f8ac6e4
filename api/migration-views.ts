// A migration's view built from what Temporal keeps about its run, without asking the workflow: the
// memo (the status board writes the whole view into it at each change of status and each step of
// progress, so a closed run's memo is its final view), the search attributes, the run's status and
// times, and the transfer's latest heartbeat. Pure functions of a visibility row or a describe().
import type { WorkflowExecutionDescription, WorkflowExecutionInfo } from '@temporalio/client';
import { arrayFromPayloads, defaultPayloadConverter } from '@temporalio/common';
import type { TransferHeartbeat } from '../activities/types';
import { DestHost, InstanceUuid, MigrationStatus, SourceHost } from '../lib/search-attributes';
import { FINAL_STATUSES, MIGRATION_STATUSES, newMigrationView, type MigrationStatusView, type NovaMigrationStatus } from '../workflows/definitions';
import type { MigrationMemo } from '../workflows/status-board';
import type { MigrationSummary } from './ferry-service';

/** A visibility row or a describe() answer: both carry status, times, memo and search attributes. */
export type ExecInfo = Omit<WorkflowExecutionInfo, 'raw'>;

/** How a view was built, which says whether it may be kept. */
export interface BuiltView {
  view: MigrationStatusView;
  /**
   * The run is closed and the view is the one it ended with (or the way it was ended, for a run
   * terminated before it said): it never changes again, so it may be cached for good.
   */
  final: boolean;
}

export function executionStatus(info: Pick<ExecInfo, 'status'>): NovaMigrationStatus {
  switch (info.status.name) {
    case 'RUNNING':
      return 'running';
    case 'COMPLETED':
      return 'completed';
    case 'CANCELLED':
      return 'cancelled';
    case 'FAILED':
      return 'failed';
    default:
      return 'error'; // TERMINATED, TIMED_OUT, CONTINUED_AS_NEW, UNKNOWN
  }
}

function keyword(info: ExecInfo, key: typeof InstanceUuid): string | null {
  const value = info.typedSearchAttributes?.get(key);
  return typeof value === 'string' ? value : null;
}

function isRunning(info: Pick<ExecInfo, 'status'>): boolean {
  return info.status.name === 'RUNNING';
}

function statusOf(info: ExecInfo): NovaMigrationStatus {
  const fromAttribute = keyword(info, MigrationStatus);
  if (fromAttribute && (MIGRATION_STATUSES as readonly string[]).includes(fromAttribute)) {
    const status = fromAttribute as NovaMigrationStatus;
    // A run that ended without recording its final status (terminated, timed out) is an error.
    if (isRunning(info) || FINAL_STATUSES.has(status)) return status;
  }
  return executionStatus(info);
}

export function summaryOf(info: ExecInfo): MigrationSummary {
  return {
    workflowId: info.workflowId,
    runId: info.runId,
    instanceUuid: keyword(info, InstanceUuid) ?? info.workflowId.replace(/^live-migration-/, ''),
    status: statusOf(info),
    sourceHost: keyword(info, SourceHost),
    destHost: keyword(info, DestHost),
    // A run that recorded its final status is only closing: the migration is over.
    running: isRunning(info) && !FINAL_STATUSES.has(statusOf(info)),
    startedAt: info.startTime.toISOString(),
  };
}

/** The memo as the status board writes it; null when the run has none (yet). */
export function memoOf(info: Pick<ExecInfo, 'memo'>): MigrationMemo | null {
  const memo = info.memo as Partial<MigrationMemo> | undefined;
  return memo && typeof memo.status === 'string' ? (memo as MigrationMemo) : null;
}

/** The memo's view, when the run wrote one (runs started before it carried only a few keys). */
function memoView(info: ExecInfo): MigrationStatusView | null {
  const view = memoOf(info)?.view;
  if (!view || typeof view !== 'object' || view.uuid !== info.runId) return null;
  // Runs from before migration policies wrote no `policy`: none applied that anyone recorded.
  return view.policy === undefined ? { ...view, policy: null } : view;
}

/** A run that closed before the migration said how it ended (terminated, timed out): its last view says it runs. */
export function endedEarly(view: MigrationStatusView, info: Pick<ExecInfo, 'status'>): MigrationStatusView {
  const name = info.status.name;
  return {
    ...view,
    status: executionStatus(info),
    phase: 'done',
    error: view.error ?? { type: `Workflow${name}`, message: `the workflow run was ${name.toLowerCase()} before the migration ended; see its history` },
    abortable: false,
    notAbortableReason: `the workflow run was ${name.toLowerCase()}`,
  };
}

/**
 * The view from the memo and the search attributes. For a closed run whose memo holds its view,
 * that view is final. For a running one it is the view as of its last change of status or step of
 * progress, with the hosts from the search attributes (written as soon as they are known).
 */
export function viewFromInfo(info: ExecInfo): BuiltView {
  const recorded = memoView(info);
  if (!isRunning(info)) {
    if (recorded && FINAL_STATUSES.has(recorded.status) && recorded.phase === 'done') return { view: recorded, final: true };
    if (recorded) return { view: endedEarly(recorded, info), final: true };
    return { view: fallbackView(info), final: false };
  }
  if (!recorded) return { view: startingView(info), final: false };
  const summary = summaryOf(info);
  const source = recorded.source_compute ?? summary.sourceHost;
  const dest = recorded.dest_compute ?? summary.destHost;
  return {
    view: {
      ...recorded,
      status: summary.status ?? recorded.status,
      source_compute: source,
      source_node: recorded.source_node ?? source,
      dest_compute: dest,
      dest_host: recorded.dest_host ?? dest,
      dest_node: recorded.dest_node ?? dest,
    },
    final: false,
  };
}

/** A running migration that has not written its memo yet (it is validating): who, where, since when. */
function startingView(info: ExecInfo): MigrationStatusView {
  const summary = summaryOf(info);
  const memo = memoOf(info);
  return newMigrationView({
    runId: info.runId,
    workflowId: info.workflowId,
    instanceUuid: summary.instanceUuid,
    createdAt: info.startTime.toISOString(),
    status: summary.status ?? 'accepted',
    sourceHost: summary.sourceHost ?? memo?.source ?? null,
    destHost: summary.destHost ?? memo?.destination ?? null,
  });
}

/** What visibility and an older run's memo tell when neither the memo's view nor the workflow answers. */
export function fallbackView(info: ExecInfo): MigrationStatusView {
  const summary = summaryOf(info);
  const memo = memoOf(info);
  const status = summary.status ?? executionStatus(info);
  const final = !summary.running;
  const error = memo?.error ?? null;
  return {
    ...newMigrationView({
      runId: info.runId,
      workflowId: info.workflowId,
      instanceUuid: summary.instanceUuid,
      createdAt: info.startTime.toISOString(),
      updatedAt: (info.closeTime ?? info.startTime).toISOString(),
      status,
      phase: final ? 'done' : 'validating',
      sourceHost: summary.sourceHost ?? memo?.source ?? null,
      destHost: summary.destHost ?? memo?.destination ?? null,
    }),
    error:
      status === 'failed' || status === 'error' || (status === 'cancelled' && error)
        ? { type: error ? 'Error' : `Workflow${info.status.name}`, message: error ?? 'the status query did not answer; see the workflow history' }
        : null,
    abortable: false,
    notAbortableReason: final ? `the migration is ${status}` : 'the workflow does not answer its status query',
  };
}

/**
 * The workflow hears of a transfer's progress only in steps (its history stays bounded); the
 * transfer's latest heartbeat, which Temporal keeps with the pending activity, has it now.
 */
export function withLiveProgress(described: Pick<WorkflowExecutionDescription, 'raw'>, view: MigrationStatusView): MigrationStatusView {
  if (view.phase !== 'precopy' && view.phase !== 'stop_and_copy') return view;
  const transfer = described.raw.pendingActivities?.find((a) => a.activityType?.name === 'migrateSend');
  const payloads = transfer?.heartbeatDetails?.payloads;
  if (!payloads?.length) return view;
  const [beat] = arrayFromPayloads(defaultPayloadConverter, payloads) as [TransferHeartbeat | undefined];
  const p = beat?.progress;
  if (!p || p.fraction < (view.progress?.fraction ?? 0)) return view;
  return {
    ...view,
    progress: { ...view.progress, ...p },
    memory_processed_bytes: p.memoryProcessedBytes,
    memory_remaining_bytes: p.memoryRemainingBytes,
    disk_processed_bytes: p.diskProcessedBytes,
    disk_remaining_bytes: p.diskRemainingBytes,
  };
}

/** Seconds between two ISO times of a memo's timeline, or null when either is missing. */
export function secondsBetween(from: string | undefined, to: string | undefined): number | null {
  if (!from || !to) return null;
  const s = (Date.parse(to) - Date.parse(from)) / 1000;
  return Number.isFinite(s) && s >= 0 ? s : null;
}
