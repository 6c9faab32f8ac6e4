// Activity stubs with the timeouts and retry policies each kind of step needs.
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { ConductorActivities } from '../activities/conductor';
import type { HostActivities } from '../activities/host';

export const conductor = proxyActivities<ConductorActivities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '10s' },
});

/**
 * The conductor's activities as local activities (version 3): they run on the conductor worker that
 * runs the workflow anyway, inside the workflow task, so each saves a task round trip. Their
 * results are still recorded (markers), so a replay does not run them again.
 */
export const conductorLocal = proxyLocalActivities<ConductorActivities>({
  startToCloseTimeout: '30s',
  localRetryThreshold: '10s',
  retry: { initialInterval: '200ms', maximumInterval: '5s' },
});

/** Seconds a host's agent has to take a check: a live agent takes it at once, a gone one never. */
export const CHECK_START_SECONDS = 15;

/** Destination candidates asked of the scheduler at a time (live and cold migrations alike). */
export const CANDIDATES_PER_ASK = 5;

/**
 * Look-ups and checks on a host: a host whose agent does not take the check within 15 s, or does
 * not answer within a minute, counts as unusable.
 */
export function hostChecks(queue: string) {
  return proxyActivities<HostActivities>({
    taskQueue: queue,
    scheduleToStartTimeout: `${CHECK_START_SECONDS}s`,
    scheduleToCloseTimeout: '60s',
    startToCloseTimeout: '30s',
    retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 5 },
  });
}

/**
 * Probe of a host for the cluster view. A host whose agent does not poll is down at once (no probe);
 * one that polls gets 30 s to answer, so that a busy agent (50 migrations asking at once on 2
 * cores) is not taken for a dead one.
 */
export function hostProbe(queue: string) {
  return proxyActivities<HostActivities>({
    taskQueue: queue,
    scheduleToCloseTimeout: '30s',
    retry: { initialInterval: '500ms', maximumAttempts: 3 },
  });
}

/**
 * Steps that change a host and must eventually happen (preparation, post-migration, compensation):
 * retried until they succeed, however long the host takes to come back.
 */
export function hostSteps(queue: string) {
  return proxyActivities<HostActivities>({
    taskQueue: queue,
    startToCloseTimeout: '60s',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  });
}

/** The transfer: long, heartbeating, cancelled through its heartbeat (abort calls task.cancel). */
export function hostTransfer(queue: string) {
  return proxyActivities<HostActivities>({
    taskQueue: queue,
    startToCloseTimeout: '24h',
    heartbeatTimeout: '5s',
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry: { initialInterval: '1s', maximumInterval: '10s', nonRetryableErrorTypes: ['TASK_CANCELLED'] },
  });
}

/** Ending a leftover transfer before a rollback: as long as stop-and-copy takes, retried until done. */
export function hostSettle(queue: string) {
  return proxyActivities<HostActivities>({
    taskQueue: queue,
    startToCloseTimeout: '1h',
    heartbeatTimeout: '10s',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  });
}

/**
 * Version 2's steps on a host: retried, but only for `seconds` in all. A host (or its agent) that
 * does not answer by then fails the step with a timeout, and the migration stops waiting for it.
 */
export function hostStepsWithin(queue: string, seconds: number, options: { heartbeat?: boolean } = {}) {
  return proxyActivities<HostActivities>({
    taskQueue: queue,
    scheduleToCloseTimeout: `${seconds}s`,
    startToCloseTimeout: options.heartbeat ? '1h' : '60s',
    ...(options.heartbeat ? { heartbeatTimeout: '30s' } : {}),
    retry: { initialInterval: '1s', maximumInterval: '10s' },
  });
}

/**
 * Version 2's transfer: the agent heartbeats every poll of the task; the heartbeat timeout is longer
 * than the slowest XenAPI call the agent allows (20 s), so a slow call is not taken for a dead agent.
 * Bounded by the completion timeout plus a host's absence.
 */
export function hostTransferWithin(queue: string, seconds: number) {
  return proxyActivities<HostActivities>({
    taskQueue: queue,
    scheduleToCloseTimeout: `${Math.ceil(seconds)}s`,
    heartbeatTimeout: '30s',
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry: { initialInterval: '1s', maximumInterval: '10s', nonRetryableErrorTypes: ['TASK_CANCELLED', 'CompletionTimeout', 'ProgressTimeout', 'SourceCopyHalted'] },
  });
}

/** The cleanup workflow's steps: retried for as long as the host takes to come back. */
export function hostStepsUntilDone(queue: string) {
  return proxyActivities<HostActivities>({
    taskQueue: queue,
    startToCloseTimeout: '60s',
    retry: { initialInterval: '5s', maximumInterval: '60s' },
  });
}

