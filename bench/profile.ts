// Where the orchestration overhead of one tiny-VM live migration goes (issue 11, item 3).
//
// 1. Through Temporal: `--runs` migrations per case on the whole stack (lib/stack.ts), each run's
//    history read back and cut along its critical path (bench/critical-path.ts): per workflow task
//    (latency, run, and the local activities it ran), per activity (queue, run), the waits for
//    signals; the median of each piece over the runs. A signal round trip with the migrationSlots
//    entity (a slot that was not free at once) is broken down from the entity's own history: the
//    request, the entity's workflow task, the delivery of its answer, the workflow task that reads it.
// 2. Without Temporal: the same steps called in-process, in the workflow's order, against the same
//    simulated hosts: the host activities on a MockActivityEnvironment with each host's own XenAPI
//    session (as an agent has), the conductor's with the stack's clients; each step's own cost and
//    its number of XenAPI calls, and which of them the recorded runs had on their critical path.
//    What (1) shows beyond (2) is Temporal's round trips.
// Cases: pool_migrate (xen-a <-> xen-b, named host), migrate_send (xen-a <-> xen-c, named host,
// 1 MiB local disk), scheduled (pool_migrate, the scheduler chooses the host): each with --vms VMs
// taken in turn, so that a VM is at rest (the inventory has seen its last move) when it moves again;
// straight_back: one VM sent back the moment it arrived (what a stale inventory costs).
// Prints a table per case on stderr and one JSON line per case and part on stdout.
//   node --import tsx bench/profile.ts [--runs 5] [--direct-runs 5] [--vms 4] [--cases pool_migrate,migrate_send,scheduled,straight_back]
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createConductorActivities, type ConductorActivities } from '../activities/conductor';
import { listPolledHosts } from '../activities/conductor/hosts';
import { createHostActivities, type HostActivities } from '../activities/host';
import type { DestinationFacts, InstanceView, MigrateToken } from '../activities/types';
import { findHost } from '../lib/config';
import { createLogger } from '../lib/logger';
import type { EncryptionCodec } from '../lib/payload-codec';
import { startStack, type Stack } from '../lib/stack';
import { payloadCodec } from '../lib/temporal-connection';
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
  /** One VM, back the moment it arrived, rather than --vms VMs in turn. */
  straightBack?: boolean;
}

const CASES: Record<string, Case> = {
  pool_migrate: { name: 'pool_migrate', peer: 'xen-b', sr: 'shared', diskMiB: [], named: true },
  migrate_send: { name: 'migrate_send', peer: 'xen-c', sr: 'local', diskMiB: [1], named: true },
  scheduled: { name: 'scheduled', peer: 'xen-b', sr: 'shared', diskMiB: [], named: false },
  straight_back: { name: 'straight_back', peer: 'xen-b', sr: 'shared', diskMiB: [], named: true, straightBack: true },
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

/** The stack's payload codec (temporal.encryption): raw histories hold ciphertext. Set once the stack runs. */
let codec: EncryptionCodec | undefined;

function decodeFirst(payloads: Payload[] | null | undefined): Record<string, unknown> | null {
  const payload = payloads?.[0];
  const data = payload && (codec ? codec.decrypt(payload) : payload).data;
  if (!data) return null;
  try {
    return JSON.parse(Buffer.from(data).toString('utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** Whether an entity event is this workflow's request for `answer` (a signal, or an update of version 3). */
function isRequest(e: HistoryEvent, answer: string, workflowId: string): boolean {
  const s = e.workflowExecutionSignaledEventAttributes;
  if (s) return s.signalName === ENTITY_ANSWERS[answer] && decodeFirst(s.input?.payloads)?.workflowId === workflowId;
  const u = e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input;
  return u != null && new RegExp(ENTITY_ANSWERS[answer] ?? '^$', 'i').test(u.name ?? '') && decodeFirst(u.args?.payloads)?.workflowId === workflowId;
}

/** Whether an entity event is its answer to this workflow: a signalExternal command, or (version 3) the activity that signals it. */
function isAnswer(e: HistoryEvent, answer: string, workflowId: string): boolean {
  const x = e.signalExternalWorkflowExecutionInitiatedEventAttributes;
  if (x) return x.signalName === answer && x.workflowExecution?.workflowId === workflowId;
  const a = e.activityTaskScheduledEventAttributes;
  if (a?.activityType?.name !== 'signalMigration') return false;
  const input = decodeFirst(a.input?.payloads);
  return input?.workflowId === workflowId && input?.signal === answer;
}

/** The signal round trips of one run with the slots entity, from both histories. */
function roundTrips(workflowId: string, events: HistoryEvent[], entity: HistoryEvent[], path: CriticalPath): RoundTrip[] {
  const trips: RoundTrip[] = [];
  const t0 = eventMs(events[0]?.eventTime);
  const asks = /slot|destination/i;
  for (const [i, piece] of path.pieces.entries()) {
    const answer = piece.kind === 'signal' ? piece.label.replace(/^signal /, '') : null;
    if (!answer || !ENTITY_ANSWERS[answer]) continue;
    const answeredAt = t0 + piece.atMs + piece.waitMs;
    const read = path.pieces[i + 1];
    // The request: the activity on the path before the wait, or the local activity of a workflow task.
    const request = path.pieces
      .slice(0, i)
      .reverse()
      .find((p) => (p.kind === 'activity' && asks.test(p.label)) || p.locals?.some((l) => asks.test(l.type)));
    // A local activity's own time is not in the history: the workflow task's run stands for it.
    const requestMs = request ? request.waitMs + request.runMs : NaN;
    // In the entity: this workflow's request before the answer, then the answer's command.
    const received = entity.filter((e) => isRequest(e, answer, workflowId) && eventMs(e.eventTime) <= answeredAt).pop();
    if (!received || !request || !read) continue;
    const entityTask = entity.find((e) => e.workflowTaskStartedEventAttributes && Number(e.eventId) > Number(received.eventId));
    const command = entity.find((e) => Number(e.eventId) > Number(received.eventId) && isAnswer(e, answer, workflowId));
    if (!entityTask || !command) continue;
    const tReceived = eventMs(received.eventTime);
    const tTask = eventMs(entityTask.eventTime);
    const tCommand = eventMs(command.eventTime);
    trips.push({
      answer,
      requestMs: round(requestMs),
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

/** The slots entity's history: in the system namespace (version 3) or the migrations' own; empty when neither has it. */
async function entityHistory(stack: Stack): Promise<HistoryEvent[]> {
  const temporalConfig = stack.config.temporal as { namespace: string; systemNamespace?: string };
  for (const namespace of [...new Set([temporalConfig.systemNamespace, temporalConfig.namespace])]) {
    if (!namespace) continue;
    const client = new Client({ connection: stack.client.connection, namespace, dataConverter: stack.client.options.dataConverter });
    const history = await client.workflow
      .getHandle(MIGRATION_SLOTS_WORKFLOW_ID)
      .fetchHistory()
      .catch(() => null);
    if (history) return history.events ?? [];
  }
  return [];
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
  const entity = await entityHistory(stack);
  return { run, path, trips: roundTrips(run.handle.workflowId, events, entity, path) };
}

interface StepRow {
  step: string;
  kind: Piece['kind'];
  waitMs: number;
  runMs: number;
  totalMs: number;
  /** For a workflow task: its local activities (part of runMs). */
  locals?: string[];
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
    const locals = piece.locals?.map((l) => (l.attempt > 1 ? `${l.type} (attempt ${l.attempt})` : l.type));
    return { step: piece.label, kind: piece.kind, waitMs: median(waits), runMs: median(works), totalMs: median(totals), ...(locals ? { locals } : {}) };
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
      ['step', 'kind', 'wait', 'run', 'total', 'local activities (inside run)'],
      steps.map((s) => [s.step, s.kind, s.waitMs, s.runMs, s.totalMs, s.locals?.join(', ') ?? '']),
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
  /** The conductor's activities (local activities of the workflow), with the stack's clients. */
  conductor: ConductorActivities;
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
  const temporalConfig = stack.config.temporal as { namespace: string; systemNamespace?: string };
  const systemClient = new Client({ connection: stack.client.connection, namespace: temporalConfig.systemNamespace ?? temporalConfig.namespace, dataConverter: stack.client.options.dataConverter });
  return {
    hosts,
    conductor: createConductorActivities({ config: stack.config, client: stack.client, systemClient }),
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
  const conductor = direct.conductor;
  const plan = await step('planLiveMigration', () => conductor.planLiveMigration({ instanceUuid: vmUuid, requestedHost: c.named ? dest : null }));
  const instance = await step('checkInstanceActive', () => direct.run(source, (a) => a.checkInstanceActive, { instanceUuid: vmUuid }));
  const samePool = pool(source) === pool(dest);
  const block = c.sr === 'local' || !samePool;
  // The slot, for a workflow id of the benchmark's own (given back below).
  const lease = { workflowId: `bench-profile-direct-${vmUuid}`, sourceHost: source, memoryBytes: instance.memoryBytes, limits: stack.config.migration.limits };
  await step('requestMigrationSlotNow', () => conductor.requestMigrationSlotNow({ ...lease, destHost: c.named ? dest : null }));
  if (!c.named) {
    await step('scheduleDestinations', () =>
      conductor.scheduleDestinations({ instance, source: plan.source, excluded: [source], blockMigration: block, reservedBytes: {}, limit: 3 }),
    );
    await step('reserveMigrationDestinationNow', () =>
      conductor.reserveMigrationDestinationNow({ workflowId: lease.workflowId, destHost: dest, memoryBytes: instance.memoryBytes, memoryFreeBytes: 2 ** 40 }),
    );
  }
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
  await step('releaseMigrationSlot', () => conductor.releaseMigrationSlot({ workflowId: lease.workflowId }));
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

/**
 * The direct steps' medians; onPath: the recorded runs ran that step (an activity, or a local
 * activity inside a workflow task) on their critical path. The sum of those is what a migration
 * would cost if Temporal's round trips were free.
 */
function reportDirect(c: Case, runs: Map<string, Timed>[], callMs: number, temporal: Profiled[]): void {
  const onPath = new Set(
    temporal.flatMap((r) => r.path.pieces.flatMap((p) => (p.kind === 'activity' ? [p.label] : (p.locals ?? []).map((l) => l.type)))),
  );
  const names = [...(runs[0]?.keys() ?? [])];
  const rows = names.map((name) => {
    const ms = median(runs.map((r) => r.get(name)?.ms ?? NaN));
    const calls = median(runs.map((r) => r.get(name)?.calls ?? NaN));
    const activity = name.split(/[ ,]/)[0] as string;
    const counted = !name.startsWith('(') && name !== 'migrateSend' && !name.startsWith('describeHost, one');
    return { step: name, ms, xenapiCalls: Number.isNaN(calls) ? null : calls, onPath: counted && onPath.has(activity) };
  });
  const total = round(rows.filter((r) => r.onPath).reduce((a, r) => a + r.ms, 0));
  process.stderr.write(
    table(
      `${c.name}: the steps without Temporal, medians of ${runs.length} runs (ms); one XenAPI call ${callMs} ms; the steps on the recorded path (*) add up to ${total}, without the transfer`,
      ['step', 'ms', 'XenAPI calls', 'on path'],
      rows.map((r) => [r.step, r.ms, r.xenapiCalls === null ? '' : String(r.xenapiCalls), r.onPath ? '*' : '']),
    ) + '\n',
  );
  emit('profile', { case: c.name, part: 'direct', runs: runs.length, xenapiCallMs: callMs, onPathWithoutTransferMs: total, steps: rows });
}

// ---- main ------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '5' },
      'direct-runs': { type: 'string', default: '5' },
      vms: { type: 'string', default: '4' },
      cases: { type: 'string', default: Object.keys(CASES).join(',') },
    },
  });
  const runs = Number(values.runs);
  const directRuns = Number(values['direct-runs']);
  const vms = Number(values.vms);
  const cases = values.cases.split(',').map((name) => {
    const c = CASES[name];
    if (!c) throw new Error(`unknown case ${name}: ${Object.keys(CASES).join(', ')}`);
    return c;
  });
  const stack = await startStack({ bandwidthMiBps: 512 });
  codec = payloadCodec(stack.config);
  try {
    // Warm-up, not reported: a fresh slots entity grants nothing for its first seconds (it asks the
    // running migrations to re-assert their leases), and the first runs pay for JIT and connections.
    const warm = await stack.sims.host('xen-a').admin.createVm({ nameLabel: 'bench-profile-warm-up', memoryMiB: 1, sr: 'shared' });
    await timedMigration(stack, warm.uuid, 'xen-a', 'xen-b');
    await timedMigration(stack, warm.uuid, 'xen-b', 'xen-a');
    const direct = await directActivities(stack);
    const callMs = await xenapiCallMs(stack, 50);
    for (const c of cases) {
      const fleet: { uuid: string; at: string }[] = [];
      for (let i = 0; i < (c.straightBack ? 1 : vms); i++) {
        const vm = await stack.sims.host('xen-a').admin.createVm({ nameLabel: `bench-profile-${c.name}-${i}`, memoryMiB: 1, sr: c.sr, diskMiB: c.diskMiB });
        fleet.push({ uuid: vm.uuid, at: 'xen-a' });
      }
      // The first run of each VM warms its path (and lets the inventory learn of it): not reported.
      const profiled: Profiled[] = [];
      for (let i = 0; i < runs + fleet.length; i++) {
        const vm = fleet[i % fleet.length] as { uuid: string; at: string };
        const dest = vm.at === 'xen-a' ? c.peer : 'xen-a';
        const p = await profileRun(stack, vm.uuid, vm.at, c.named ? dest : null);
        vm.at = p.run.outcome.destHost ?? dest;
        if (i >= fleet.length) profiled.push(p);
      }
      reportTemporal(c, profiled);
      const directs: Map<string, Timed>[] = [];
      for (let i = 0; i < directRuns + 1; i++) {
        const vm = fleet[i % fleet.length] as { uuid: string; at: string };
        const dest = vm.at === 'xen-a' ? c.peer : 'xen-a';
        const d = await directRun(stack, direct, c, vm.uuid, vm.at, dest);
        vm.at = dest;
        if (i > 0) directs.push(d);
      }
      reportDirect(c, directs, callMs, profiled);
    }
  } finally {
    await stack.stop();
  }
}

runBench(main);
