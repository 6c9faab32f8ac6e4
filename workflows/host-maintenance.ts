// hostMaintenance: empty a host for maintenance as one durable operation, then bring it back.
// What xapi's host.evacuate and XenCenter's maintenance mode do, and what Nova leaves to a client
// loop (`nova host-evacuate-live`), as a workflow (id host-maintenance-<host>):
//
//   1. disable the host (host.disable and other_config:MAINTENANCE_MODE, through its agent): the
//      scheduler skips a disabled host and its destination check refuses it;
//   2. migrate every running VM off it as child liveMigration workflows (the existing workflow and
//      input, so its limits apply through the migrationSlots entity), at most `parallelism` at once
//      (the outbound limit per host), largest memory first; a VM whose migration fails is tried
//      again (up to maxAttempts) after the others, and one that cannot move is reported with why;
//   3. end drained (empty, disabled) or partial (what is left and why), or cancelled, and wait for
//      leave: enable the host and, if asked, bring each moved VM back to it.
//
// Why largest first: the drain's makespan is bounded below by Σmem/B of the source's link whatever
// the order; with `parallelism` transfers sharing it, starting the longest ones first (LPT) keeps
// the last transfer short, so the link stays busy to the end (a big VM started last would run
// alone). And it is first-fit decreasing: the big VMs choose among the most free memory, while
// the small ones still fit in what is left; smallest first could fill the room a big VM needed.
//
// The run stays open while the host is in maintenance (the search attribute MaintenanceStatus
// says where it is), so `leave` is an update of the same run. Every wait is bounded; once its
// history passes maxHistory the run lets its running migrations end, then continues as new.
import {
  ParentClosePolicy,
  WorkflowIdReusePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { MaintenancePlan } from '../activities/conductor/maintenance';
import type { HostActivities } from '../activities/host';
import { MaintenanceHost, MaintenanceState } from '../lib/search-attributes';
import { conductorLocal } from './activities';
import {
  LIVE_MIGRATION_WORKFLOW,
  abortSignal,
  newMaintenanceView,
  cancelMaintenanceUpdate,
  leaveMaintenanceUpdate,
  liveMigrationWorkflowId,
  maintenanceStatusQuery,
  pauseMaintenanceUpdate,
  resumeMaintenanceUpdate,
  type HostMaintenanceInput,
  type LiveMigrationInput,
  type MaintenanceStatus,
  type MaintenanceView,
  type MaintenanceVm,
} from './definitions';
import { describeFailure, type MigrationOutcome } from './outcome';

const MAX_HISTORY = 2000;
const DEFAULT_ATTEMPTS = 3;
/** A VM started on the host after the drain looked: the drain looks again, at most this many times. */
const MAX_RESCANS = 3;
/** Failures that another attempt would meet again (the VM itself is the cause). */
const FINAL_FAILURES = new Set(['InstanceInvalidState', 'ComputeHostNotFound']);
/**
 * NoValidHost comes from the scheduler's cached inventory (up to inventory.cacheMs old): a host
 * that left maintenance a moment ago may still read as disabled there. So it is an attempt like
 * any other failure, tried again after the others once the inventory has been read again (before
 * the patch no-valid-host-retried it was final).
 */
const NO_VALID_HOST = 'NoValidHost';
/**
 * The scheduler refused because a candidate was busy (it receives as many migrations as allowed):
 * that frees up, so it is not an attempt; the VM waits until another migration ends, at most
 * MAX_BUSY times.
 */
const MAX_BUSY = 50;
const busyOnly = (f: { type: string; message: string }) => f.type === 'NoValidHost' && f.message.includes('already receives');
/** The VM is not on the host any more: nothing to move. */
const GONE_FAILURES = new Set(['InstanceNotFound']);
/** How long a run waits for leave before it looks at its history again. */
const LEAVE_WAIT = '1 day';
/** Bound of a wait for a running migration's end: it re-checks then (migrations bound themselves). */
const STEP_WAIT = '10 minutes';

const ENDED: ReadonlySet<MaintenanceStatus> = new Set(['drained', 'partial', 'cancelled']);

export async function hostMaintenance(input: HostMaintenanceInput): Promise<MaintenanceView> {
  const info = workflowInfo();
  const maxAttempts = input.maxAttempts ?? DEFAULT_ATTEMPTS;
  const maxHistory = input.maxHistory ?? MAX_HISTORY;
  const retryNoValidHost = patched('no-valid-host-retried');
  const isFinal = (type: string) => FINAL_FAILURES.has(type) || (type === NO_VALID_HOST && !retryNoValidHost);
  const now = () => new Date().toISOString();
  const view: MaintenanceView =
    input.view ?? newMaintenanceView({ host: input.host, workflowId: info.workflowId, status: 'entering', at: now(), parallelism: Math.max(1, input.parallelism ?? 1) });
  // The pace (bytes moved per second since the maintenance began) gives the estimated time left.
  const drainStartedMs = Date.parse(view.startedAt);
  // Handlers first (below): a query or update that arrives with the first workflow task finds them.
  const hostSteps = (queue: string) => proxyActivities<HostActivities>({
    taskQueue: queue,
    // A host whose agent does not answer for 5 minutes fails the step (and the run, with why).
    scheduleToCloseTimeout: '300s',
    startToCloseTimeout: '60s',
    retry: { initialInterval: '1s', maximumInterval: '10s' },
  });

  let paused = view.status === 'paused';
  let cancel: { abortRunning: boolean } | null = view.status === 'cancelling' ? { abortRunning: false } : null;
  let leave: { bringBack: boolean } | null = null;
  let changed = false;
  const running = new Map<string, Promise<void>>();
  /** VMs refused only because every destination was busy: not started again before another migration ends. */
  const busy = new Set<string>();
  const busyCount = new Map<string, number>();

  let published: MaintenanceStatus | null = null;
  const publish = (status?: MaintenanceStatus, reason?: string | null) => {
    if (status) view.status = status;
    if (reason !== undefined) view.reason = reason;
    view.updatedAt = now();
    const c = { total: view.vms.length, moved: 0, migrating: 0, waiting: 0, failed: 0, gone: 0, returned: 0 };
    let left = 0;
    let moved = 0;
    for (const vm of view.vms) {
      if (vm.state === 'moved' || vm.state === 'returning' || vm.state === 'returnFailed') c.moved++;
      else if (vm.state === 'migrating') c.migrating++;
      else if (vm.state === 'waiting') c.waiting++;
      else if (vm.state === 'failed') c.failed++;
      else if (vm.state === 'gone') c.gone++;
      else if (vm.state === 'returned') c.returned++;
      if (vm.state === 'waiting' || vm.state === 'migrating') left += vm.memoryBytes;
      moved += vm.bytesSent;
    }
    view.counts = c;
    view.bytesMoved = moved;
    view.bytesLeft = left;
    const elapsed = (Date.now() - drainStartedMs) / 1000;
    const pace = elapsed > 0 && moved > 0 ? moved / elapsed : 0;
    view.etaSeconds = left === 0 ? 0 : pace > 0 ? Math.round(left / pace) : null;
    if (published !== view.status) upsertSearchAttributes([{ key: MaintenanceHost, value: view.host }, { key: MaintenanceState, value: view.status }]);
    published = view.status;
    // The web UI's "current details": the operation in one line, then what is left and why.
    setCurrentDetails(
      [
        `**${view.host}: ${view.status}**: ${c.moved} of ${c.total} moved, ${c.migrating} migrating, ${c.waiting} waiting, ${c.failed} failed; ` +
          `${Math.round(moved / 2 ** 20)} MiB sent, ${view.etaSeconds === null ? 'ETA unknown' : `ETA ${view.etaSeconds} s`}`,
        ...(view.reason ? [view.reason] : []),
      ].join('\n\n'),
    );
    upsertMemo({
      host: view.host,
      status: view.status,
      reason: view.reason,
      counts: view.counts,
      bytesMoved: view.bytesMoved,
      bytesLeft: view.bytesLeft,
      etaSeconds: view.etaSeconds,
    });
  };

  setHandler(maintenanceStatusQuery, () => view);
  setHandler(
    pauseMaintenanceUpdate,
    () => {
      paused = true;
      changed = true;
      publish('paused');
      return view;
    },
    { validator: () => requireStatus(view, ['draining'], 'pause') },
  );
  setHandler(
    resumeMaintenanceUpdate,
    () => {
      paused = false;
      changed = true;
      publish('draining');
      return view;
    },
    { validator: () => requireStatus(view, ['paused'], 'resume') },
  );
  setHandler(
    cancelMaintenanceUpdate,
    (request) => {
      cancel = { abortRunning: request.abortRunning };
      paused = false;
      changed = true;
      publish('cancelling', `cancelled: running migrations ${request.abortRunning ? 'aborted' : 'left to finish'}`);
      if (request.abortRunning) abortRunning();
      return view;
    },
    { validator: (_request) => requireStatus(view, ['entering', 'draining', 'paused'], 'cancel') },
  );
  setHandler(
    leaveMaintenanceUpdate,
    (request) => {
      leave = { bringBack: request.bringBack };
      view.bringBack = request.bringBack;
      for (const vm of view.vms) if (vm.state === 'moved') vm.attempts = 0;
      changed = true;
      publish('leaving');
      return view;
    },
    { validator: (_request) => requireStatus(view, ['drained', 'partial', 'cancelled'], 'leave') },
  );

  const abortRunning = () => {
    for (const vm of view.vms) {
      if (vm.state !== 'migrating' || !vm.migration) continue;
      // A migration past its point of no return ignores the abort and finishes.
      void getExternalWorkflowHandle(vm.migration)
        .signal(abortSignal, `maintenance of ${view.host} cancelled`)
        .catch(() => undefined);
    }
  };

  /** One child live migration of a VM; its end is written into the VM's entry. */
  const migrate = async (vm: MaintenanceVm, destination: string | null, back: boolean): Promise<void> => {
    vm.state = back ? 'returning' : 'migrating';
    vm.attempts++;
    vm.migration = liveMigrationWorkflowId(vm.uuid);
    publish();
    const request: LiveMigrationInput = { instanceUuid: vm.uuid, host: destination };
    let failure: { type: string; message: string } | null = null;
    try {
      const child = await startChild(LIVE_MIGRATION_WORKFLOW, {
        workflowId: vm.migration,
        args: [request],
        // A migration goes on if this run ends (its own bounds and rollback keep it clean).
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
        staticSummary: `${back ? 'bring back' : 'drain'} ${vm.name} ${back ? `to ${view.host}` : `off ${view.host}`}`,
      });
      const outcome = (await child.result()) as MigrationOutcome;
      if (outcome.status === 'completed') {
        vm.bytesSent += outcome.bytesSent;
        vm.destHost = outcome.destHost;
        vm.reason = null;
        vm.state = back ? 'returned' : 'moved';
      } else failure = { type: outcome.status, message: outcome.message ?? `the migration ended ${outcome.status}` };
    } catch (err) {
      failure = describeFailure(err);
      if ((err as Error).name === 'WorkflowExecutionAlreadyStartedError') {
        failure = { type: 'MigrationInProgress', message: `a migration of ${vm.uuid} already runs` };
      }
    }
    if (failure && busyOnly(failure) && !cancel && (busyCount.get(vm.uuid) ?? 0) < MAX_BUSY) {
      busyCount.set(vm.uuid, (busyCount.get(vm.uuid) ?? 0) + 1);
      vm.attempts--;
      vm.reason = failure;
      vm.state = back ? 'moved' : 'waiting';
      busy.add(vm.uuid);
      failure = null;
    } else busy.clear();
    if (failure) {
      vm.reason = failure;
      const again = vm.attempts < maxAttempts && !isFinal(failure.type);
      // Tried again only after the scheduler's copy of the inventory has been read again.
      if (again && failure.type === NO_VALID_HOST && retryNoValidHost && !cancel) await sleep(plan.inventoryCacheMs + 1000);
      if (back) vm.state = again ? 'moved' : 'returnFailed';
      else if (GONE_FAILURES.has(failure.type)) vm.state = 'gone';
      else if (cancel) vm.state = 'waiting'; // aborted by the cancel: still on the host
      else vm.state = again ? 'waiting' : 'failed';
    }
    changed = true;
    publish();
  };

  /** Runs migrations, `parallelism` at once, of the VMs `next` picks; returns when none is left or running. */
  const runAll = async (next: () => MaintenanceVm | null, start: (vm: MaintenanceVm) => Promise<void>, parallelism: number) => {
    for (;;) {
      const historyFull = workflowInfo().historyLength >= maxHistory;
      const vm = !paused && !cancel && !historyFull && running.size < parallelism ? next() : null;
      if (vm) {
        running.set(
          vm.uuid,
          start(vm).finally(() => running.delete(vm.uuid)),
        );
        continue;
      }
      if (running.size === 0 && busy.size > 0 && !cancel && !historyFull) {
        // Everything left waits for a busy destination and nothing runs here: another host's migrations hold them.
        busy.clear();
        await sleep('2s');
        continue;
      }
      if (running.size === 0 && (cancel || historyFull || next() === null)) return;
      changed = false;
      await condition(() => changed, STEP_WAIT);
    }
  };

  const continueIfLong = async () => {
    if (workflowInfo().historyLength < maxHistory) return;
    await condition(allHandlersFinished);
    await continueAsNew<typeof hostMaintenance>({ ...input, view });
  };

  const plan: MaintenancePlan = await conductorLocal.planMaintenance({ host: input.host });
  if (!input.view) view.parallelism = Math.max(1, input.parallelism ?? plan.limits.outboundPerHost);
  const host = hostSteps(plan.queue);
  const limits = plan.limits;

  // ---- entering: disable the host, list its VMs ----
  if (view.status === 'entering') {
    publish('entering');
    await host.disableHostForMaintenance();
    // The VMs as the agent reports them after the disable (a VM started a moment before is there).
    const fresh = await conductorLocal.planMaintenance({ host: input.host });
    addVms(view, fresh.instances);
    publish(cancel ? 'cancelling' : 'draining');
  }

  // ---- draining ----
  let rescans = 0;
  while (view.status === 'draining' || view.status === 'paused' || view.status === 'cancelling') {
    // Largest first, and a VM tried before after those not tried yet.
    const next = () =>
      view.vms
        .filter((v) => v.state === 'waiting' && !busy.has(v.uuid))
        .sort((a, b) => a.attempts - b.attempts || b.memoryBytes - a.memoryBytes || (a.uuid < b.uuid ? -1 : 1))[0] ?? null;
    await runAll(next, (vm) => migrate(vm, null, false), view.parallelism);
    await continueIfLong();
    if (cancel) {
      publish('cancelled');
      break;
    }
    // A VM that appeared on the host meanwhile (started by someone): look again, a few times.
    const fresh = await conductorLocal.planMaintenance({ host: input.host });
    if (rescans++ < MAX_RESCANS && addVms(view, fresh.instances) > 0) continue;
    const left = view.vms.filter((v) => v.state === 'failed' || v.state === 'waiting');
    if (left.length === 0) publish('drained', null);
    else publish('partial', `${left.length} VM(s) could not move: ${left.map((v) => `${v.name} (${v.reason?.type ?? 'unknown'}: ${v.reason?.message ?? ''})`).join('; ')}`);
  }

  // ---- in maintenance: wait for leave ----
  while (ENDED.has(view.status) && !leave) {
    await condition(() => leave !== null, LEAVE_WAIT);
    if (!leave) await continueIfLong();
  }

  // ---- leaving: enable the host, bring the VMs back (each to this host, largest first) ----
  if (view.status === 'leaving') {
    await host.enableHostAfterMaintenance();
    if (view.bringBack) {
      const nextBack = () => view.vms.filter((v) => v.state === 'moved' && !busy.has(v.uuid)).sort((a, b) => b.memoryBytes - a.memoryBytes)[0] ?? null;
      await runAll(nextBack, (vm) => migrate(vm, view.host, true), Math.max(1, limits.inboundPerHost));
      await continueIfLong();
    }
    const notBack = view.vms.filter((v) => v.state === 'returnFailed');
    publish('left', notBack.length ? `enabled; ${notBack.length} VM(s) not brought back: ${notBack.map((v) => `${v.name} (${v.reason?.message ?? ''})`).join('; ')}` : 'enabled');
  }
  await condition(allHandlersFinished);
  return view;
}

function requireStatus(view: MaintenanceView, allowed: MaintenanceStatus[], what: string): void {
  if (!allowed.includes(view.status)) throw new Error(`cannot ${what} a maintenance that is ${view.status} (allowed when ${allowed.join(' or ')})`);
}

/** Adds the running VMs not known yet as waiting; returns how many. */
function addVms(view: MaintenanceView, instances: { uuid: string; name: string; memoryBytes: number }[]): number {
  let added = 0;
  for (const i of instances) {
    const known = view.vms.find((v) => v.uuid === i.uuid);
    // A VM counted as moved may still be in a report older than its move: only new VMs count.
    if (known) continue;
    view.vms.push({ uuid: i.uuid, name: i.name, memoryBytes: i.memoryBytes, state: 'waiting', attempts: 0, migration: null, destHost: null, bytesSent: 0, reason: null });
    added++;
  }
  return added;
}
