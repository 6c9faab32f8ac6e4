// Nova's instance actions (os-instance-actions, `openstack server event list/show`) from a migration's
// workflow history: one action `live-migration` per migration, one event per step. A step a host's
// agent ran is `compute_<step>` (Nova's compute manager names where they exist: migrateSend is
// compute_live_migration, assertCanMigrate compute_check_can_live_migrate_source); the conductor's
// whole task is `conductor_live_migrate_instance`, as in Nova, and its scheduling
// `conductor_select_destinations`. Pure functions of the history's events, so they are tested
// without a server.
import type { temporal } from '@temporalio/proto';
import type { InstanceActionEvent } from './ferry-service';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
type Failure = temporal.api.failure.v1.IFailure;

/** The request id of a migration's action: stable, derived from the migration's uuid (its run id). */
export function requestIdOf(migrationUuid: string): string {
  return `req-${migrationUuid}`;
}

/** The migration uuid a request id names, or null when it is not one of ferry's. */
export function migrationUuidOf(requestId: string): string | null {
  const m = /^req-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i.exec(requestId);
  return m ? (m[1] as string).toLowerCase() : null;
}

/** Host steps whose Nova name is not compute_<snake_case of the activity>. */
const NOVA_NAMES: Record<string, string> = {
  migrateSend: 'live_migration',
  assertCanMigrate: 'check_can_live_migrate_source',
  logoutMigrateReceive: 'check_can_live_migrate_destination_cleanup',
  forceCompleteGuest: 'live_migration_force_complete',
  settleMigrationTask: 'live_migration_abort',
};

/** The conductor's activities that are steps of the migration (the others are its bookkeeping: policy, slots). */
const CONDUCTOR_STEPS: Record<string, string> = {
  findDestination: 'conductor_select_destinations',
};

export const CONDUCTOR_EVENT = 'conductor_live_migrate_instance';

const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Nova's event name of an activity run on `taskQueue`, or null when it is not a step to show. */
export function novaEventName(activityType: string, taskQueue: string, hostPrefix: string): string | null {
  if (taskQueue.startsWith(hostPrefix)) return `compute_${NOVA_NAMES[activityType] ?? snake(activityType)}`;
  return CONDUCTOR_STEPS[activityType] ?? null;
}

function timeOf(event: HistoryEvent): string {
  const t = event.eventTime;
  const ms = t ? Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : 0;
  return new Date(ms).toISOString();
}

export interface HistoryReading {
  /** The steps, newest first, the conductor's whole task included. */
  events: InstanceActionEvent[];
  /** When the workflow started and when its history last changed. */
  startTime: string | null;
  updatedAt: string | null;
}

/**
 * Reads the steps out of a liveMigration run's history. `describeFailure` turns a failed step's
 * failure (possibly encoded by the payload codec) into its text; `conductorResult` is the
 * migration's outcome for the conductor's event (null while it runs).
 */
export async function readHistory(
  history: HistoryEvent[],
  options: {
    hostPrefix: string;
    describeFailure: (failure: Failure) => Promise<string>;
    conductorResult: { result: 'Success' | 'Error'; traceback: string | null } | null;
  },
): Promise<HistoryReading> {
  const steps = new Map<string, InstanceActionEvent>();
  let startTime: string | null = null;
  let closeTime: string | null = null;
  let updatedAt: string | null = null;
  const finish = async (scheduledEventId: unknown, event: HistoryEvent, result: 'Success' | 'Error', failure?: Failure | null) => {
    const step = steps.get(String(scheduledEventId));
    if (!step) return;
    step.finishTime = timeOf(event);
    step.result = result;
    if (failure) step.traceback = await options.describeFailure(failure);
  };
  for (const event of history) {
    updatedAt = timeOf(event);
    if (event.workflowExecutionStartedEventAttributes) startTime = timeOf(event);
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) {
      const queue = scheduled.taskQueue?.name ?? '';
      const name = novaEventName(scheduled.activityType?.name ?? '', queue, options.hostPrefix);
      if (name) {
        steps.set(String(event.eventId), {
          event: name,
          host: queue.startsWith(options.hostPrefix) ? queue.slice(options.hostPrefix.length) : null,
          startTime: timeOf(event),
          finishTime: null,
          result: null,
          traceback: null,
        });
      }
    }
    const a = event;
    if (a.activityTaskCompletedEventAttributes) await finish(a.activityTaskCompletedEventAttributes.scheduledEventId, a, 'Success');
    if (a.activityTaskFailedEventAttributes) await finish(a.activityTaskFailedEventAttributes.scheduledEventId, a, 'Error', a.activityTaskFailedEventAttributes.failure);
    if (a.activityTaskTimedOutEventAttributes) await finish(a.activityTaskTimedOutEventAttributes.scheduledEventId, a, 'Error', a.activityTaskTimedOutEventAttributes.failure);
    if (a.activityTaskCanceledEventAttributes) await finish(a.activityTaskCanceledEventAttributes.scheduledEventId, a, 'Error');
    if (
      a.workflowExecutionCompletedEventAttributes ||
      a.workflowExecutionFailedEventAttributes ||
      a.workflowExecutionCanceledEventAttributes ||
      a.workflowExecutionTerminatedEventAttributes ||
      a.workflowExecutionTimedOutEventAttributes ||
      a.workflowExecutionContinuedAsNewEventAttributes
    ) {
      closeTime = timeOf(a);
    }
  }
  const events = [...steps.values()];
  if (startTime) {
    const ended = closeTime !== null && options.conductorResult !== null;
    events.push({
      event: CONDUCTOR_EVENT,
      host: null,
      startTime,
      finishTime: ended ? closeTime : null,
      result: ended ? (options.conductorResult?.result ?? null) : null,
      traceback: ended ? (options.conductorResult?.traceback ?? null) : null,
    });
  }
  // Nova lists an action's events newest first (created_at descending).
  events.sort((x, y) => (x.startTime < y.startTime ? 1 : x.startTime > y.startTime ? -1 : 0));
  return { events, startTime, updatedAt };
}
