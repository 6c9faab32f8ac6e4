// The critical path of a workflow run, read from its history's event timestamps: what the run
// waited for, from its start to its close, as consecutive pieces that add up to the whole.
//
// Walked backwards from the close: the workflow task that closed the run was scheduled by an event
// (an activity that closed, a signal, a timer); an activity was scheduled by the workflow task whose
// completion carried its command; a signal is waited for from the last workflow task before it.
// Work that ran beside the path (the first describeHost of three in parallel, the workflow tasks a
// progress signal wakes during the transfer) is not on it. Each piece:
//   workflow task  latency: from the event that woke the workflow to the task's start on the worker
//                  (Temporal's dispatch, or waiting for a task already running); run: on the worker.
//   activity       queue: from the command's workflow task completing to the activity's start on its
//                  worker (dispatch and retries); run: start to close (its own work).
//   signal, timer  from the last workflow task before it to the event.
// Local activities run inside a workflow task (its run time includes them): each workflow task lists
// those its completion recorded (markers). Their own time is not read from the markers: the SDK's
// schedule and completion times there do not come from one clock (a completion can precede its
// schedule); bench/profile.ts times them in-process instead.
import { eventMs, type HistoryEvent } from './migrations';

export type PieceKind = 'start' | 'workflow task' | 'activity' | 'signal' | 'timer' | 'other' | 'close';

export interface Piece {
  kind: PieceKind;
  /** The activity type, signal name, or what woke a workflow task (`after <label>`). */
  label: string;
  /** Milliseconds from the run's start to the piece's start. */
  atMs: number;
  /** Dispatch: a workflow task's latency, an activity's queue time; for a signal or timer, the whole wait. */
  waitMs: number;
  /** Work: a workflow task's or an activity's run time. */
  runMs: number;
  /** For an activity: its attempt. */
  attempt?: number;
  /** For a workflow task: the local activities it ran (their time is part of runMs). */
  locals?: LocalActivity[];
}

export interface LocalActivity {
  type: string;
  attempt: number;
}

export interface CriticalPath {
  totalMs: number;
  pieces: Piece[];
  workflowTasks: number;
  activities: number;
  localActivities: number;
  events: number;
}

const id = (e: HistoryEvent | undefined): number => Number(e?.eventId ?? 0);

/** The local activities whose markers a workflow task's completion recorded (the TypeScript SDK's core_local_activity). */
function localActivities(events: HistoryEvent[]): Map<number, LocalActivity[]> {
  const byTask = new Map<number, LocalActivity[]>();
  for (const e of events) {
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName !== 'core_local_activity') continue;
    const data = marker.details?.data?.payloads?.[0]?.data;
    if (!data) continue;
    try {
      const d = JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string; attempt?: number };
      const task = Number(marker.workflowTaskCompletedEventId ?? 0);
      byTask.set(task, [...(byTask.get(task) ?? []), { type: d.activity_type ?? 'local activity', attempt: d.attempt ?? 1 }]);
    } catch {
      // a marker of another shape: not counted
    }
  }
  return byTask;
}
const ref = (v: unknown): number => Number(v ?? 0);

/** What can wake a workflow (schedule a workflow task). */
function wakes(e: HistoryEvent): boolean {
  return (
    e.activityTaskCompletedEventAttributes != null ||
    e.activityTaskFailedEventAttributes != null ||
    e.activityTaskTimedOutEventAttributes != null ||
    e.activityTaskCanceledEventAttributes != null ||
    e.workflowExecutionSignaledEventAttributes != null ||
    e.timerFiredEventAttributes != null ||
    e.workflowExecutionStartedEventAttributes != null ||
    e.workflowTaskFailedEventAttributes != null ||
    e.workflowTaskTimedOutEventAttributes != null ||
    e.childWorkflowExecutionCompletedEventAttributes != null ||
    e.childWorkflowExecutionStartedEventAttributes != null ||
    e.externalWorkflowExecutionSignaledEventAttributes != null ||
    e.workflowExecutionUpdateAcceptedEventAttributes != null
  );
}

function activityClose(e: HistoryEvent): { scheduledEventId?: unknown; startedEventId?: unknown } | null {
  return (
    e.activityTaskCompletedEventAttributes ??
    e.activityTaskFailedEventAttributes ??
    e.activityTaskTimedOutEventAttributes ??
    e.activityTaskCanceledEventAttributes ??
    null
  );
}

export function criticalPath(events: HistoryEvent[]): CriticalPath {
  const byId = new Map(events.map((e) => [id(e), e]));
  const t0 = eventMs(events[0]?.eventTime);
  const at = (e: HistoryEvent | undefined) => eventMs(e?.eventTime) - t0;
  const completedTasks = events.filter((e) => e.workflowTaskCompletedEventAttributes != null);
  const close = events[events.length - 1] as HistoryEvent;
  const pieces: Piece[] = [];
  const locals = localActivities(events);

  // The workflow task whose completion closed the run, or else the last one that completed.
  let task: HistoryEvent | undefined = completedTasks[completedTasks.length - 1];
  if (task) pieces.unshift({ kind: 'close', label: 'run closed', atMs: at(task), waitMs: at(close) - at(task), runMs: 0 });
  let guard = events.length + 1;
  while (task && guard-- > 0) {
    const attrs = task.workflowTaskCompletedEventAttributes;
    const scheduled = byId.get(ref(attrs?.scheduledEventId));
    const started = byId.get(ref(attrs?.startedEventId));
    // The event that woke the workflow: the last one before the task was scheduled that can.
    let trigger: HistoryEvent | undefined;
    for (let i = id(scheduled) - 1; i >= 1; i--) {
      const e = byId.get(i);
      if (e && wakes(e)) {
        trigger = e;
        break;
      }
    }
    const woke = trigger ? at(trigger) : 0;
    const label = describe(trigger, byId);
    const ran = locals.get(id(task));
    pieces.unshift({
      kind: 'workflow task',
      label: `after ${label}`,
      atMs: woke,
      waitMs: at(started) - woke,
      runMs: at(task) - at(started),
      ...(ran ? { locals: ran } : {}),
    });
    if (!trigger || trigger.workflowExecutionStartedEventAttributes) {
      pieces.unshift({ kind: 'start', label: 'run started', atMs: 0, waitMs: woke, runMs: 0 });
      break;
    }
    const closed = activityClose(trigger);
    if (closed) {
      const sched = byId.get(ref(closed.scheduledEventId));
      const start = byId.get(ref(closed.startedEventId));
      const commandTask = byId.get(ref(sched?.activityTaskScheduledEventAttributes?.workflowTaskCompletedEventId));
      const from = commandTask ? at(commandTask) : at(sched);
      const startedAt = start ? at(start) : at(trigger);
      pieces.unshift({
        kind: 'activity',
        label: label,
        atMs: from,
        waitMs: startedAt - from,
        runMs: at(trigger) - startedAt,
        attempt: start?.activityTaskStartedEventAttributes?.attempt ?? undefined,
      });
      task = commandTask;
      continue;
    }
    if (trigger.timerFiredEventAttributes) {
      const startedTimer = byId.get(ref(trigger.timerFiredEventAttributes.startedEventId));
      const commandTask = byId.get(ref(startedTimer?.timerStartedEventAttributes?.workflowTaskCompletedEventId));
      const from = commandTask ? at(commandTask) : at(startedTimer);
      pieces.unshift({ kind: 'timer', label, atMs: from, waitMs: woke - from, runMs: 0 });
      task = commandTask;
      continue;
    }
    // A signal or anything else: waited for since the last workflow task that completed before it.
    const before = completedTasks.filter((e) => id(e) < id(trigger)).pop();
    const from = before ? at(before) : 0;
    pieces.unshift({ kind: trigger.workflowExecutionSignaledEventAttributes ? 'signal' : 'other', label, atMs: from, waitMs: woke - from, runMs: 0 });
    task = before;
    if (!before) pieces.unshift({ kind: 'start', label: 'run started', atMs: 0, waitMs: 0, runMs: 0 });
  }
  return {
    totalMs: at(close),
    pieces,
    workflowTasks: completedTasks.length,
    activities: events.filter((e) => e.activityTaskScheduledEventAttributes != null).length,
    localActivities: [...locals.values()].reduce((a, l) => a + l.length, 0),
    events: events.length,
  };
}

/** An activity's type, a signal's name, or the event's kind. */
function describe(e: HistoryEvent | undefined, byId: Map<number, HistoryEvent>): string {
  if (!e) return 'nothing';
  const closed = activityClose(e);
  if (closed) {
    const name = byId.get(ref(closed.scheduledEventId))?.activityTaskScheduledEventAttributes?.activityType?.name ?? 'activity';
    if (e.activityTaskCompletedEventAttributes) return name;
    return `${name} (${e.activityTaskFailedEventAttributes ? 'failed' : e.activityTaskTimedOutEventAttributes ? 'timed out' : 'cancelled'})`;
  }
  if (e.workflowExecutionSignaledEventAttributes) return `signal ${e.workflowExecutionSignaledEventAttributes.signalName ?? ''}`;
  if (e.timerFiredEventAttributes) return 'timer';
  if (e.workflowExecutionStartedEventAttributes) return 'start';
  const kind = Object.keys(e).find((k) => k.endsWith('EventAttributes') && (e as Record<string, unknown>)[k] != null);
  return kind?.replace(/EventAttributes$/, '') ?? 'event';
}
