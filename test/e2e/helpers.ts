// Helpers for end-to-end tests: start migrations through the real dev server and read where a VM
// really is from the simulators' admin endpoints.
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { execFileSync } from 'node:child_process';
import { temporalCliPath } from '../../lib/paths';
import { HostInventory, type InventoryView } from '../../lib/host-inventory';
import pino from 'pino';
import { tokenAuthenticator } from '../../api/auth';
import { startApi, type RunningApi } from '../../api/main';
import { startStack, type Stack, type StackOptions } from '../../lib/stack';
import {
  LIVE_MIGRATION_WORKFLOW,
  MIGRATION_SLOTS_WORKFLOW_ID,
  liveMigrationWorkflowId,
  slotsQuery,
  statusQuery,
  type LiveMigrationInput,
  type MigrationPhase,
  type MigrationStatusView,
  type SlotsState,
} from '../../workflows/definitions';
import { InstanceUuid } from '../../lib/search-attributes';

export function startMigration(stack: Stack, input: LiveMigrationInput): Promise<WorkflowHandle> {
  return stack.client.workflow.start(LIVE_MIGRATION_WORKFLOW, {
    taskQueue: stack.config.taskQueues.conductor,
    workflowId: liveMigrationWorkflowId(input.instanceUuid),
    args: [input],
    typedSearchAttributes: [{ key: InstanceUuid, value: input.instanceUuid }],
  });
}

export async function status(handle: WorkflowHandle): Promise<MigrationStatusView> {
  return handle.query(statusQuery);
}

/** Polls the status query until `predicate` holds (or the timeout passes). */
export async function waitForStatus(
  handle: WorkflowHandle,
  predicate: (s: MigrationStatusView) => boolean,
  timeoutMs = 60_000,
): Promise<MigrationStatusView> {
  const deadline = Date.now() + timeoutMs;
  let last: MigrationStatusView | undefined;
  for (;;) {
    last = await handle.query(statusQuery).catch(() => last);
    if (last && predicate(last)) return last;
    if (Date.now() > deadline) throw new Error(`status did not reach the expected state; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

export const inPhase = (...phases: MigrationPhase[]) => (s: MigrationStatusView) => phases.includes(s.phase);

export interface Placement {
  /** The host the VM runs (or is paused) on; for a halted VM, the host of its affinity. */
  host: string;
  powerState: string;
}

/**
 * Every record of the VM in every pool's database, with where it is. Each member lists the VMs
 * resident on it (or halted with their affinity there); one record is listed once per pool.
 */
export async function placements(stack: Stack, uuid: string): Promise<Placement[]> {
  const out: Placement[] = [];
  const seen = new Set<string>();
  for (const host of stack.sims.hosts) {
    // A crashed member's admin answers only /health and /restart.
    for (const vm of (await host.admin.listVms().catch(() => [])).filter((v) => v.uuid === uuid)) {
      if (seen.has(`${host.pool}/${vm.ref}`)) continue;
      seen.add(`${host.pool}/${vm.ref}`);
      out.push({ host: host.name, powerState: vm.powerState });
    }
  }
  return out;
}

/** Nothing half-received anywhere: no incoming migration, no outgoing task still running. */
export async function leftovers(stack: Stack): Promise<string[]> {
  const problems: string[] = [];
  for (const host of stack.sims.hosts) {
    const state = await host.admin.state();
    for (const i of state.incoming) problems.push(`${host.name}: incoming ${i.vmUuid}`);
    for (const o of state.outgoing) problems.push(`${host.name}: outgoing ${o.vmRef}`);
  }
  return problems;
}

export async function slots(stack: Stack): Promise<SlotsState> {
  return stack.systemClient.workflow.getHandle(MIGRATION_SLOTS_WORKFLOW_ID).query(slotsQuery);
}

/** Polls the slots entity until `predicate` holds (its signals arrive a moment after the status changes). */
export async function waitForSlots(stack: Stack, predicate: (s: SlotsState) => boolean, timeoutMs = 30_000): Promise<SlotsState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await slots(stack);
    if (predicate(state)) return state;
    if (Date.now() > deadline) throw new Error(`slots did not reach the expected state; last: ${JSON.stringify(state)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The failure a workflow ended with: the ApplicationFailure's type and message. */
export async function failureOf(handle: WorkflowHandle): Promise<{ type: string; message: string }> {
  try {
    await handle.result();
  } catch (err) {
    const cause = (err as { cause?: { type?: string; message?: string } }).cause;
    return { type: cause?.type ?? 'unknown', message: cause?.message ?? String(err) };
  }
  throw new Error('the workflow did not fail');
}

/**
 * With FERRY_RECORD_HISTORIES=1, saves the run's history as a replay fixture
 * (test/fixtures/histories/NAME.json): test/e2e/replay.test.ts replays every fixture against the
 * current workflow code, so an incompatible change fails the tests.
 */
export async function recordHistory(stack: Stack, handle: WorkflowHandle, name: string, folder = 'v3'): Promise<void> {
  if (process.env.FERRY_RECORD_HISTORIES !== '1') return;
  // `folder`: the current version of liveMigration (v3, see test/e2e/replay.test.ts), or the workflow's own.
  const dir = resolve(__dirname, '..', 'fixtures', 'histories', folder);
  mkdirSync(dir, { recursive: true });
  // The CLI writes the JSON form that historyFromJSON reads (the same as the web UI's download),
  // decoded through the stack's codec server: a fixture must replay without this stack's key.
  const json = execFileSync(temporalCliPath(), [
    'workflow', 'show', '--workflow-id', handle.workflowId, '--output', 'json',
    '--address', stack.config.temporal.address, '--namespace', stack.config.temporal.namespace,
    ...(stack.codecEndpoint ? ['--codec-endpoint', stack.codecEndpoint] : []),
  ]);
  writeFileSync(resolve(dir, `${name}.json`), json);
}

/** The host inventory (as the conductor reads it) once `predicate` holds, or the last view after `ms`. */
export async function inventoryWhen(stack: Stack, predicate: (view: InventoryView) => boolean, ms = 10_000): Promise<InventoryView> {
  const inventory = new HostInventory(stack.systemClient, stack.config);
  const deadline = Date.now() + ms;
  for (;;) {
    const view = await inventory.view({ fresh: true });
    if (predicate(view) || Date.now() > deadline) return view;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether the inventory lists the instance on that host. */
export const listsInstance = (host: string, uuid: string) => (view: InventoryView) =>
  view.hosts.some((h) => h.name === host && h.instances.some((i) => i.uuid === uuid));

/** A stack and the API in front of it on a free port, with the test's own read and operator tokens. */
export async function startStackWithApi(options: StackOptions, tokens: { read: string; operator: string }): Promise<{ stack: Stack; api: RunningApi }> {
  const stack = await startStack(options);
  try {
    const api = await startApi({
      config: stack.config,
      listen: '127.0.0.1:0',
      logger: pino({ level: process.env.FERRY_LOG_LEVEL ?? 'silent' }),
      auth: tokenAuthenticator(tokens),
    });
    return { stack, api };
  } catch (err) {
    await stack.stop();
    throw err;
  }
}
