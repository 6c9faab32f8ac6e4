// The cluster as the host agents see it: which hosts are up and what they run. Used by the
// migration workflow and, as the describeCluster workflow, by the API.
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

/** The describeCluster workflow: a short run whose result is the cluster view. */
export async function describeCluster(): Promise<ClusterView> {
  const { hosts, observedAt } = await collectClusterView();
  return { hosts: hosts.map(({ queue: _queue, ...view }) => view), observedAt };
}
