// migrationSlots: one entity workflow holding every migration's leases, so that the limits
// (outbound and inbound per host, and cluster-wide) survive any worker restart. Migrations queue in
// the order they asked; a freed slot goes to the oldest request that fits (see SlotTable).
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  patched,
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
  type SlotsState,
} from './definitions';
import { conductor } from './activities';
import { SlotTable } from './slot-table';

const MAX_HISTORY = 5000;
/** How often the leases are checked against their workflows while any are held. */
const LEASE_AUDIT_INTERVAL = '60s';

export async function migrationSlots(initial: SlotsState): Promise<void> {
  const table = new SlotTable(initial);
  const outbox: Array<() => Promise<void>> = [];

  // A migration workflow that cannot be signalled is gone (terminated, so it never released):
  // its lease goes back to the table.
  const send = (workflowId: string, deliver: () => Promise<void>) =>
    outbox.push(async () => {
      try {
        await deliver();
      } catch (err) {
        log.warn('migration workflow unreachable; releasing its lease', { workflowId, error: String(err) });
        grant(table.release(workflowId));
      }
    });
  const grant = (workflowIds: string[]) => {
    for (const workflowId of workflowIds) {
      const reservedBytes = table.reservedBytes();
      send(workflowId, () => getExternalWorkflowHandle(workflowId).signal(slotGrantedSignal, { reservedBytes }));
    }
  };

  setHandler(slotsQuery, () => table.state);
  setHandler(requestSlotSignal, (request) => grant(table.request(request)));
  setHandler(releaseSlotSignal, ({ workflowId }) => grant(table.release(workflowId)));
  setHandler(releaseDestinationSignal, ({ workflowId }) => table.releaseDestination(workflowId));
  setHandler(reserveDestinationSignal, (reservation) => {
    const refusal = table.reserveDestination(reservation);
    const answer = { destHost: reservation.destHost, ok: refusal === null, reason: refusal?.reason ?? null, busy: refusal?.busy ?? false };
    send(reservation.workflowId, () => getExternalWorkflowHandle(reservation.workflowId).signal(destinationReservedSignal, answer));
  });

  const historyFull = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > MAX_HISTORY;
  for (;;) {
    // patched(): entity runs from before the audit (the demo's persisted one) replay as they ran.
    const woken = table.state.holders.length > 0 && patched('slots-lease-audit')
      ? await condition(() => outbox.length > 0 || historyFull(), LEASE_AUDIT_INTERVAL)
      : await condition(() => outbox.length > 0 || historyFull()).then(() => true);
    if (!woken) {
      // A terminated migration never released its lease: take it back.
      for (const workflowId of await conductor.closedMigrations(table.state.holders.map((h) => h.workflowId))) {
        log.warn('lease of a closed migration workflow released', { workflowId });
        grant(table.release(workflowId));
      }
    }
    while (outbox.length > 0) await (outbox.shift() as () => Promise<void>)();
    if (historyFull()) {
      await condition(allHandlersFinished);
      if (outbox.length === 0) await continueAsNew<typeof migrationSlots>(table.state);
    }
  }
}
