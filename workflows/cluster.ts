// The cluster as the host agents see it, asked of every host: how migrations started before the host
// inventory (patch 'host-inventory') find their instance and destination. Kept for those runs only.
import { conductor, hostProbe } from './activities';
import type { ClusterView, HostView } from './definitions';
import { describeFailure } from './outcome';

export interface ClusterHost extends HostView {
  queue: string;
}

export interface ClusterSnapshot extends ClusterView {
  hosts: ClusterHost[];
}

export async function collectClusterView(): Promise<ClusterSnapshot> {
  const polled = await conductor.listPolledHosts();
  const hosts = await Promise.all(
    polled.map(async (h): Promise<ClusterHost> => {
      const down = (reason: string): ClusterHost => ({
        name: h.name,
        pool: h.pool,
        queue: h.queue,
        up: false,
        downReason: reason,
        enabled: false,
        productVersion: null,
        platformVersion: null,
        memoryTotalBytes: 0,
        memoryFreeBytes: 0,
        instances: [],
      });
      if (!h.polled) return down(h.reason ?? 'no agent polls its queue');
      try {
        const { hostUuid: _hostUuid, ...report } = await hostProbe(h.queue).describeHost();
        return { ...report, queue: h.queue, up: true, downReason: null };
      } catch (err) {
        // xapi answered and said the host is dead (HostNotLive), or nobody answered in time.
        const failure = describeFailure(err);
        return down(failure.type === 'HostNotLive' ? failure.message : `XenAPI or agent did not answer: ${failure.message}`);
      }
    }),
  );
  return { hosts, observedAt: new Date(Date.now()).toISOString() };
}
