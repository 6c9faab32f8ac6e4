// Where the orchestration overhead of one tiny-VM live migration goes (issue 11, item 3).
//
// 1. Through Temporal: `--runs` migrations per case on the whole stack (lib/stack.ts), each run's
//    history read back and cut along its critical path (bench/critical-path.ts): per workflow task
//    (latency, run), per activity (queue, run), the waits for signals; the median of each piece over
//    the runs. The signal round trips with the migrationSlots entity are broken down from the
//    entity's own history: the migration's request activity, the entity's workflow task, the
//    delivery of its answer (signalExternal), the migration's workflow task that reads it.
// 2. Without Temporal: the same steps called in-process, in the workflow's order, against the same
//    simulated hosts (the host activities on a MockActivityEnvironment, each host's own XenAPI
//    session as an agent has, listPolledHosts with the stack's client): each step's own cost and its
//    number of XenAPI calls. What (1) shows beyond (2) is Temporal's round trips.
// Cases: pool_migrate (xen-a <-> xen-b, named host), migrate_send (xen-a <-> xen-c, named host,
// 1 MiB local disk), scheduled (pool_migrate, the scheduler chooses the host).
// Prints a table per case on stderr and one JSON line per case and part on stdout.
//   node --import tsx bench/profile.ts [--runs 5] [--cases pool_migrate,migrate_send,scheduled] [--direct-runs 10]
import { parseArgs } from 'node:util';
import { MockActivityEnvironment } from '@temporalio/testing';
import { listPolledHosts } from '../activities/conductor/hosts';
import { createHostActivities, type HostActivities } from '../activities/host';
import type { DestinationFacts, InstanceView, MigrateToken } from '../activities/types';
import { findHost } from '../lib/config';
import { createLogger } from '../lib/logger';
import { startStack, type Stack } from '../lib/stack';
import { XenApiClient } from '../xenapi/client';
import { MIGRATION_SLOTS_WORKFLOW_ID } from '../workflows/definitions';
import type { ConvergencePolicy } from '../workflows/convergence';
import { criticalPath, type CriticalPath, type Piece } from './critical-path';
import { eventMs, lastTransfer, startMigration, timedMigration, type HistoryEvent, type TimedMigration } from './migrations';
import { emit, percentile, round, runBench } from './report';

interface Case {
  name: string;
  peer: string;
  sr: 'shared' | 'local';
  diskMiB: number[];
  /** Name the destination, or let the scheduler choose. */
  named: boolean;
}

const CASES: Record<string, Case> = {
  pool_migrate: { name: 'pool_migrate', peer: 'xen-b', sr: 'shared', diskMiB: [], named: true },
  migrate_send: { name: 'migrate_send', peer: 'xen-c', sr: 'local', diskMiB: [1], named: true },
  scheduled: { name: 'scheduled', peer: 'xen-b', sr: 'shared', diskMiB: [], named: false },
};

const ENTITY_ANSWERS: Record<string, string> = { slotGranted: 'requestSlot', destinationReserved: 'reserveDestination' };

const median = (values: number[]) => round(percentile(values, 50), 1);

// ---- 1. through Temporal ------------------------------------------------------------------------

interface RoundTrip {
  answer: string;
  /** The migration's request activity: from its command to its close (a signalWithStart). */
  requestMs: number;
  /** From the entity's receipt of the request to its workflow task's start. */
  entityLatencyMs: number;
  /** The entity's workflow task, up to the answer's command (includes any wait of the entity, such as its start-up grace). */
  entityDecisionMs: number;
  /** From the answer's command to the signal in the migration's history. */
  deliveryMs: number;
  /** The migration's workflow task that reads the answer: latency + run. */
  readMs: number;
  /** From the request activity's command to the workflow task that read the answer completing. */
  totalMs: number;
}

function decodeFirst(payloads: { data?: Uint8Array | null }[] | null | undefined): Record<string, unknown> | null {
  const data = payloads?.[0]?.data;
  if (!data) return null;
  try {
    return JSON.parse(Buffer.from(data).toString('utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** The signal round trips of one run with the slots entity, from both histories. */
function roundTrips(workflowId: string, events: HistoryEvent[], entity: HistoryEvent[], path: CriticalPath): RoundTrip[] {
  const trips: RoundTrip[] = [];
  const t0 = eventMs(events[0]?.eventTime);
  for (const [i, piece] of path.pieces.entries()) {
    const answer = piece.kind === 'signal' ? piece.label.replace(/^signal /, '') : null;
    if (!answer || !ENTITY_ANSWERS[answer]) continue;
    const answeredAt = t0 + piece.atMs + piece.waitMs;
    const read = path.pieces[i + 1];
    // The request: the activity on the path before the wait (requestMigrationSlot, reserveMigrationDestination).
    const request = path.pieces
      .slice(0, i)
      .reverse()
      .find((p) => p.kind === 'activity');
    // In the entity: the request signal from this workflow before the answer, the answer's command after it.
    const requests = entity.filter((e) => {
      const s = e.workflowExecutionSignaledEventAttributes;
      return s?.signalName === ENTITY_ANSWERS[answer] && decodeFirst(s?.input?.payloads)?.workflowId === workflowId && eventMs(e.eventTime) <= answeredAt;
    });
    const received = requests[requests.length - 1];
    if (!received || !request || !read) continue;
    const entityTask = entity.find((e) => e.workflowTaskStartedEventAttributes && Number(e.eventId) > Number(received.eventId));
    const command = entity.find(
      (e) =>
        Number(e.eventId) > Number(received.eventId) &&
        e.signalExternalWorkflowExecutionInitiatedEventAttributes?.signalName === answer &&
        e.signalExternalWorkflowExecutionInitiatedEventAttributes.workflowExecution?.workflowId === workflowId,
    );
    if (!entityTask || !command) continue;
    const tReceived = eventMs(received.eventTime);
    const tTask = eventMs(entityTask.eventTime);
    const tCommand = eventMs(command.eventTime);
    trips.push({
      answer,
      requestMs: round(request.waitMs + request.runMs),
      entityLatencyMs: round(tTask - tReceived),
      entityDecisionMs: round(tCommand - tTask),
      deliveryMs: round(answeredAt - tCommand),
      readMs: round(read.waitMs + read.runMs),
      totalMs: round(read.atMs + read.waitMs + read.runMs - request.atMs),
    });
  }
  return trips;
}

interface Profiled {
  run: TimedMigration;
  path: CriticalPath;
  trips: RoundTrip[];
}

async function profileRun(stack: Stack, vmUuid: string, source: string, dest: string | null): Promise<Profiled> {
  let run: TimedMigration;
  if (dest) {
    run = await timedMigration(stack, vmUuid, source, dest);
  } else {
    // The scheduler chooses: timed as timedMigration does.
    const started = performance.now();
    const handle = await startMigration(stack.client, stack.config.taskQueues.conductor, { instanceUuid: vmUuid });
    const outcome = (await handle.result()) as TimedMigration['outcome'];
    const e2eMs = performance.now() - started;
    if (outcome.status !== 'completed') throw new Error(`scheduled migration of ${vmUuid} ended ${outcome.status}: ${outcome.message ?? ''}`);
    const transfer = await lastTransfer(stack.sims.host(source).admin, vmUuid);
    const described = await handle.describe();
    run = {
      handle,
      outcome,
      e2eMs,
      serverMs: (described.closeTime?.getTime() ?? NaN) - described.startTime.getTime(),
      transfer,
      overheadMs: e2eMs - Number(transfer.totalMs),
    };
  }
  const events = (await run.handle.fetchHistory()).events ?? [];
  const path = criticalPath(events);
  const entity = (await stack.client.workflow.getHandle(MIGRATION_SLOTS_WORKFLOW_ID).fetchHistory()).events ?? [];
  return { run, path, trips: roundTrips(run.handle.workflowId, events, entity, path) };
}

interface StepRow {
  step: string;
  kind: Piece['kind'];
  waitMs: number;
  runMs: number;
  totalMs: number;
}

/** The median of each piece over runs whose paths have the same shape (pieces matched by position and label). */
function medianPath(runs: Profiled[]): StepRow[] {
  const shape = (p: CriticalPath) => p.pieces.map((x) => `${x.kind}:${x.label}`).join('|');
  const counts = new Map<string, number>();
  for (const r of runs) counts.set(shape(r.path), (counts.get(shape(r.path)) ?? 0) + 1);
  const common = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  const same = runs.filter((r) => shape(r.path) === common);
  const first = same[0]?.path.pieces ?? [];
  return first.map((piece, i) => {
    const waits = same.map((r) => (r.path.pieces[i] as Piece).waitMs);
    const works = same.map((r) => (r.path.pieces[i] as Piece).runMs);
    const totals = same.map((r) => (r.path.pieces[i] as Piece).waitMs + (r.path.pieces[i] as Piece).runMs);
    return { step: piece.label, kind: piece.kind, waitMs: median(waits), runMs: median(works), totalMs: median(totals) };
  });
}

interface Category {
  count: number;
  waitMs: number;
  runMs: number;
}

/** Medians over runs of each category's sum along the path. */
function categories(runs: Profiled[]): Record<string, Category> {
  const keys = new Set(runs.flatMap((r) => r.path.pieces.map((p) => p.kind)));
  const out: Record<string, Category> = {};
  for (const k of keys) {
    const per = runs.map((r) => r.path.pieces.filter((p) => p.kind === k));
    out[k] = {
      count: median(per.map((p) => p.length)),
      waitMs: median(per.map((p) => p.reduce((a, x) => a + x.waitMs, 0))),
      runMs: median(per.map((p) => p.reduce((a, x) => a + x.runMs, 0))),
    };
  }
  return out;
}

function table(title: string, header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? c.toFixed(1) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: (string | number)[]) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i] ?? 0) : String(c).padStart(widths[i] ?? 0))).join('  ');
  return [`\n${title}`, line(cells[0] as string[]), ...cells.slice(1).map(line)].join('\n');
}

function reportTemporal(c: Case, runs: Profiled[]): void {
  const steps = medianPath(runs);
  const cats = categories(runs);
  const e2e = median(runs.map((r) => r.run.e2eMs));
  const server = median(runs.map((r) => r.run.serverMs));
  const transfer = median(runs.map((r) => Number(r.run.transfer.totalMs)));
  const overhead = median(runs.map((r) => r.run.overheadMs));
  const trips = runs.flatMap((r) => r.trips);
  const tripNames = [...new Set(trips.map((t) => t.answer))];
  const tripRows = tripNames.map((answer) => {
    const of = trips.filter((t) => t.answer === answer);
    const m = (k: keyof RoundTrip) => median(of.map((t) => t[k] as number));
    return { answer, requestMs: m('requestMs'), entityLatencyMs: m('entityLatencyMs'), entityDecisionMs: m('entityDecisionMs'), deliveryMs: m('deliveryMs'), readMs: m('readMs'), totalMs: m('totalMs') };
  });
  process.stderr.write(
    table(
      `${c.name}: critical path of the run, medians of ${runs.length} runs (ms); e2e ${e2e}, in Temporal ${server}, simulator transfer ${transfer}, overhead ${overhead}`,
      ['step', 'kind', 'wait', 'run', 'total'],
      steps.map((s) => [s.step, s.kind, s.waitMs, s.runMs, s.totalMs]),
    ) +
      table(
        `${c.name}: by kind (sum along the path; wait = dispatch latency or queue time)`,
        ['kind', 'count', 'wait', 'run', 'total'],
        Object.entries(cats).map(([k, v]) => [k, v.count, v.waitMs, v.runMs, round(v.waitMs + v.runMs)]),
      ) +
      (tripRows.length
        ? table(
            `${c.name}: round trips with the migrationSlots entity (ms)`,
            ['answer', 'request activity', 'entity latency', 'entity decision', 'delivery', 'read', 'total'],
            tripRows.map((t) => [t.answer, t.requestMs, t.entityLatencyMs, t.entityDecisionMs, t.deliveryMs, t.readMs, t.totalMs]),
          )
        : '') +
      '\n',
  );
  emit('profile', {
    case: c.name,
    part: 'temporal',
    runs: runs.length,
    e2eMs: e2e,
    serverMs: server,
    transferMs: transfer,
    overheadMs: overhead,
    historyEvents: median(runs.map((r) => r.path.events)),
    workflowTasks: median(runs.map((r) => r.path.workflowTasks)),
    activities: median(runs.map((r) => r.path.activities)),
    byKind: cats,
    roundTrips: tripRows,
    steps,
  });
}

// ---- 2. without Temporal -------------------------------------------------------------------------

interface Direct {
  hosts: Map<string, { activities: HostActivities; calls: () => number }>;
  run<A extends unknown[], R>(host: string, fn: (acts: HostActivities) => (...args: A) => Promise<R>, ...args: A): Promise<R>;
}

/** Each host's activities with its own XenAPI session (as an agent has), counting XenAPI calls. */
async function directActivities(stack: Stack): Promise<Direct> {
  const logger = createLogger('bench-profile');
  logger.level = 'warn';
  const hosts = new Map<string, { activities: HostActivities; calls: () => number }>();
  for (const h of stack.config.hosts) {
    const xenapi = new XenApiClient({ url: h.xenapiUrl, user: h.user, password: stack.password, timeoutMs: 20_000 });
    let calls = 0;
    const raw = xenapi.rawCall.bind(xenapi);
    xenapi.rawCall = <T>(method: string, params: Parameters<typeof raw>[1]) => {
      calls++;
      return raw<T>(method, params);
    };
    await xenapi.login();
    const activities = createHostActivities({ host: findHost(stack.config, h.name), xenapi, logger, reportProgress: async () => undefined });
    hosts.set(h.name, { activities, calls: () => calls });
  }
  return {
    hosts,
    run: (host, fn, ...args) => new MockActivityEnvironment().run(fn((hosts.get(host) as { activities: HostActivities }).activities), ...args),
  };
}

interface Timed {
  ms: number;
  calls: number;
}

function convergenceFor(stack: Stack, instance: InstanceView, block: boolean): ConvergencePolicy {
  const p = stack.config.migration;
  return {
    completionSeconds: p.completionTimeoutPerGiB * ((instance.memoryBytes + (block ? instance.diskBytes : 0)) / 2 ** 30),
    timeoutAction: p.timeoutAction,
    progressTimeoutSeconds: p.progressTimeout,
    autoConverge: p.autoConverge.enabled,
    capSteps: p.autoConverge.capSteps,
    stepSeconds: p.autoConverge.stepSeconds,
    forceCompleteAfterLastStep: p.autoConverge.forceCompleteAfterLastStep,
  };
}

/** One migration's steps in the workflow's order, each timed, without Temporal. */
async function directRun(stack: Stack, direct: Direct, c: Case, vmUuid: string, source: string, dest: string): Promise<Map<string, Timed>> {
  const out = new Map<string, Timed>();
  const allCalls = () => [...direct.hosts.values()].reduce((a, h) => a + h.calls(), 0);
  const step = async <R>(name: string, fn: () => Promise<R>): Promise<R> => {
    const calls = allCalls();
    const started = performance.now();
    const result = await fn();
    out.set(name, { ms: performance.now() - started, calls: allCalls() - calls });
    return result;
  };
  const pool = (name: string) => findHost(stack.config, name).pool;
  await step('listPolledHosts', () => listPolledHosts(stack.config, stack.client));
  const each: number[] = [];
  await step('describeHost, every host in parallel', () =>
    Promise.all(
      stack.config.hosts.map(async (h) => {
        const started = performance.now();
        await direct.run(h.name, (a) => a.describeHost);
        each.push(performance.now() - started);
      }),
    ),
  );
  out.set('describeHost, one host (slowest of the parallel ones)', { ms: Math.max(...each), calls: NaN });
  const instance = await step('checkInstanceActive', () => direct.run(source, (a) => a.checkInstanceActive, { instanceUuid: vmUuid }));
  const samePool = pool(source) === pool(dest);
  const block = c.sr === 'local' || !samePool;
  const facts = await step('checkCanLiveMigrateDestination', () =>
    direct.run(dest, (a) => a.checkCanLiveMigrateDestination, { instance, sourceHost: { name: source, pool: pool(source) }, blockMigration: block }),
  );
  let token: MigrateToken | null = null;
  if (block || !samePool) token = await step('migrateReceive', () => direct.run(dest, (a) => a.migrateReceive));
  await step('assertCanMigrate', () => direct.run(source, (a) => a.assertCanMigrate, { instanceUuid: vmUuid, destination: facts, blockMigration: block, token, samePool }));
  const prepared: DestinationFacts = await step('preLiveMigration', () => direct.run(dest, (a) => a.preLiveMigration));
  await step('migrateSend', () =>
    direct.run(source, (a) => a.migrateSend, {
      instanceUuid: vmUuid,
      destination: prepared,
      blockMigration: block,
      token,
      samePool,
      workflowId: 'bench-profile-direct',
      convergence: convergenceFor(stack, instance, block),
    }),
  );
  const transfer = await lastTransfer(stack.sims.host(source).admin, vmUuid);
  const send = out.get('migrateSend') as Timed;
  out.set('migrateSend without the transfer', { ms: send.ms - Number(transfer.totalMs), calls: send.calls });
  out.set('(simulator transfer)', { ms: Number(transfer.totalMs), calls: NaN });
  await step('postLiveMigrationAtDestination', () => direct.run(dest, (a) => a.postLiveMigrationAtDestination, { instanceUuid: vmUuid }));
  await step('postLiveMigration', () => direct.run(source, (a) => a.postLiveMigration, { instanceUuid: vmUuid }));
  return out;
}

/** One XenAPI call's round trip (pool.get_all_records), for scale. */
async function xenapiCallMs(stack: Stack, n: number): Promise<number> {
  const host = stack.config.hosts[0];
  if (!host) return NaN;
  const xenapi = new XenApiClient({ url: host.xenapiUrl, user: host.user, password: stack.password });
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await xenapi.getAllRecords('pool');
    times.push(performance.now() - started);
  }
  await xenapi.logout();
  return median(times);
}

function reportDirect(c: Case, runs: Map<string, Timed>[], callMs: number): void {
  const names = [...(runs[0]?.keys() ?? [])];
  const rows = names.map((name) => {
    const ms = median(runs.map((r) => r.get(name)?.ms ?? NaN));
    const calls = median(runs.map((r) => r.get(name)?.calls ?? NaN));
    return { step: name, ms, xenapiCalls: Number.isNaN(calls) ? null : calls };
  });
  const summed = rows.filter((r) => !r.step.startsWith('(') && r.step !== 'migrateSend' && !r.step.startsWith('describeHost, one'));
  const total = round(summed.reduce((a, r) => a + r.ms, 0));
  process.stderr.write(
    table(
      `${c.name}: the same steps without Temporal, medians of ${runs.length} runs (ms); one XenAPI call ${callMs} ms; steps without the transfer add up to ${total}`,
      ['step', 'ms', 'XenAPI calls'],
      rows.map((r) => [r.step, r.ms, r.xenapiCalls === null ? '' : String(r.xenapiCalls)]),
    ) + '\n',
  );
  emit('profile', { case: c.name, part: 'direct', runs: runs.length, xenapiCallMs: callMs, stepsWithoutTransferMs: total, steps: rows });
}

// ---- main ------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '5' },
      'direct-runs': { type: 'string', default: '10' },
      cases: { type: 'string', default: Object.keys(CASES).join(',') },
    },
  });
  const runs = Number(values.runs);
  const directRuns = Number(values['direct-runs']);
  const cases = values.cases.split(',').map((name) => {
    const c = CASES[name];
    if (!c) throw new Error(`unknown case ${name}: ${Object.keys(CASES).join(', ')}`);
    return c;
  });
  const stack = await startStack({ bandwidthMiBps: 512 });
  try {
    // Warm-up, not reported: a fresh slots entity grants nothing for its first seconds (it asks the
    // running migrations to re-assert their leases), and the first runs pay for JIT and connections.
    const warm = await stack.sims.host('xen-a').admin.createVm({ nameLabel: 'bench-profile-warm-up', memoryMiB: 1, sr: 'shared' });
    await timedMigration(stack, warm.uuid, 'xen-a', 'xen-b');
    await timedMigration(stack, warm.uuid, 'xen-b', 'xen-a');
    const direct = await directActivities(stack);
    const callMs = await xenapiCallMs(stack, 50);
    for (const c of cases) {
      const vm = await stack.sims.host('xen-a').admin.createVm({ nameLabel: `bench-profile-${c.name}`, memoryMiB: 1, sr: c.sr, diskMiB: c.diskMiB });
      let at = 'xen-a';
      const profiled: Profiled[] = [];
      for (let i = 0; i < runs + 1; i++) {
        const dest = at === 'xen-a' ? c.peer : 'xen-a';
        const p = await profileRun(stack, vm.uuid, at, c.named ? dest : null);
        at = p.run.outcome.destHost ?? dest;
        if (i > 0) profiled.push(p); // the first run of a case warms its path
      }
      reportTemporal(c, profiled);
      const directs: Map<string, Timed>[] = [];
      for (let i = 0; i < directRuns + 1; i++) {
        const dest = at === 'xen-a' ? c.peer : 'xen-a';
        const d = await directRun(stack, direct, c, vm.uuid, at, dest);
        at = dest;
        if (i > 0) directs.push(d);
      }
      reportDirect(c, directs, callMs);
    }
  } finally {
    await stack.stop();
  }
}

runBench(main);
