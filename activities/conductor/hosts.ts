// Is a host's agent alive? Nova asks its service heartbeats; ferry asks Temporal whether the host's
// queue has an activity poller seen recently (the other half, "its XenAPI answers", is the agent's
// inventory report). Asked of a few hosts at a time (the scheduler's best candidates), never of all.
import type { Client } from '@temporalio/client';
import { hostQueue, type FerryConfig } from '../../lib/config';

/** A long poll lasts up to about 70 s, so a live agent refreshes its poller at least that often. */
export const POLLER_STALE_MS = 90_000;

export interface PolledHost {
  name: string;
  pool: string;
  queue: string;
  polled: boolean;
  reason: string | null;
}

const ACTIVITY_QUEUE = 2; // TASK_QUEUE_TYPE_ACTIVITY

/** Whether an agent polls this host's queue, and if not, why it counts as gone. */
export async function pollerOf(config: FerryConfig, client: Client, host: { name: string; pool: string }, now = Date.now()): Promise<PolledHost> {
  const queue = hostQueue(config, host.name);
  const response = await client.workflowService.describeTaskQueue({
    namespace: config.temporal.namespace,
    taskQueue: { name: queue },
    taskQueueType: ACTIVITY_QUEUE,
  });
  const newest = Math.max(
    0,
    ...(response.pollers ?? []).map((p) => {
      const t = p.lastAccessTime;
      return t ? Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : 0;
    }),
  );
  const polled = newest > 0 && now - newest < POLLER_STALE_MS;
  return {
    name: host.name,
    pool: host.pool,
    queue,
    polled,
    reason: polled ? null : newest === 0 ? 'no agent polls its queue' : `agent last polled ${Math.round((now - newest) / 1000)} s ago`,
  };
}

/** Every host of temporal.yaml: only runs from before the host inventory (version 2) ask this. */
export async function listPolledHosts(config: FerryConfig, client: Client, now = Date.now()): Promise<PolledHost[]> {
  return Promise.all(config.hosts.map((host) => pollerOf(config, client, host, now)));
}
