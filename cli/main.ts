// `ferry`, the operator CLI, as a function: run(argv, io) returns the exit code, so tests run it in
// process. cli/ferry.ts is the executable wrapper; cli/args.ts declares the commands (commander).
import { existsSync } from 'node:fs';
import { defaultConfigPath, loadConfig, type FerryConfig } from '../lib/config';
import { ControlAcceptedSchema, HostListSchema, InstanceListSchema, MigrationListSchema, MigrationSchema, MigrationStartedSchema } from '../api/schemas';
import { FINAL_STATUSES } from '../workflows/definitions';
import { UsageError, buildProgram, parseCommandLine, type Command, type Invocation } from './args';
import { ApiCallError, FerryApiClient, UnexpectedAnswerError, UnreachableError } from './client';
import { bashCompletion } from './completion';
import { EXIT, exitCodeForStatus, type ExitCode } from './exit-codes';
import { MaintenanceSchema } from '../api/routes/v1-maintenance';
import { ColdMigrationListSchema, ColdMigrationSchema } from '../api/cold-views';
import { coldDetails, coldOutcomeLine, coldProgressLine, coldTable, type ColdMigration } from './render-cold';
import { hostTable, instanceTable, maintenanceDetails, maintenanceLine, migrationDetails, migrationTable, outcomeLine, progressLine, webUiUrl, type Maintenance, type Migration } from './render';

export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface CliIo {
  stdout: Output;
  stderr: Output;
  env: NodeJS.ProcessEnv;
}

interface Session {
  client: FerryApiClient;
  config: FerryConfig | null;
  json: boolean;
  io: CliIo;
}

function out(s: Session, text: string): void {
  s.io.stdout.write(`${text}\n`);
}

function json(s: Session, value: unknown): void {
  s.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function uiLink(s: Session, workflowId: string, runId: string): string | undefined {
  if (!s.config) return undefined;
  const host = s.config.temporal.address.split(':')[0] ?? '127.0.0.1';
  return webUiUrl(`http://${host}:${s.config.temporal.uiPort}`, s.config.temporal.namespace, workflowId, runId);
}

function loadOptionalConfig(path: string | undefined, env: NodeJS.ProcessEnv): FerryConfig | null {
  const candidate = path ?? env.FERRY_CONFIG ?? defaultConfigPath();
  if (!path && !existsSync(candidate)) return null;
  try {
    return loadConfig(candidate);
  } catch (err) {
    // An explicit --config that does not load is a usage error; so is a broken $FERRY_CONFIG.
    throw new UsageError((err as Error).message);
  }
}

function apiUrl(invocation: Invocation, config: FerryConfig | null, env: NodeJS.ProcessEnv): string {
  const explicit = invocation.global.api ?? env.FERRY_API;
  if (explicit) {
    try {
      return new URL(explicit).toString().replace(/\/$/, '');
    } catch {
      throw new UsageError(`--api "${explicit}" is not a URL`);
    }
  }
  return `http://${config?.api.listen ?? '127.0.0.1:8774'}`;
}

/** How long watch keeps reconnecting without receiving an event (a Temporal restart takes a while). */
export const RECONNECT_FOR_MS = 120_000;

/**
 * Polls a show route every second for a watch, yielding each view: an API that answers 5xx or
 * not at all is asked again every 2 s for up to RECONNECT_FOR_MS (a Temporal restart), saying so on
 * stderr; a 4xx or an answer that does not match the schema ends the watch with that error.
 */
async function* pollView<T>(s: Session, what: string, read: () => Promise<T>): AsyncGenerator<T> {
  let brokenSince: number | null = null;
  for (;;) {
    let view: T;
    try {
      view = await read();
      brokenSince = null;
    } catch (err) {
      if (err instanceof UnexpectedAnswerError) throw err;
      if (err instanceof ApiCallError && err.status < 500) throw err;
      brokenSince ??= Date.now();
      if (Date.now() - brokenSince > RECONNECT_FOR_MS) throw err;
      s.io.stderr.write(`(${what}: ${(err as Error).message}; still watching)\n`);
      await new Promise((r) => setTimeout(r, 2000));
      continue;
    }
    yield view;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Follows a migration to its end; returns its last view. */
async function watch(s: Session, id: string): Promise<Migration> {
  const tty = Boolean(s.io.stdout.isTTY) && !s.json;
  let last: Migration | null = null;
  let lastPrinted = '';
  let lastPrintedAt = 0;
  let lastLine = '';
  /** Since when no event came, and how many reconnections since then. */
  let brokenSince: number | null = null;
  let retries = 0;
  const reconnect = async (why: string, err: Error) => {
    brokenSince ??= Date.now();
    if (Date.now() - brokenSince > RECONNECT_FOR_MS) throw err;
    s.io.stderr.write(`\n(progress stream interrupted: ${why}; reconnecting)\n`);
    await new Promise((r) => setTimeout(r, Math.min(5000, 500 * 2 ** retries)));
    retries += 1;
  };
  for (;;) {
    try {
      for await (const event of s.client.events(id)) {
        if (s.json) s.io.stdout.write(`${JSON.stringify(event)}\n`);
        if (event.event === 'error') {
          if (!s.json) s.io.stderr.write(`\n(${event.data.message}; still watching)\n`);
          continue;
        }
        brokenSince = null;
        retries = 0;
        const view = event.data;
        last = view;
        if (s.json) continue;
        const width = Math.max(10, Math.min(30, (s.io.stdout.columns ?? 120) - 100));
        const line = progressLine(view, width);
        if (tty) {
          // One terminal row, redrawn in place: a wrapped line could not be erased.
          const fit = [...line].slice(0, Math.max(20, (s.io.stdout.columns ?? 200) - 1)).join('');
          s.io.stdout.write(`\r\x1b[2K${fit}`);
        } else {
          // Plain output (pipes, logs): a line when the phase changes, else at most every 2 s.
          const key = `${view.status}/${view.phase}`;
          const due = key !== lastPrinted || Date.now() - lastPrintedAt > 2000 || event.event === 'end';
          if (due && line !== lastLine) {
            out(s, line);
            lastPrinted = key;
            lastPrintedAt = Date.now();
            lastLine = line;
          }
        }
      }
    } catch (err) {
      // A refusal or an answer that does not match the API's schema will not change by asking again;
      // a broken stream, an unreachable API or a 5xx (Temporal restarting) may.
      if (err instanceof UnexpectedAnswerError) throw err;
      if (err instanceof ApiCallError && err.status < 500) throw err;
      await reconnect((err as Error).message, err as Error);
      continue;
    }
    if (last && FINAL_STATUSES.has(last.status)) break;
    // The stream ended before the migration did (the API stopped, or Temporal did not answer for a while).
    await reconnect('the stream ended before the migration', new UnreachableError('the progress stream keeps ending before the migration does'));
  }
  if (tty) s.io.stdout.write('\n');
  if (!s.json && last) out(s, outcomeLine(last));
  return last as Migration;
}

/** Where a drain stops being watched: it ended (the host stays in maintenance) or the host left. */
const MAINTENANCE_SETTLED = new Set(['drained', 'partial', 'cancelled', 'left']);

/** Follows a host's maintenance (polling its show route every second) until it settles; returns its last view. */
async function watchMaintenance(s: Session, host: string): Promise<Maintenance> {
  const tty = Boolean(s.io.stdout.isTTY) && !s.json;
  let drawnLines = 0;
  let lastBlock = '';
  let lastLine = '';
  let lastAt = 0;
  const vmStates = new Map<string, string>();
  for await (const view of pollView(s, `maintenance of ${host}`, async () => (await s.client.get(MaintenanceSchema, `/v1/hosts/${host}/maintenance`)).body)) {
    const settled = MAINTENANCE_SETTLED.has(view.status);
    if (s.json) s.io.stdout.write(`${JSON.stringify({ event: settled ? 'end' : 'maintenance', data: view })}\n`);
    else if (tty) {
      // The whole block redrawn in place: the operation, then each VM.
      const block = maintenanceDetails(view);
      if (block !== lastBlock) {
        const cols = Math.max(20, (s.io.stdout.columns ?? 200) - 1);
        const lines = block.split('\n').map((l) => [...l].slice(0, cols).join(''));
        s.io.stdout.write(`${drawnLines > 0 ? `\x1b[${drawnLines}A` : ''}\r\x1b[J${lines.join('\n')}\n`);
        drawnLines = lines.length;
        lastBlock = block;
      }
    } else {
      // Plain output: each VM's change of state, and the operation's line at most every 2 s.
      for (const vm of view.vms) {
        if (vmStates.get(vm.uuid) === vm.state) continue;
        vmStates.set(vm.uuid, vm.state);
        out(s, `  ${vm.name} ${vm.state}${vm.destHost ? ` -> ${vm.destHost}` : ''}${vm.reason && vm.state !== 'moved' && vm.state !== 'returned' ? ` (${vm.reason.type}: ${vm.reason.message})` : ''}`);
      }
      const line = maintenanceLine(view);
      if (line !== lastLine && (settled || Date.now() - lastAt > 2000)) {
        out(s, line);
        lastLine = line;
        lastAt = Date.now();
      }
    }
    if (settled) {
      if (!s.json && view.reason) out(s, view.reason);
      return view;
    }
  }
  throw new Error('unreachable: the poll never ends by itself');
}

/** Where a watch of a resize or cold migration stops: it waits for the user (finished), or it ended. */
const COLD_SETTLED = new Set(['finished', 'confirmed', 'reverted', 'error']);

/**
 * Follows a resize or cold migration (polling its show route every second) until `settled` says so:
 * one line redrawn in place on a terminal, a line per change of status or step otherwise.
 */
async function watchCold(s: Session, id: string, settled: (view: ColdMigration) => boolean = (v) => COLD_SETTLED.has(v.status)): Promise<ColdMigration> {
  const tty = Boolean(s.io.stdout.isTTY) && !s.json;
  let lastKey = '';
  let lastAt = 0;
  for await (const view of pollView(s, `cold migration ${id}`, async () => (await s.client.get(ColdMigrationSchema, `/v1/cold-migrations/${id}`)).body)) {
    const done = settled(view) || view.status === 'error';
    if (s.json) s.io.stdout.write(`${JSON.stringify({ event: done ? 'end' : 'cold-migration', data: view })}\n`);
    else {
      const line = coldProgressLine(view, Math.max(10, Math.min(30, (s.io.stdout.columns ?? 120) - 100)));
      if (tty) s.io.stdout.write(`\r\x1b[2K${[...line].slice(0, Math.max(20, (s.io.stdout.columns ?? 200) - 1)).join('')}`);
      else {
        const key = `${view.status}/${view.step}`;
        if (key !== lastKey || (Date.now() - lastAt > 2000 && !done)) {
          out(s, line);
          lastKey = key;
          lastAt = Date.now();
        }
      }
    }
    if (done) {
      if (tty) s.io.stdout.write('\n');
      if (!s.json) out(s, coldOutcomeLine(view));
      return view;
    }
  }
  throw new Error('unreachable: the poll never ends by itself');
}

function coldExit(view: ColdMigration): ExitCode {
  return view.status === 'error' ? EXIT.migrationFailed : EXIT.ok;
}

function maintenanceExit(view: Maintenance): ExitCode {
  return view.status === 'drained' || view.status === 'left' ? EXIT.ok : EXIT.migrationFailed;
}

function watchedExit(view: Migration): ExitCode {
  return view.status === 'completed' ? EXIT.ok : EXIT.migrationFailed;
}

async function execute(s: Session, command: Exclude<Command, { name: 'help' | 'completion' }>): Promise<ExitCode> {
  switch (command.name) {
    case 'migrate': {
      const { body, raw } = await s.client.request(MigrationStartedSchema, 'POST', '/v1/migrations', {
        instanceUuid: command.instance,
        host: command.host ?? null,
        blockMigration: command.block,
        force: command.force,
      });
      if (s.json && !command.watch) json(s, raw);
      // With --watch, --json prints one JSON line per event, the first one this answer.
      if (s.json && command.watch) s.io.stdout.write(`${JSON.stringify({ event: 'started', data: raw })}\n`);
      if (!s.json) {
        out(s, `Migration ${body.id} accepted (workflow ${body.workflowId}, Nova id ${body.novaId})`);
        const link = uiLink(s, body.workflowId, body.id);
        if (link) out(s, `Web UI: ${link}`);
      }
      if (!command.watch) return EXIT.ok;
      return watchedExit(await watch(s, body.id));
    }
    case 'list': {
      const query = new URLSearchParams();
      if (command.status) query.set('status', command.status);
      if (command.host) query.set('host', command.host);
      if (command.instance) query.set('instance', command.instance);
      if (command.open !== undefined) query.set('open', String(command.open));
      if (command.limit !== undefined) query.set('limit', String(command.limit));
      const qs = query.toString();
      const { body, raw } = await s.client.get(MigrationListSchema, `/v1/migrations${qs ? `?${qs}` : ''}`);
      if (s.json) json(s, (raw as { migrations: unknown }).migrations);
      else out(s, migrationTable(body.migrations));
      return EXIT.ok;
    }
    case 'show': {
      const { body: view, raw } = await s.client.get(MigrationSchema, `/v1/migrations/${command.id}`);
      if (s.json) json(s, raw);
      else out(s, migrationDetails(view, uiLink(s, view.workflowId, view.uuid)));
      return EXIT.ok;
    }
    case 'watch':
      return watchedExit(await watch(s, command.id));
    case 'abort':
    case 'force-complete': {
      const path = `/v1/migrations/${command.id}/${command.name}`;
      const body = command.name === 'abort' && command.reason ? { reason: command.reason } : {};
      const { body: answer, raw } = await s.client.request(ControlAcceptedSchema, 'POST', path, body);
      if (s.json) json(s, raw);
      else out(s, `${command.name === 'abort' ? 'Abort' : 'Force-complete'} accepted (status ${answer.status}, phase ${answer.phase})`);
      return EXIT.ok;
    }
    case 'hosts': {
      const { body, raw } = await s.client.get(HostListSchema, '/v1/hosts');
      if (s.json) json(s, raw);
      else out(s, hostTable(body.hosts));
      return EXIT.ok;
    }
    case 'drain': {
      const path = `/v1/hosts/${command.host}/maintenance`;
      const { body, raw } = await s.client.request(MaintenanceSchema, 'POST', path, command.parallelism ? { parallelism: command.parallelism } : {});
      if (s.json && !command.watch) json(s, raw);
      if (s.json && command.watch) s.io.stdout.write(`${JSON.stringify({ event: 'started', data: raw })}\n`);
      if (!s.json) {
        out(s, `Maintenance of ${command.host} started (workflow ${body.workflowId}): the host is disabled and its VMs move off it`);
        if (s.config) {
          const ui = `http://${s.config.temporal.address.split(':')[0] ?? '127.0.0.1'}:${s.config.temporal.uiPort}`;
          out(s, `Web UI: ${ui}/namespaces/${encodeURIComponent(s.config.temporal.namespace)}/workflows?query=${encodeURIComponent(`MaintenanceHost="${command.host}"`)}`);
        }
      }
      if (!command.watch) return EXIT.ok;
      return maintenanceExit(await watchMaintenance(s, command.host));
    }
    case 'maintenance': {
      const path = `/v1/hosts/${command.host}/maintenance`;
      if (command.action === 'watch') return maintenanceExit(await watchMaintenance(s, command.host));
      if (command.action === 'show') {
        const { body, raw } = await s.client.get(MaintenanceSchema, path);
        if (s.json) json(s, raw);
        else out(s, maintenanceDetails(body));
        return EXIT.ok;
      }
      const options = command.action === 'cancel' ? { abortRunning: command.abortRunning } : command.action === 'leave' ? { bringBack: command.bringBack } : {};
      const { body, raw } = await s.client.request(MaintenanceSchema, 'POST', `${path}/${command.action}`, options);
      if (s.json) json(s, raw);
      else out(s, `${command.action} accepted: ${maintenanceLine(body)}`);
      return EXIT.ok;
    }
    case 'resize':
    case 'cold-migrate': {
      const body = command.name === 'resize' ? { instanceUuid: command.instance, flavor: command.flavor } : { instanceUuid: command.instance, host: command.host ?? null };
      const { body: view, raw } = await s.client.request(ColdMigrationSchema, 'POST', '/v1/cold-migrations', body);
      if (s.json && !command.watch) json(s, raw);
      if (s.json && command.watch) s.io.stdout.write(`${JSON.stringify({ event: 'started', data: raw })}\n`);
      if (!s.json) {
        out(s, `${command.name === 'resize' ? `Resize to ${command.flavor}` : 'Cold migration'} ${view.uuid} accepted (workflow ${view.workflowId})`);
        const link = uiLink(s, view.workflowId, view.uuid);
        if (link) out(s, `Web UI: ${link}`);
      }
      if (!command.watch) return EXIT.ok;
      return coldExit(await watchCold(s, view.uuid));
    }
    case 'confirm':
    case 'revert': {
      const { body: view, raw } = await s.client.request(ColdMigrationSchema, 'POST', `/v1/cold-migrations/${command.id}/${command.name}`, {});
      if (s.json && !command.watch) json(s, raw);
      if (!s.json) out(s, `${command.name === 'confirm' ? 'Confirm' : 'Revert'} accepted: ${coldProgressLine(view)}`);
      if (!command.watch) return EXIT.ok;
      const end = command.name === 'confirm' ? 'confirmed' : 'reverted';
      return coldExit(await watchCold(s, view.uuid, (v) => v.status === end));
    }
    case 'cold-show': {
      const { body: view, raw } = await s.client.get(ColdMigrationSchema, `/v1/cold-migrations/${command.id}`);
      if (s.json) json(s, raw);
      else out(s, coldDetails(view, uiLink(s, view.workflowId, view.uuid)));
      return EXIT.ok;
    }
    case 'cold-watch':
      return coldExit(await watchCold(s, command.id));
    case 'cold-list': {
      const query = new URLSearchParams();
      if (command.instance) query.set('instance', command.instance);
      if (command.open !== undefined) query.set('open', String(command.open));
      if (command.limit !== undefined) query.set('limit', String(command.limit));
      const qs = query.toString();
      const { body, raw } = await s.client.get(ColdMigrationListSchema, `/v1/cold-migrations${qs ? `?${qs}` : ''}`);
      if (s.json) json(s, (raw as { coldMigrations: unknown }).coldMigrations);
      else out(s, coldTable(body.coldMigrations));
      return EXIT.ok;
    }
    case 'instances': {
      const { body, raw } = await s.client.get(InstanceListSchema, `/v1/instances${command.host ? `?host=${command.host}` : ''}`);
      if (s.json) json(s, raw);
      else out(s, instanceTable(body.instances));
      return EXIT.ok;
    }
  }
}

export async function run(argv: string[], io: CliIo): Promise<ExitCode> {
  let invocation: Invocation;
  let session: Session;
  try {
    invocation = parseCommandLine(argv);
    const { command } = invocation;
    if (command.name === 'help') {
      io.stdout.write(command.text);
      return EXIT.ok;
    }
    if (command.name === 'completion') {
      io.stdout.write(bashCompletion(buildProgram()));
      return EXIT.ok;
    }
    const config = loadOptionalConfig(invocation.global.config, io.env);
    session = { client: new FerryApiClient(apiUrl(invocation, config, io.env), io.env.FERRY_TOKEN || undefined), config, json: invocation.global.json, io };
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`ferry: ${err.message}\n${err.usage ? `\n${err.usage}\n` : ''}`);
    return EXIT.usage;
  }
  try {
    return await execute(session, invocation.command as Exclude<Command, { name: 'help' | 'completion' }>);
  } catch (err) {
    const json = invocation.global.json;
    if (err instanceof ApiCallError) {
      if (json) io.stdout.write(`${JSON.stringify({ error: { code: err.code, status: err.status, message: err.message } })}\n`);
      io.stderr.write(`ferry: ${err.message} (HTTP ${err.status})\n`);
      return exitCodeForStatus(err.status);
    }
    // Unreachable, a stream that keeps breaking, or an answer that does not match the API's schema.
    const message = (err as Error).message;
    if (json) io.stdout.write(`${JSON.stringify({ error: { code: 'unreachable', message } })}\n`);
    io.stderr.write(`ferry: ${message}\n`);
    return EXIT.unreachable;
  }
}
