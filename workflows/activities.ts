// Activity stubs with the timeouts and retry policies each kind of step needs.
import { proxyActivities } from '@temporalio/workflow';
import type { ConductorActivities } from '../activities/conductor';
import type { HostActivities } from '../activities/host';

export const conductor = proxyActivities<ConductorActivities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '10s' },
});

/** Look-ups and checks on a host: a host that does not answer within a minute counts as unusable. */
export function hostChecks(queue: string) {
  return proxyActivities<HostActivities>({
    taskQueue: queue,
    scheduleToCloseTimeout: '60s',
    startToCloseTimeout: '30s',
    retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 5 },
  });
}

/** Quick probe of a host for the cluster view: a dead agent must not hold the view up. */
export function hostProbe(queue: string) {
  return proxyActivities<HostActivities>({
    taskQueue: queue,
    scheduleToCloseTimeout: '10s',
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
