// migrationSlots: one entity workflow holding every migration's leases, so that the limits
// (outbound and inbound per host, and cluster-wide) survive any worker restart. Migrations queue in
// the order they asked; a freed slot goes to the oldest request that fits.
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  destinationReservedSignal,
  releaseDestinationSignal,
  releaseSlotSignal,
  requestSlotSignal,
  reserveDestinationSignal,
  slotGrantedSignal,
  slotsQuery,
  type MigrationLimits,
  type SlotHolder,
  type SlotsState,
} from './definitions';

export function reservedBytesByHost(holders: SlotHolder[], except?: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const h of holders) {
    if (h.destHost && h.workflowId !== except) out[h.destHost] = (out[h.destHost] ?? 0) + h.memoryBytes;
  }
  return out;
}

export async function migrationSlots(initial: SlotsState): Promise<void> {
  const state: SlotsState = { queue: [...initial.queue], holders: [...initial.holders] };
  let limits: MigrationLimits = state.queue[0]?.limits ?? { outboundPerHost: 1, inboundPerHost: 2, cluster: 5 };
  const outbox: Array<() => Promise<void>> = [];

  const grantWaiting = () => {
    for (const request of [...state.queue]) {
      if (state.holders.length >= limits.cluster) break;
      const outbound = state.holders.filter((h) => h.sourceHost === request.sourceHost).length;
      if (outbound >= limits.outboundPerHost) continue; // a migration from another host may go first
      state.queue.splice(state.queue.indexOf(request), 1);
      state.holders.push({ workflowId: request.workflowId, sourceHost: request.sourceHost, destHost: null, memoryBytes: request.memoryBytes });
      const grant = { reservedBytes: reservedBytesByHost(state.holders) };
      outbox.push(() => notify(request.workflowId, () => getExternalWorkflowHandle(request.workflowId).signal(slotGrantedSignal, grant)));
    }
  };

  const release = (workflowId: string) => {
    state.holders = state.holders.filter((h) => h.workflowId !== workflowId);
    state.queue = state.queue.filter((r) => r.workflowId !== workflowId);
    grantWaiting();
  };

  // A holder whose workflow is gone (terminated, so it never released) gives its lease back.
  const notify = async (workflowId: string, send: () => Promise<void>) => {
    try {
      await send();
    } catch (err) {
      log.warn('migration workflow unreachable; releasing its lease', { workflowId, error: String(err) });
      release(workflowId);
    }
  };

  setHandler(slotsQuery, () => state);
  setHandler(requestSlotSignal, (request) => {
    limits = request.limits;
    const holder = state.holders.find((h) => h.workflowId === request.workflowId);
    if (holder) {
      // A retried request: answer again.
      const grant = { reservedBytes: reservedBytesByHost(state.holders) };
      outbox.push(() => notify(request.workflowId, () => getExternalWorkflowHandle(request.workflowId).signal(slotGrantedSignal, grant)));
      return;
    }
    if (!state.queue.some((r) => r.workflowId === request.workflowId)) state.queue.push(request);
    grantWaiting();
  });
  setHandler(reserveDestinationSignal, (reservation) => {
    const holder = state.holders.find((h) => h.workflowId === reservation.workflowId);
    let reason: string | null = null;
    if (!holder) reason = 'the migration holds no slot';
    else {
      const inbound = state.holders.filter((h) => h.destHost === reservation.destHost && h.workflowId !== reservation.workflowId).length;
      const reserved = reservedBytesByHost(state.holders, reservation.workflowId)[reservation.destHost] ?? 0;
      if (inbound >= limits.inboundPerHost) {
        reason = `${reservation.destHost} already receives ${inbound} migration(s), the limit is ${limits.inboundPerHost}`;
      } else if (reservation.memoryFreeBytes - reserved < reservation.memoryBytes) {
        reason = `not enough free memory on ${reservation.destHost} after reservations: ${reservation.memoryFreeBytes - reserved} bytes, ${reservation.memoryBytes} needed`;
      } else {
        holder.destHost = reservation.destHost;
        holder.memoryBytes = reservation.memoryBytes;
      }
    }
    const answer = { destHost: reservation.destHost, ok: reason === null, reason };
    outbox.push(() => notify(reservation.workflowId, () => getExternalWorkflowHandle(reservation.workflowId).signal(destinationReservedSignal, answer)));
  });
  setHandler(releaseDestinationSignal, ({ workflowId }) => {
    const holder = state.holders.find((h) => h.workflowId === workflowId);
    if (holder) holder.destHost = null;
  });
  setHandler(releaseSlotSignal, ({ workflowId }) => release(workflowId));

  for (;;) {
    await condition(() => outbox.length > 0 || workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 5000);
    while (outbox.length > 0) await (outbox.shift() as () => Promise<void>)();
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 5000) {
      await condition(allHandlersFinished);
      if (outbox.length === 0) await continueAsNew<typeof migrationSlots>(state);
    }
  }
}
