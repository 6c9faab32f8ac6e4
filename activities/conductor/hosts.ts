// Is a host's agent alive? Nova asks its service heartbeats; ferry asks Temporal whether the host's
// queue has an activity poller seen recently (the other half, "its XenAPI answers", is describeHost).
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

export async function listPolledHosts(config: FerryConfig, client: Client, now = Date.now()): Promise<PolledHost[]> {
  return Promise.all(
    config.hosts.map(async (host): Promise<PolledHost> => {
      const response = await client.workflowService.describeTaskQueue({
        namespace: config.temporal.namespace,
        taskQueue: { name: hostQueue(config, host.name) },
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
        queue: hostQueue(config, host.name),
        polled,
        reason: polled ? null : newest === 0 ? 'no agent polls its queue' : `agent last polled ${Math.round((now - newest) / 1000)} s ago`,
      };
    }),
  );
}
