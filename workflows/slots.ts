// migrationSlots: one entity workflow holding every migration's leases, so that the limits
// (outbound and inbound per host, and cluster-wide) survive any worker restart. Migrations queue in
// the order they asked; a freed slot goes to the oldest request that fits (see SlotTable).
//
// Leases cannot leak: every 60 s after the last audit (whatever the traffic) the entity takes back
// the leases and queue places of migration workflows that closed without releasing. An entity that
// was lost (terminated, reset) is started afresh by the next call of any migration (the conductor's
// slot activities use signalWithStart), and a fresh entity asks every running liveMigration to
// re-assert its lease (reassertLease) before it grants anything.
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  type SignalDefinition,
  workflowInfo,
} from '@temporalio/workflow';
import type { ConductorActivities } from '../activities/conductor';
import {
  destinationReservedSignal,
  reassertLeaseSignal,
  releaseDestinationSignal,
  releaseSlotSignal,
  requestSlotSignal,
  reserveDestinationSignal,
  reserveDestinationUpdate,
  requestSlotUpdate,
  slotGrantedSignal,
  slotsQuery,
  type DestinationReservation,
  type ReservationAnswer,
  type SlotAnswer,
  type SlotsState,
} from './definitions';
import { conductor } from './activities';
import { SlotTable } from './slot-table';

const MAX_HISTORY = 5000;
/** How often the leases were checked by runs from before the audit timer (replay only). */
const LEASE_AUDIT_INTERVAL = '60s';
/** The leases and queue places are checked against their workflows this long after the last audit. */
const AUDIT_INTERVAL_MS = 60_000;
/** A fresh entity grants nothing for this long after asking the running migrations to re-assert. */
const REASSERT_GRACE_MS = 5_000;

/** Delivers the entity's signals to migrations; a migration that is gone fails at once (non-retryable). */
const messenger = proxyLocalActivities<ConductorActivities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', maximumInterval: '2s', maximumAttempts: 5 },
});

/** The entity's own look-ups: a failing one is skipped (the next audit comes), never waited on. */
const lookups = proxyActivities<ConductorActivities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 3 },
});

export async function migrationSlots(initial: SlotsState): Promise<void> {
  const table = new SlotTable(initial);
  const outbox: Array<() => Promise<void>> = [];
  /** Counts the signals handled: the loop wakes on each, without moving the audit's deadline. */
  let changes = 0;

  // A migration workflow that cannot be signalled is gone (terminated, so it never released):
  // its lease goes back to the table. From the patch on, the conductor's local activity delivers
  // the signal: the entity may run in the system namespace, where a workflow cannot signal the
  // migrations directly; before it, runs signal as they did.
  const send = <A extends unknown[]>(workflowId: string, signal: SignalDefinition<A>, ...args: A) =>
    outbox.push(async () => {
      try {
        if (patched('slots-signal-through-activity')) await messenger.signalMigration({ workflowId, signal: signal.name, args });
        else await getExternalWorkflowHandle(workflowId).signal(signal, ...args);
      } catch (err) {
        log.warn('migration workflow unreachable; releasing its lease', { workflowId, error: String(err) });
        grant(table.release(workflowId));
      }
    });
  const grant = (workflowIds: string[]) => {
    for (const workflowId of workflowIds) {
      const reservedBytes = table.reservedBytes(workflowId);
      send(workflowId, slotGrantedSignal, { reservedBytes });
    }
  };

  setHandler(slotsQuery, () => table.state);
  setHandler(requestSlotSignal, (request) => {
    changes++;
    grant(table.request(request));
  });
  setHandler(releaseSlotSignal, ({ workflowId }) => {
    changes++;
    grant(table.release(workflowId));
  });
  setHandler(releaseDestinationSignal, ({ workflowId }) => {
    changes++;
    table.releaseDestination(workflowId);
  });
  const reserve = (reservation: DestinationReservation): ReservationAnswer => {
    changes++;
    const refusal = table.reserveDestination(reservation);
    return {
      destHost: reservation.destHost,
      ok: refusal === null,
      reason: refusal?.reason ?? null,
      busy: refusal?.busy ?? false,
      ...(refusal?.noLease ? { noLease: true } : {}),
    };
  };
  setHandler(reserveDestinationSignal, (reservation) => {
    const answer = reserve(reservation);
    send(reservation.workflowId, destinationReservedSignal, answer);
  });
  // The same as updates (version 3 of the migration): the caller gets its answer in the update's
  // result instead of a signal, one round trip less.
  setHandler(reserveDestinationUpdate, reserve);
  setHandler(requestSlotUpdate, (request): SlotAnswer => {
    changes++;
    const granted = table.request(request);
    grant(granted.filter((id) => id !== request.workflowId));
    return granted.includes(request.workflowId) || table.holder(request.workflowId)
      ? { granted: true, reservedBytes: table.reservedBytes(request.workflowId) }
      : { granted: false, reservedBytes: {} };
  });

  /** Takes back the leases and queue places of migration workflows that closed without releasing. */
  const audit = async () => {
    const known = table.workflowIds();
    let closed: string[];
    try {
      closed = await lookups.closedMigrations(known);
    } catch (err) {
      log.warn('lease audit failed; the next one runs in 60 s', { error: String(err) });
      return;
    }
    for (const workflowId of closed) {
      log.warn('lease of a closed migration workflow released', { workflowId });
      grant(table.release(workflowId));
    }
  };

  // A fresh entity (not continued from a run of its own) may have replaced one that was lost with
  // its leases: it asks every running migration to re-assert its lease, and grants nothing until
  // they had a moment to answer (no wait when every running migration already asked it).
  // patched(): runs from before this replay as they ran.
  let resumeAt: number | null = null;
  const fresh = workflowInfo().continuedFromExecutionRunId === undefined && initial.queue.length === 0 && initial.holders.length === 0;
  if (fresh && patched('slots-reassert-leases')) {
    table.paused = true;
    outbox.push(async () => {
      let running: string[] | null = null;
      try {
        running = await lookups.runningMigrations();
      } catch (err) {
        log.warn('could not list the running migrations; they re-send their requests by themselves', { error: String(err) });
      }
      const known = new Set(table.workflowIds());
      const others = (running ?? []).filter((id) => !known.has(id));
      for (const workflowId of others) {
        send(workflowId, reassertLeaseSignal);
      }
      // Every running migration already asked this entity: there is nobody to wait for.
      if (running !== null && others.length === 0 && patched('slots-no-grace-when-alone')) {
        table.paused = false;
        grant(table.grantWaiting());
        return;
      }
      // Queued after the signals above: the grace starts once they are delivered.
      outbox.push(async () => {
        resumeAt = Date.now() + REASSERT_GRACE_MS;
      });
    });
  }

  const maxHistory = initial.maxHistory ?? MAX_HISTORY;
  const historyFull = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > maxHistory;
  let nextAuditAt = Date.now() + AUDIT_INTERVAL_MS;
  for (;;) {
    if (patched('slots-audit-timer')) {
      // The audit's deadline is fixed when it last ran (or when the table was last empty): signals
      // wake the loop but do not push the audit back, so a busy entity audits too.
      const seen = changes;
      if (table.workflowIds().length === 0) nextAuditAt = Date.now() + AUDIT_INTERVAL_MS;
      const deadlines = [
        ...(table.workflowIds().length > 0 ? [nextAuditAt] : []),
        ...(table.paused && resumeAt !== null ? [resumeAt] : []),
      ];
      const wake = () => outbox.length > 0 || historyFull() || changes !== seen;
      if (deadlines.length === 0) await condition(wake);
      else if (Math.min(...deadlines) > Date.now()) await condition(wake, Math.min(...deadlines) - Date.now());
      if (table.paused && resumeAt !== null && Date.now() >= resumeAt) {
        table.paused = false;
        resumeAt = null;
        grant(table.grantWaiting());
      }
      if (table.workflowIds().length > 0 && Date.now() >= nextAuditAt) {
        await audit();
        nextAuditAt = Date.now() + AUDIT_INTERVAL_MS;
      }
    } else {
      // Runs from before the audit timer: the audit waited for 60 quiet seconds.
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
    }
    while (outbox.length > 0) await (outbox.shift() as () => Promise<void>)();
    if (historyFull()) {
      await condition(allHandlersFinished);
      // The state carries the limits (and maxHistory): the next run keeps them with an empty queue.
      if (outbox.length === 0) await continueAsNew<typeof migrationSlots>(table.state);
    }
  }
}
