// The chaos matrix's cell runner (GitHub issue 10, item 6): one live migration through the real
// stack per cell, held in a phase of the workflow, a fault injected there, then the checks every
// migration must pass however it ended: it ended within a bound, the VM runs on exactly one host
// with its disks and memory intact, nothing is left in the other pool, every lease is released,
// and the API shows what the workflow says.
//
// One stack serves many cells: every cell creates its own VM on the source (xen-a, pool-1) and
// migrates it to xen-c (pool-2, alone: a cross-pool block migration), and puts the links, round
// limits and faults back afterwards, whatever happened.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { executeControlUpdate } from '../../lib/control-update';
import { hostQueue, parseConfig } from '../../lib/config';
import type { Stack, StackOptions } from '../../lib/stack';
import type { CreateVmRequest } from '../../simulator/admin-client';
import {
  abortUpdate,
  MIGRATION_SLOTS_WORKFLOW_ID,
  releaseSlotSignal,
  type MigrationStatusView,
} from '../../workflows/definitions';
import { leftovers, placements, slots, startMigration } from '../e2e/helpers';

export const PHASES = ['scheduling', 'preparing', 'precopy', 'stop_and_copy', 'post_migration', 'rolling_back'] as const;
export type ChaosPhase = (typeof PHASES)[number];
export const FAULTS = ['kill-conductor', 'kill-source-agent', 'kill-dest-agent', 'kill-api', 'restart-temporal', 'cut-data', 'dest-crash'] as const;
export type ChaosFault = (typeof FAULTS)[number];

export const SOURCE = 'xen-a';
export const DEST = 'xen-c';

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
/** A run must end within this after the fault (a crashed destination: after it is back). */
export const END_BOUND_MS = env('CHAOS_END_BOUND_S', 180) * 1000;
/** How long a crashed destination stays down at most when the run does not end without it. */
export const DOWN_BOUND_MS = env('CHAOS_DOWN_BOUND_S', 180) * 1000;
/** How long the phase may take to show up. */
const REACH_BOUND_MS = 60_000;
/**
 * The workflow's hostTimeout (how long one step waits for a host) in the chaos stack: below
 * DOWN_BOUND, so a run that gives up on a dead host can end while it is down, and above a step's
 * 60 s start-to-close timeout, so a step lost with a killed agent is retried once it is back.
 */
const HOST_TIMEOUT_S = 75;

const FULL_BANDWIDTH = 512;
const DEFAULT_ITERATIONS = 5;

/** Every cell, in the order the matrix runs them. */
export function allCells(): { phase: ChaosPhase; fault: ChaosFault }[] {
  return PHASES.flatMap((phase) => FAULTS.map((fault) => ({ phase, fault })));
}

/**
 * The chaos stack: xen-a and xen-b in pool-1, xen-c alone in pool-2, Temporal on a database file
 * (so it can be restarted), the API as a process, auto-converge and the completion timeout off (the
 * harness decides when pre-copy may converge).
 */
export function chaosStackOptions(): StackOptions {
  const migration: Record<string, unknown> = {
    autoConverge: { enabled: false },
    completionTimeoutPerGiB: 0,
  };
  if (configKnows('hostTimeout')) migration.hostTimeout = HOST_TIMEOUT_S;
  return {
    hosts: [
      { name: 'xen-a', pool: 'pool-1' },
      { name: 'xen-b', pool: 'pool-1' },
      { name: 'xen-c', pool: 'pool-2' },
    ],
    bandwidthMiBps: FULL_BANDWIDTH,
    persistTemporal: true,
    api: true,
    migration,
  };
}

/** Whether temporal.yaml's migration section has this field (the workflow is being restructured). */
function configKnows(field: string): boolean {
  try {
    parseConfig({ hosts: [{ name: 'h', pool: 'p', xenapiUrl: 'http://127.0.0.1:1/', user: 'root', passwordEnv: 'X' }], migration: { [field]: 1 } }, 'probe');
    return true;
  } catch {
    return false;
  }
}

export interface CellResult {
  phase: ChaosPhase;
  fault: ChaosFault;
  /** The migration's Nova status at the end (completed, cancelled, failed, error), or what stopped the cell. */
  outcome: string;
  seconds: number;
  ok: boolean;
  /** Every check that failed. */
  problems: string[];
  /** What happened on the way (how the fault went, the run's error). */
  notes: string[];
  runId?: string;
  vmUuid?: string;
  endBoundS: number;
}

interface Ctx {
  stack: Stack;
  handle?: WorkflowHandle;
  /** The run the cell started (Nova's migration uuid, the API's id). */
  runId?: string;
  /** Another migration from the source holding its outbound slot (scheduling, preparing). */
  blocker?: { vm: { uuid: string; ref: string }; handle: WorkflowHandle };
  vm?: { uuid: string; ref: string };
  notes: string[];
}

const admin = (stack: Stack, host: string) => stack.sims.host(host).admin;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- phases: how to get a migration there and hold it, and how to let it go ----

interface PhasePlan {
  vm: Omit<CreateVmRequest, 'nameLabel'>;
  /** The guest never writes its memory: the memory checksum must equal the one before. */
  staticMemory: boolean;
  /** Before the migration starts (links, slow answers). */
  before(ctx: Ctx): Promise<void>;
  /** Waits until the workflow is in the phase, holding it there. */
  reach(ctx: Ctx): Promise<void>;
  /** Takes the hold away so the migration can go on. */
  release(ctx: Ctx): Promise<void>;
}

async function setLink(stack: Stack, MiBps: number, maxIterations: number): Promise<void> {
  await admin(stack, SOURCE).setBandwidth(MiBps);
  await admin(stack, SOURCE).setMaxIterations(maxIterations);
}

const DISK_MIB = 4;
const MiB = 2 ** 20;

/** The held pre-copy: the guest dirties its 32 MiB faster than the 16 MiB/s link sends, with no round limit. */
const precopyVm: Omit<CreateVmRequest, 'nameLabel'> = { memoryMiB: 32, sr: 'local', diskMiB: [DISK_MIB], dirtyRateMiBps: 32 };

/**
 * Holds the cell's migration in `queued`: a migration of another VM from the source (to xen-b,
 * same pool) that never converges holds the source's one outbound slot.
 */
async function startBlocker(ctx: Ctx): Promise<void> {
  const { stack } = ctx;
  const vm = await admin(stack, SOURCE).createVm({ nameLabel: `chaos-blocker-${cellCounter}`, memoryMiB: 32, sr: 'shared', dirtyRateMiBps: 32 });
  await setLink(stack, 16, 0);
  ctx.blocker = { vm, handle: await startMigration(stack, { instanceUuid: vm.uuid, host: 'xen-b' }) };
  await waitForPhase({ ...ctx, handle: ctx.blocker.handle }, (s) => s.phase === 'precopy');
}

/** Lets the blocker converge and waits for it: its slot goes to the cell's migration. */
async function endBlocker(ctx: Ctx): Promise<void> {
  const blocker = ctx.blocker;
  if (!blocker) return;
  await admin(ctx.stack, SOURCE).setGuest(blocker.vm.uuid, { dirtyRateMiBps: 0 });
  await setLink(ctx.stack, FULL_BANDWIDTH, DEFAULT_ITERATIONS);
  const end = await awaitEnd(blocker.handle, REACH_BOUND_MS);
  if (!end.ended) throw new CellError('the blocking migration did not end');
  ctx.blocker = undefined;
}

/**
 * Scheduling and preparing: the cell's migration waits queued behind a blocker while every XenAPI
 * answer of the destination's pool is slowed (700 ms), then gets the slot: the destination checks
 * of the scheduling loop, then preLiveMigration, take seconds each. (Slowing the pool before the
 * start would slow its agent's inventory reports too.)
 */
function heldBeforeDestination(phase: 'scheduling' | 'preparing'): PhasePlan {
  return {
    vm: { memoryMiB: 16, sr: 'local', diskMiB: [DISK_MIB], dirtyRateMiBps: 0 },
    staticMemory: true,
    before: startBlocker,
    reach: async (ctx) => {
      await waitForPhase(ctx, (s) => s.phase === 'queued');
      await admin(ctx.stack, DEST).slow(700);
      await endBlocker(ctx);
      await waitForPhase(ctx, (s) => s.phase === phase);
    },
    release: async ({ stack }) => admin(stack, DEST).slow(0),
  };
}

const PLANS: Record<ChaosPhase, PhasePlan> = {
  scheduling: heldBeforeDestination('scheduling'),
  preparing: heldBeforeDestination('preparing'),
  precopy: {
    vm: precopyVm,
    staticMemory: false,
    before: async ({ stack }) => setLink(stack, 16, 0),
    reach: async (ctx) => {
      await waitForPhase(ctx, (s) => s.phase === 'precopy' && (s.progress?.fraction ?? 0) > 0);
    },
    // The guest stops writing and the link is fast again: pre-copy converges by itself.
    release: async (ctx) => {
      await admin(ctx.stack, SOURCE).setGuest((ctx.vm as { uuid: string }).uuid, { dirtyRateMiBps: 0 }).catch(() => undefined);
      await setLink(ctx.stack, FULL_BANDWIDTH, DEFAULT_ITERATIONS);
    },
  },
  // One pre-copy round, then stop-and-copy resends the whole 16 MiB working set at 4 MiB/s: about
  // 4 s in which xapi's task is no longer cancellable (the point of no return).
  stop_and_copy: {
    vm: { memoryMiB: 16, sr: 'local', diskMiB: [DISK_MIB], dirtyRateMiBps: 16 },
    staticMemory: false,
    before: async ({ stack }) => setLink(stack, 4, 1),
    reach: async (ctx) => {
      await waitForPhase(ctx, (s) => s.phase === 'stop_and_copy');
    },
    release: async ({ stack }) => setLink(stack, FULL_BANDWIDTH, DEFAULT_ITERATIONS),
  },
  // A short transfer on a slower link; once it runs the destination's pool answers slowly, so
  // postLiveMigrationAtDestination takes seconds.
  post_migration: {
    vm: { memoryMiB: 16, sr: 'local', diskMiB: [DISK_MIB], dirtyRateMiBps: 0 },
    staticMemory: true,
    before: async ({ stack }) => setLink(stack, 8, DEFAULT_ITERATIONS),
    reach: async (ctx) => {
      await waitForPhase(ctx, (s) => s.phase === 'precopy');
      await admin(ctx.stack, DEST).slow(1500);
      await waitForPhase(ctx, (s) => s.phase === 'post_migration');
    },
    release: async ({ stack }) => {
      await admin(stack, DEST).slow(0);
      await setLink(stack, FULL_BANDWIDTH, DEFAULT_ITERATIONS);
    },
  },
  // The held pre-copy, aborted; both pools answer slowly, so the rollback's steps take seconds.
  rolling_back: {
    vm: precopyVm,
    staticMemory: false,
    before: async ({ stack }) => setLink(stack, 16, 0),
    reach: async (ctx) => {
      await waitForPhase(ctx, (s) => s.phase === 'precopy' && (s.progress?.fraction ?? 0) > 0);
      await admin(ctx.stack, SOURCE).slow(800);
      await admin(ctx.stack, DEST).slow(800);
      await executeControlUpdate(ctx.handle as WorkflowHandle, abortUpdate, 'chaos: abort to roll back');
      await waitForPhase(ctx, (s) => s.phase === 'rolling_back');
    },
    release: async ({ stack }) => {
      await admin(stack, SOURCE).slow(0);
      await admin(stack, DEST).slow(0).catch(() => undefined);
      await setLink(stack, FULL_BANDWIDTH, DEFAULT_ITERATIONS);
    },
  },
};

/** Polls the status query (every 100 ms) until `predicate` holds; fails at once when the run ends first. */
async function waitForPhase(ctx: Ctx, predicate: (s: MigrationStatusView) => boolean): Promise<MigrationStatusView> {
  const handle = ctx.handle as WorkflowHandle;
  const deadline = Date.now() + REACH_BOUND_MS;
  let last: MigrationStatusView | undefined;
  for (;;) {
    last = await handle.query<MigrationStatusView>('status').catch(() => last);
    if (last && predicate(last)) return last;
    if (last?.phase === 'done') throw new CellError(`phase never reached: the run ended first (${last.status}: ${last.error?.message ?? ''})`);
    if (Date.now() > deadline) throw new CellError(`phase not reached in ${REACH_BOUND_MS / 1000} s; last phase ${last?.phase ?? '?'}`);
    await sleep(100);
  }
}

class CellError extends Error {}

// ---- faults ----

/** Bytes the source sends before its migration connection is cut, for a cut armed before the transfer. */
function cutAt(phase: ChaosPhase): number {
  switch (phase) {
    case 'precopy':
      // Disk, the first round, and half of the second: well after the first progress report.
      return (DISK_MIB + 32 + 16) * MiB;
    case 'stop_and_copy':
      // Disk, the one pre-copy round, then half of stop-and-copy's 16 MiB.
      return (DISK_MIB + 16 + 8) * MiB;
    default:
      // Within the first round.
      return (DISK_MIB + 8) * MiB;
  }
}

/** A cut armed before the migration starts (the simulator cuts the next connection). */
function cutArmedBefore(phase: ChaosPhase): boolean {
  return phase === 'precopy' || phase === 'stop_and_copy';
}

async function waitForPollers(stack: Stack, boundMs: number): Promise<number> {
  const started = Date.now();
  const queues: [string, 1 | 2][] = [
    [stack.config.taskQueues.conductor, 1],
    ...stack.config.hosts.map((h): [string, 2] => [hostQueue(stack.config, h.name), 2]),
  ];
  for (const [queue, type] of queues) {
    for (;;) {
      const response = await stack.client.workflowService
        .describeTaskQueue({ namespace: stack.config.temporal.namespace, taskQueue: { name: queue }, taskQueueType: type })
        .catch(() => null);
      if ((response?.pollers ?? []).length > 0) break;
      if (Date.now() - started > boundMs) throw new CellError(`no worker polls ${queue} ${boundMs / 1000} s after the Temporal restart`);
      await sleep(250);
    }
  }
  return Date.now() - started;
}

/** Injects the fault (and, for a process, starts it again). Returns when the fault is in place. */
async function inject(ctx: Ctx, phase: ChaosPhase, fault: ChaosFault): Promise<void> {
  const { stack } = ctx;
  switch (fault) {
    case 'kill-conductor':
      await stack.killConductor();
      await sleep(500);
      await stack.startConductor();
      return;
    case 'kill-source-agent':
      await stack.killAgent(SOURCE);
      await sleep(500);
      await stack.startAgent(SOURCE);
      return;
    case 'kill-dest-agent':
      await stack.killAgent(DEST);
      await sleep(500);
      await stack.startAgent(DEST);
      return;
    case 'kill-api':
      await stack.killApi();
      await sleep(500);
      await stack.startApi();
      return;
    case 'restart-temporal': {
      const started = Date.now();
      await stack.restartDevServer();
      const serverMs = Date.now() - started;
      const pollMs = await waitForPollers(stack, 60_000);
      ctx.notes.push(`temporal back in ${(serverMs / 1000).toFixed(1)} s, every worker polls again ${(pollMs / 1000).toFixed(1)} s later`);
      return;
    }
    case 'cut-data':
      if (cutArmedBefore(phase)) {
        // The hold never converges: the cut fires within seconds; only then is the hold released.
        ctx.notes.push(`data connection cut armed before the start, after ${cutAt(phase) / MiB} MiB`);
        await waitForPhase(ctx, (s) => s.phase !== phase && s.phase !== 'precopy');
      } else if (phase === 'scheduling' || phase === 'preparing') {
        await admin(stack, SOURCE).cutDataAfter(cutAt(phase));
        ctx.notes.push(`data connection cut armed in ${phase}, after ${cutAt(phase) / MiB} MiB`);
      } else {
        // No transfer left to cut: the destination's pool freezes (accepts, never answers) for 10 s.
        await admin(stack, DEST).freeze();
        ctx.notes.push('destination frozen 10 s');
        await sleep(10_000);
        await admin(stack, DEST).thaw();
      }
      return;
    case 'dest-crash':
      await stack.sims.crash(DEST);
      return;
  }
}

// ---- the end of a run, and the checks ----

interface End {
  ended: boolean;
  /** Temporal's status of the run: COMPLETED, FAILED, CANCELLED, TERMINATED, ... */
  closeStatus?: string;
  view?: MigrationStatusView;
}

/** Waits for the run to close (describe, robust to a restarting server), then reads its status. */
async function awaitEnd(handle: WorkflowHandle, boundMs: number): Promise<End> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const described = await handle.describe().catch(() => null);
    if (described && described.status.name !== 'RUNNING') {
      const view = await handle.query<MigrationStatusView>('status').catch(() => undefined);
      return { ended: true, closeStatus: described.status.name, view };
    }
    if (Date.now() > deadline) return { ended: false };
    await sleep(500);
  }
}

/** Every record of the VM in every pool's database (admin state of one member per pool). */
async function vmRecords(stack: Stack, uuid: string): Promise<{ pool: string; powerState: string; residentOn: string }[]> {
  const seen = new Set<string>();
  const out: { pool: string; powerState: string; residentOn: string }[] = [];
  for (const host of stack.sims.hosts) {
    if (seen.has(host.pool)) continue;
    const state = await host.admin.state().catch(() => null);
    if (!state) continue;
    seen.add(host.pool);
    for (const rec of Object.values(state.records.VM)) {
      if (rec.uuid === uuid) out.push({ pool: host.pool, powerState: String(rec.power_state), residentOn: String(rec.resident_on) });
    }
  }
  return out;
}

/** Half-received files anywhere. */
async function partialFiles(stack: Stack): Promise<string[]> {
  const out: string[] = [];
  for (const host of stack.sims.hosts) {
    const state = await host.admin.state().catch(() => null);
    for (const f of [...(state?.srFiles.local ?? []), ...(state?.srFiles.shared ?? [])]) if (f.includes('.partial')) out.push(`${host.name}: ${f}`);
  }
  return out;
}

async function poll<T>(boundMs: number, read: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const v = await read();
    if (done(v) || Date.now() > deadline) return v;
    await sleep(250);
  }
}

/** Everything a clean end means. `expectLost`: the VM ran on the destination when it lost power. */
async function check(
  ctx: Ctx,
  plan: PhasePlan,
  before: { memory: string | null; disks: Record<string, string> },
  end: End,
  problems: string[],
  expectLost: boolean,
): Promise<void> {
  const { stack } = ctx;
  const vm = ctx.vm as { uuid: string; ref: string };
  const status = end.view?.status;
  if (end.view && end.view.phase !== 'done') problems.push(`closed in phase ${end.view.phase}`);
  if (status && !['completed', 'cancelled', 'failed', 'error'].includes(status)) problems.push(`ended with status ${status}`);

  // Where the VM is: exactly one record, running (nothing of it left in the other pool).
  const placed = await placements(stack, vm.uuid);
  const records = await vmRecords(stack, vm.uuid);
  if (records.length !== 1) problems.push(`${records.length} records of the VM: ${JSON.stringify(records)}`);
  if (expectLost) {
    if (placed.length !== 1 || placed[0]?.host !== DEST || placed[0]?.powerState !== 'Halted') {
      problems.push(`the VM died with ${DEST}: expected it Halted there only, found ${JSON.stringify(placed)}`);
    }
  } else if (placed.length !== 1 || placed[0]?.powerState !== 'Running') {
    problems.push(`the VM does not run on exactly one host: ${JSON.stringify(placed)}`);
  } else {
    const where = placed[0].host;
    if (status === 'completed' && where !== DEST) problems.push(`completed but the VM runs on ${where}`);
    if ((status === 'cancelled' || status === 'failed') && where !== SOURCE) problems.push(`${status} but the VM runs on ${where}`);
    // Disks and memory.
    const now = await admin(stack, where).checksums(vm.uuid);
    if (!now) problems.push(`no checksums of the VM on ${where}`);
    else {
      if (JSON.stringify(now.disks) !== JSON.stringify(before.disks)) problems.push(`disks differ: ${JSON.stringify(before.disks)} then ${JSON.stringify(now.disks)}`);
      if (now.memory === null) problems.push('the VM has no memory (not running)');
      if (plan.staticMemory && now.memory !== before.memory) problems.push('memory of a guest that never writes changed');
      if (where === DEST) {
        const sent = (await admin(stack, SOURCE).migrations()).filter((m) => m.vmUuid === vm.uuid && m.status === 'success').at(-1);
        if (!sent) problems.push('the VM runs on the destination but the source shows no successful migration');
        else if (now.memoryAtArrival !== sent.memorySha256) problems.push('memory on arrival differs from the memory the source stopped with');
      }
    }
  }

  // Nothing half-received, no transfer still running (given a moment: discards are asynchronous).
  const left = await poll(10_000, async () => [...(await leftovers(stack)), ...(await partialFiles(stack))], (l) => l.length === 0);
  if (left.length) problems.push(`left behind: ${left.join(', ')}`);

  // Every lease released.
  const leases = await poll(30_000, () => slots(stack).catch(() => null), (s) => s !== null && s.holders.length === 0 && s.queue.length === 0);
  if (!leases || leases.holders.length || leases.queue.length) problems.push(`leases not released in 30 s: ${JSON.stringify(leases)}`);

  // The API says what the workflow says.
  if (stack.apiUrl && end.view) {
    const res = await fetch(`${stack.apiUrl}/v1/migrations/${ctx.runId}`).catch((e: Error) => e);
    if (res instanceof Error) problems.push(`API unreachable: ${res.message}`);
    else if (!res.ok) problems.push(`API answered ${res.status}`);
    else {
      const api = (await res.json()) as { status: string; phase: string };
      if (api.status !== end.view.status || api.phase !== end.view.phase) {
        problems.push(`API shows ${api.status}/${api.phase}, the workflow ${end.view.status}/${end.view.phase}`);
      }
    }
  }
}

/** Puts the stack back as a cell found it, whatever happened in the cell. */
async function restore(ctx: Ctx): Promise<void> {
  const { stack } = ctx;
  for (const host of stack.sims.hosts) {
    const health = await host.admin.health().catch(() => null);
    if (health?.crashed) await stack.sims.restart(host.name);
    await host.admin.thaw().catch(() => undefined);
    await host.admin.slow(0).catch(() => undefined);
    await host.admin.setBandwidth(FULL_BANDWIDTH).catch(() => undefined);
    await host.admin.setMaxIterations(DEFAULT_ITERATIONS).catch(() => undefined);
  }
  if (stack.devServer.process.exitCode !== null || stack.devServer.process.signalCode !== null) await stack.restartDevServer();
  const gone = (c: { exitCode: number | null; signalCode: NodeJS.Signals | null } | undefined) => !c || c.exitCode !== null || c.signalCode !== null;
  if (gone(stack.conductor)) await stack.startConductor();
  for (const h of stack.config.hosts) if (gone(stack.agents.get(h.name))) await stack.startAgent(h.name);
  if (stack.apiUrl && gone(stack.api)) await stack.startApi();
}

/** A run that did not end in time would hold its leases over the next cells: terminate it and give them back. */
async function abandon(ctx: Ctx): Promise<void> {
  if (ctx.blocker) {
    await admin(ctx.stack, SOURCE).setGuest(ctx.blocker.vm.uuid, { dirtyRateMiBps: 0 }).catch(() => undefined);
    await awaitEnd(ctx.blocker.handle, REACH_BOUND_MS).catch(() => undefined);
  }
  const handle = ctx.handle;
  if (!handle) return;
  const described = await handle.describe().catch(() => null);
  if (described?.status.name !== 'RUNNING') return;
  await handle.terminate('chaos harness: the run did not end within its bound').catch(() => undefined);
  await ctx.stack.systemClient.workflow
    .getHandle(MIGRATION_SLOTS_WORKFLOW_ID)
    .signal(releaseSlotSignal, { workflowId: handle.workflowId })
    .catch(() => undefined);
  // Its transfer may still run: let it converge and end.
  if (ctx.vm) await admin(ctx.stack, SOURCE).setGuest(ctx.vm.uuid, { dirtyRateMiBps: 0 }).catch(() => undefined);
  ctx.notes.push('terminated by the harness, its slot released by hand');
}

let cellCounter = 0;

/** Runs one cell: a migration xen-a → xen-c, held in `phase`, hit by `fault`, then checked. */
export async function runCell(stack: Stack, phase: ChaosPhase, fault: ChaosFault): Promise<CellResult> {
  const ctx: Ctx = { stack, notes: [] };
  const plan = PLANS[phase];
  const problems: string[] = [];
  const started = Date.now();
  let outcome = 'FAIL';
  let injectedAt = started;
  try {
    await restore(ctx);
    const name = `chaos-${phase}-${fault}-${++cellCounter}`;
    ctx.vm = await admin(stack, SOURCE).createVm({ nameLabel: name, ...plan.vm });
    const sums = await admin(stack, SOURCE).checksums(ctx.vm.uuid);
    if (!sums) throw new CellError('no checksums of the new VM');
    await plan.before(ctx);
    if (fault === 'cut-data' && cutArmedBefore(phase)) await admin(stack, SOURCE).cutDataAfter(cutAt(phase));
    ctx.handle = await startMigration(stack, { instanceUuid: ctx.vm.uuid, host: DEST });
    ctx.runId = (ctx.handle as WorkflowHandleWithFirstExecutionRunId).firstExecutionRunId;
    await plan.reach(ctx);
    injectedAt = Date.now();
    await inject(ctx, phase, fault);
    const expectLost = fault === 'dest-crash' && phase === 'post_migration';
    if (fault === 'dest-crash') {
      await plan.release(ctx).catch(() => undefined);
      // The destination stays down until the run ended, or DOWN_BOUND passed.
      const whileDown = await awaitEnd(ctx.handle, DOWN_BOUND_MS);
      if (!whileDown.ended) problems.push(`did not end while ${DEST} was down (${DOWN_BOUND_MS / 1000} s)`);
      else {
        ctx.notes.push(`ended while ${DEST} was down: ${whileDown.view?.status ?? whileDown.closeStatus}`);
        if (!expectLost && !['error', 'cancelled', 'failed'].includes(whileDown.view?.status ?? '')) {
          problems.push(`ended ${whileDown.view?.status ?? whileDown.closeStatus} with the destination down`);
        }
        if (!expectLost) {
          const placed = await placements(stack, ctx.vm.uuid);
          if (placed.length !== 1 || placed[0]?.host !== SOURCE || placed[0]?.powerState !== 'Running') {
            problems.push(`with ${DEST} down the VM does not run on the source alone: ${JSON.stringify(placed)}`);
          }
        }
      }
      await stack.sims.restart(DEST);
      ctx.notes.push(`${DEST} restarted ${((Date.now() - injectedAt) / 1000).toFixed(1)} s after the crash`);
    } else {
      await plan.release(ctx);
    }
    const end = await awaitEnd(ctx.handle, END_BOUND_MS);
    if (!end.ended) {
      problems.push(`did not end within ${END_BOUND_MS / 1000} s`);
      outcome = 'FAIL';
    } else {
      outcome = end.view?.status ?? end.closeStatus ?? '?';
      if (end.closeStatus !== 'COMPLETED') ctx.notes.push(`run closed ${end.closeStatus}`);
      if (end.view?.error) ctx.notes.push(`error: ${end.view.error.type}: ${end.view.error.message}`);
      if (!end.view) problems.push(`closed ${end.closeStatus}, status query failed`);
      // A cleanup the run left to a cleanup workflow (a host that did not answer in time) must finish once the host is back.
      for (const cleanup of end.view?.cleanups ?? []) {
        const done = await awaitEnd(stack.client.workflow.getHandle(cleanup.workflowId), END_BOUND_MS);
        ctx.notes.push(`cleanup ${cleanup.workflowId} (${cleanup.steps.join(', ')}) ${done.ended ? `closed ${done.closeStatus}` : 'still running'}`);
        if (!done.ended) problems.push(`cleanup on ${cleanup.host} not done ${END_BOUND_MS / 1000} s after the host was back`);
        else if (done.closeStatus !== 'COMPLETED') problems.push(`cleanup on ${cleanup.host} closed ${done.closeStatus}`);
      }
      await check(ctx, plan, { memory: sums.memory, disks: sums.disks }, end, problems, expectLost);
    }
  } catch (err) {
    problems.push(err instanceof CellError ? err.message : `harness: ${(err as Error).message}`);
  } finally {
    await abandon(ctx).catch(() => undefined);
    await restore(ctx).catch((err: Error) => problems.push(`restore failed: ${err.message}`));
  }
  const result: CellResult = {
    phase,
    fault,
    outcome: problems.length ? 'FAIL' : outcome,
    seconds: +((Date.now() - injectedAt) / 1000).toFixed(1),
    ok: problems.length === 0,
    problems,
    notes: ctx.notes,
    runId: ctx.runId,
    vmUuid: ctx.vm?.uuid,
    endBoundS: (END_BOUND_MS + (fault === 'dest-crash' ? DOWN_BOUND_MS : 0)) / 1000,
  };
  if (problems.length && outcome !== 'FAIL') result.notes.unshift(`ended ${outcome}`);
  return result;
}

/** `completed 12.3s` or `FAIL: <short reason>`. */
export function cellText(r: CellResult): string {
  if (r.ok) return `${r.outcome} ${r.seconds}s`;
  const reason = r.problems[0] ?? '?';
  return `FAIL: ${reason.length > 60 ? `${reason.slice(0, 57)}...` : reason}`;
}

/** The matrix as a table: one row per phase, one column per fault. */
export function matrixTable(results: CellResult[]): string {
  const faults = FAULTS.filter((f) => results.some((r) => r.fault === f));
  const phases = PHASES.filter((p) => results.some((r) => r.phase === p));
  const rows = [['phase \\ fault', ...faults], ...phases.map((p) => [p, ...faults.map((f) => {
    const r = results.find((x) => x.phase === p && x.fault === f);
    return r ? cellText(r) : '-';
  })])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

/** Appends the cell as a JSON line to <workDir>/chaos-matrix.jsonl. */
export function recordCell(stack: Stack, r: CellResult): string {
  const file = join(stack.workDir, 'chaos-matrix.jsonl');
  appendFileSync(file, `${JSON.stringify({ ...r, at: new Date().toISOString() })}\n`);
  return file;
}
