// How many history events (and activities) one live migration writes: Temporal keeps a run's whole
// history, so a long transfer must not grow it with its duration. Target: under 300 either way.
// One JSON line per case, with the machine:
//   1-minute  the whole stack (lib/stack.ts): a 512 MiB VM whose guest dirties a little, the source
//             link at 8 MiB/s, so the transfer takes about a minute;
//   1-hour    the real workflow code and conductor activities on a real dev server, with fake host
//             agents (reporting to the host inventory as real ones do) whose migrateSend replays a
//             one-hour transfer in compressed time: 18,000 polls
//             (5 a second) of a task progress that stands still for 50 minutes (pre-copy does not
//             converge) and then converges, heartbeating each poll and signalling the workflow with
//             the agent's own progressReporter (a signal per 10 % and per change of phase).
//   node --import tsx bench/history-events.ts [--case 1-minute|1-hour|all]
import { parseArgs } from 'node:util';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { createConductorActivities } from '../activities/conductor';
import type { HostActivities } from '../activities/host';
import { progressReporter } from '../activities/host/migration';
import type { DestinationFacts, HostReport, InstanceView, MigrateSendInput, MigrateSendResult, TransferProgress } from '../activities/types';
import { hostQueue, parseConfig, type FerryConfig } from '../lib/config';
import { HostInventory, sendHostReport } from '../lib/host-inventory';
import { freePort } from '../lib/ports';
import { startStack } from '../lib/stack';
import { temporalDataConverter, workerDataConverter } from '../lib/temporal-connection';
import { startDevServer } from '../lib/temporal-dev-server';
import { progressSignal, type HostReportMessage } from '../workflows/definitions';
import type { MigrationOutcome } from '../workflows/outcome';
import { startMigration } from './migrations';
import { emit, runBench } from './report';

const TARGET_EVENTS = 300;

interface Counts {
  events: number;
  activities: number;
  signals: number;
  workflowTasks: number;
}

async function countHistory(handle: WorkflowHandle): Promise<Counts> {
  const events = (await handle.fetchHistory()).events ?? [];
  const count = (attr: 'activityTaskScheduledEventAttributes' | 'workflowExecutionSignaledEventAttributes' | 'workflowTaskScheduledEventAttributes') =>
    events.filter((e) => e[attr] != null).length;
  return {
    events: events.length,
    activities: count('activityTaskScheduledEventAttributes'),
    signals: count('workflowExecutionSignaledEventAttributes'),
    workflowTasks: count('workflowTaskScheduledEventAttributes'),
  };
}

function report(name: string, counts: Counts, extra: Record<string, unknown>): void {
  emit('history-events', { case: name, ...counts, targetEvents: TARGET_EVENTS, withinTarget: counts.events < TARGET_EVENTS, ...extra });
}

// ---- 1-minute: the whole stack ---------------------------------------------------------------

async function oneMinute(): Promise<void> {
  const stack = await startStack({ bandwidthMiBps: 512 });
  try {
    const source = stack.sims.host('xen-a').admin;
    await source.setBandwidth(8);
    const vm = await source.createVm({ nameLabel: 'bench-history-1min', memoryMiB: 512, sr: 'shared', dirtyRateMiBps: 1, workingSetMiB: 32 });
    const started = performance.now();
    const handle = await startMigration(stack.client, stack.config.taskQueues.conductor, { instanceUuid: vm.uuid, host: 'xen-b' });
    const outcome = (await handle.result()) as MigrationOutcome;
    report('1-minute', await countHistory(handle), {
      status: outcome.status,
      memoryMiB: 512,
      bandwidthMiBps: 8,
      transferMs: outcome.transferMs,
      e2eMs: Math.round(performance.now() - started),
    });
  } finally {
    await stack.stop();
  }
}

// ---- 1-hour: real workflow code, fake agents replaying an hour in compressed time ---------------

const HOUR_S = 3600;
const POLLS_PER_S = 5;
const PLATEAU = { from: 300, until: 3000, level: 0.6 };
const STOP_AND_COPY_AT = 3540;

/** xapi's task for a transfer that copies 60 % in 5 minutes, stands still until minute 50, then converges. */
function taskAt(t: number): { progress: number; cancellable: boolean; status: 'pending' | 'success' } {
  if (t >= HOUR_S) return { progress: 1, cancellable: false, status: 'success' };
  let progress: number;
  if (t < PLATEAU.from) progress = (PLATEAU.level * t) / PLATEAU.from;
  // Pre-copy does not converge: xapi's progress wobbles around where it got to.
  else if (t < PLATEAU.until) progress = PLATEAU.level - 0.02 + 0.02 * Math.sin((t - PLATEAU.from) / 60);
  else progress = PLATEAU.level + ((0.99 - PLATEAU.level) * (t - PLATEAU.until)) / (HOUR_S - PLATEAU.until);
  return { progress: Math.min(0.99, progress), cancellable: t < STOP_AND_COPY_AT, status: 'pending' };
}

interface FakeAgent {
  activities: Partial<HostActivities>;
  /** The host as the agent reports it to the host inventory. */
  describe(): HostReport;
}

/**
 * A host agent without a host: answers every step at once from what it pretends, and reports its host
 * to the inventory (`report`) at the start and after the steps that move the VM, as a real agent does.
 */
function fakeAgent(host: { name: string; pool: string }, instance: InstanceView, client: Client, report: () => Promise<void>): FakeAgent {
  const facts: DestinationFacts = { host: host.name, hostUuid: `uuid-${host.name}`, srRef: 'OpaqueRef:sr', networkRef: 'OpaqueRef:net', memoryFreeBytes: 8 * 2 ** 30 };
  let runsHere = instance.host === host.name;
  const presence = () => ({ host: host.name, present: runsHere, runningHere: runsHere, powerState: runsHere ? ('Running' as const) : null, residentOn: runsHere ? host.name : null, migrationTask: null, vcpuCap: null });
  const describe = (): HostReport => ({
      name: host.name,
      pool: host.pool,
      hostUuid: `uuid-${host.name}`,
      enabled: true,
      productVersion: '8.2.1',
      platformVersion: '3.4.0',
      memoryTotalBytes: 16 * 2 ** 30,
      memoryFreeBytes: 8 * 2 ** 30,
      instances: runsHere ? [instance] : [],
  });
  const activities: Partial<HostActivities> = {
    describeHost: async () => describe(),
    checkInstanceActive: async () => {
      if (!runsHere) throw ApplicationFailure.nonRetryable(`instance not on ${host.name}`, 'InstanceNotFound');
      return instance;
    },
    checkCanLiveMigrateDestination: async () => facts,
    assertCanMigrate: async () => undefined,
    migrateReceive: async () => ({ session_id: 'OpaqueRef:session' }),
    preLiveMigration: async () => facts,
    migrateSend: async (input: MigrateSendInput): Promise<MigrateSendResult> => {
      const ctx = Context.current();
      const reporter = progressReporter(input, (p) => client.workflow.getHandle(input.workflowId).signal(progressSignal, p));
      const total = instance.memoryBytes;
      let last = { t: 0, progress: 0 };
      for (let poll = 0; poll <= HOUR_S * POLLS_PER_S; poll++) {
        const t = poll / POLLS_PER_S;
        const task = taskAt(t);
        // The agent's pace: the fraction's growth over the last second.
        const perSecond = t - last.t >= 1 ? Math.max(0, (task.progress - last.progress) / (t - last.t)) : 0;
        if (t - last.t >= 1) last = { t, progress: task.progress };
        const progress: TransferProgress = {
          fraction: task.progress,
          memoryTotalBytes: total,
          memoryProcessedBytes: Math.round(task.progress * total),
          memoryRemainingBytes: Math.round((1 - task.progress) * total),
          diskTotalBytes: 0,
          diskProcessedBytes: 0,
          diskRemainingBytes: 0,
          fractionPerSecond: perSecond,
          etaSeconds: perSecond > 0 ? (1 - task.progress) / perSecond : null,
          transferPhase: task.status === 'success' ? 'done' : task.cancellable ? 'precopy' : 'stop_and_copy',
        };
        ctx.heartbeat({ progress });
        await reporter(progress);
        if (poll % 200 === 0) await new Promise((r) => setImmediate(r)); // let heartbeats and cancellation through
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
      }
      runsHere = false;
      await report();
      return { bytesSent: total, downtimeMs: null, memoryTotalBytes: total, diskTotalBytes: 0, transferMs: HOUR_S * 1000, alreadyDone: false };
    },
    settleMigrationTask: async () => ({ outcome: 'none' as const }),
    forceCompleteGuest: async () => ({ paused: false }),
    capGuestVcpu: async () => undefined,
    postLiveMigrationAtDestination: async () => {
      runsHere = true;
      await report();
      return presence();
    },
    postLiveMigration: async () => undefined,
    rollbackLiveMigration: async () => presence(),
    rollbackLiveMigrationAtDestination: async () => ({ removed: false }),
    instancePresence: async () => presence(),
  };
  return { activities, describe };
}

/** A host's report to its hostInventory entity (system namespace), as workers/host-reporter.ts sends it. */
async function reportHost(systemClient: Client, config: FerryConfig, agent: FakeAgent): Promise<void> {
  const { hostUuid: _hostUuid, ...state } = agent.describe();
  const message: HostReportMessage = { host: state.name, pool: state.pool, observedAt: new Date().toISOString(), state, downReason: null };
  await sendHostReport(systemClient, config, message);
}

async function oneHour(): Promise<void> {
  const port = await freePort();
  const hosts = [
    { name: 'xen-a', pool: 'pool-1' },
    { name: 'xen-b', pool: 'pool-1' },
  ];
  const config: FerryConfig = parseConfig(
    {
      temporal: { address: `127.0.0.1:${port}` },
      hosts: hosts.map((h) => ({ ...h, xenapiUrl: 'http://127.0.0.1:9/', passwordEnv: 'FERRY_XENAPI_PASSWORD' })),
    },
    'bench/history-events config',
  );
  const devServer = await startDevServer({ port, namespace: config.temporal.namespace, extraNamespaces: [config.temporal.systemNamespace] });
  const connection = await Connection.connect({ address: devServer.address });
  // In clear (this config has no temporal.encryption), through the one data converter all the same.
  const dataConverter = temporalDataConverter(config);
  const workerConverter = workerDataConverter(config);
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter });
  const systemClient = new Client({ connection, namespace: config.temporal.systemNamespace, dataConverter });
  const native = await NativeConnection.connect({ address: devServer.address });
  const instance: InstanceView = {
    uuid: '6c1b0c6e-0000-4000-8000-00000000e1e0',
    name: 'bench-history-1h',
    powerState: 'Running',
    host: 'xen-a',
    memoryBytes: 512 * 2 ** 20,
    vcpus: 1,
    vcpuCap: null,
    diskBytes: 0,
    storage: 'shared',
  };
  const agents = new Map<string, FakeAgent>();
  for (const h of hosts) agents.set(h.name, fakeAgent(h, instance, client, () => reportHost(systemClient, config, agents.get(h.name) as FakeAgent)));
  // As the conductor worker: the migration's workers in the main namespace, the entities' (slots, inventory) in the system one.
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), failureConverterPath: workerConverter.failureConverterPath, logger: new DefaultLogger('WARN') });
  const activities = createConductorActivities({ config, client, systemClient });
  const workers: Worker[] = [
    ...(await Promise.all(
      [config.temporal.namespace, config.temporal.systemNamespace].map((namespace) =>
        Worker.create({ connection: native, namespace, taskQueue: config.taskQueues.conductor, workflowBundle, activities, dataConverter: workerConverter }),
      ),
    )),
    ...(await Promise.all(
      hosts.map((h) =>
        Worker.create({
          connection: native,
          namespace: config.temporal.namespace,
          taskQueue: hostQueue(config, h.name),
          activities: (agents.get(h.name) as FakeAgent).activities,
          dataConverter: workerConverter,
        }),
      ),
    )),
  ];
  const running = workers.map((w) => w.run());
  // Ready when the inventory shows both hosts up (reported, and their queues polled).
  for (const agent of agents.values()) await reportHost(systemClient, config, agent);
  const inventory = new HostInventory(systemClient, config);
  for (const deadline = Date.now() + 30_000; ; ) {
    const view = await inventory.view({ fresh: true });
    if (hosts.every((h) => view.hosts.some((v) => v.name === h.name && v.up))) break;
    if (Date.now() > deadline) throw new Error(`the inventory does not show both hosts up: ${JSON.stringify(view.hosts.map((v) => [v.name, v.downReason]))}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  try {
    const started = performance.now();
    const handle = await startMigration(client, config.taskQueues.conductor, { instanceUuid: instance.uuid, host: 'xen-b' });
    const outcome = (await handle.result()) as MigrationOutcome;
    report('1-hour', await countHistory(handle), {
      status: outcome.status,
      simulatedTransferS: HOUR_S,
      polls: HOUR_S * POLLS_PER_S,
      e2eMs: Math.round(performance.now() - started),
    });
  } finally {
    for (const w of workers) w.shutdown();
    await Promise.allSettled(running);
    await native.close();
    await connection.close();
    await devServer.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { case: { type: 'string', default: 'all' } } });
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  if (values.case === 'all' || values.case === '1-minute') await oneMinute();
  if (values.case === 'all' || values.case === '1-hour') await oneHour();
}

runBench(main);
