// hostInventory: one entity workflow per host, in the system namespace, to which the host's agent
// reports its host (free memory, enabled, versions, its VMs) when something changes and at least
// every inventory.reportSeconds. The latest report is the entity's memo, so that readers (the
// scheduler, the API) read every host from visibility and no request fans out to the hosts.
// Liveness is judged by readers from when the last report arrived (lib/host-inventory.ts). The
// same moment is the search attribute HostReportedAt, so that a reader lists only the hosts whose
// report arrived since its last listing, not every host each time (issue 16).
import { allHandlersFinished, condition, continueAsNew, patched, setHandler, upsertMemo, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { HostReportedAt } from '../lib/search-attributes';
import { hostReportSignal, hostStateQuery, type HostInventoryState } from './definitions';

const MAX_HISTORY = 1000;

export async function hostInventory(initial: HostInventoryState): Promise<void> {
  let state = initial;
  let unpublished = false;
  setHandler(hostStateQuery, () => state);
  setHandler(hostReportSignal, (report) => {
    state = { ...state, report, receivedAt: new Date().toISOString() };
    unpublished = true;
  });
  const maxHistory = initial.maxHistory ?? MAX_HISTORY;
  for (;;) {
    await condition(() => unpublished || workflowInfo().historyLength >= maxHistory);
    if (unpublished) {
      // Reports that arrived in one workflow task are published once: only the latest counts.
      unpublished = false;
      upsertMemo({ host: state });
      // Entities that ran before this attribute existed publish it from their next report on.
      if (patched('host-reported-at') && state.receivedAt) upsertSearchAttributes([{ key: HostReportedAt, value: new Date(state.receivedAt) }]);
    }
    if (workflowInfo().historyLength >= maxHistory) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof hostInventory>(state);
    }
  }
}
