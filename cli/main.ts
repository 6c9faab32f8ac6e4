// `ferry`, the operator CLI, as a function: run(argv, io) returns the exit code, so tests run it in
// process. cli/ferry.ts is the executable wrapper.
import { existsSync } from 'node:fs';
import { defaultConfigPath, loadConfig, type FerryConfig } from '../lib/config';
import { FINAL_STATUSES, type ControlAccepted, type MigrationStatusView } from '../workflows/definitions';
import { USAGE, UsageError, parseCommandLine, type Command, type Invocation } from './args';
import { ApiCallError, FerryApiClient, UnreachableError } from './client';
import { EXIT, exitCodeForStatus, type ExitCode } from './exit-codes';
import { hostTable, instanceTable, migrationDetails, migrationTable, outcomeLine, progressLine, webUiUrl, type HostRow, type InstanceRow } from './render';

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
  return loadConfig(candidate); // an explicit --config that does not load is a usage error
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

/** Follows a migration to its end; returns its last view. */
async function watch(s: Session, id: string): Promise<MigrationStatusView> {
  const tty = Boolean(s.io.stdout.isTTY) && !s.json;
  let last: MigrationStatusView | null = null;
  let lastPrinted = '';
  let lastPrintedAt = 0;
  let lastLine = '';
  let attempts = 0;
  for (;;) {
    try {
      for await (const event of s.client.events(id)) {
        attempts = 0;
        if (s.json) {
          s.io.stdout.write(`${JSON.stringify(event)}\n`);
        }
        if (event.event === 'error') {
          if (!s.json) s.io.stderr.write(`\n(${(event.data as { message?: string }).message ?? 'status unavailable'}; still watching)\n`);
          continue;
        }
        const view = event.data as MigrationStatusView;
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
      if (err instanceof ApiCallError) throw err;
      attempts += 1;
      if (attempts > 5) throw err;
      s.io.stderr.write(`\n(progress stream interrupted: ${(err as Error).message}; reconnecting)\n`);
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (last && FINAL_STATUSES.has(last.status)) break;
    // The stream ended early (server restart): reconnect.
    attempts += 1;
    if (attempts > 5) throw new UnreachableError('the progress stream keeps ending before the migration does');
  }
  if (tty) s.io.stdout.write('\n');
  if (!s.json && last) out(s, outcomeLine(last));
  return last as MigrationStatusView;
}

function watchedExit(view: MigrationStatusView): ExitCode {
  return view.status === 'completed' ? EXIT.ok : EXIT.migrationFailed;
}

async function execute(s: Session, command: Command): Promise<ExitCode> {
  switch (command.name) {
    case 'help':
      out(s, USAGE);
      return EXIT.ok;
    case 'migrate': {
      const { body } = await s.client.request<{ id: string; workflowId: string; novaId: number; location: string }>('POST', '/v1/migrations', {
        instanceUuid: command.instance,
        host: command.host ?? null,
        blockMigration: command.block,
        force: command.force,
      });
      if (s.json && !command.watch) json(s, body);
      // With --watch, --json prints one JSON line per event, the first one this answer.
      if (s.json && command.watch) s.io.stdout.write(`${JSON.stringify({ event: 'started', data: body })}\n`);
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
      const { migrations } = await s.client.get<{ migrations: MigrationStatusView[] }>(`/v1/migrations${qs ? `?${qs}` : ''}`);
      if (s.json) json(s, migrations);
      else out(s, migrationTable(migrations));
      return EXIT.ok;
    }
    case 'show': {
      const view = await s.client.get<MigrationStatusView>(`/v1/migrations/${command.id}`);
      if (s.json) json(s, view);
      else out(s, migrationDetails(view, uiLink(s, view.workflowId, view.uuid)));
      return EXIT.ok;
    }
    case 'watch':
      return watchedExit(await watch(s, command.id));
    case 'abort':
    case 'force-complete': {
      const path = `/v1/migrations/${command.id}/${command.name}`;
      const body = command.name === 'abort' && command.reason ? { reason: command.reason } : {};
      const answer = (await s.client.request<ControlAccepted>('POST', path, body)).body;
      if (s.json) json(s, answer);
      else out(s, `${command.name === 'abort' ? 'Abort' : 'Force-complete'} accepted (status ${answer.status}, phase ${answer.phase})`);
      return EXIT.ok;
    }
    case 'hosts': {
      const answer = await s.client.get<{ hosts: HostRow[]; observedAt: string }>('/v1/hosts');
      if (s.json) json(s, answer);
      else out(s, hostTable(answer.hosts));
      return EXIT.ok;
    }
    case 'instances': {
      const answer = await s.client.get<{ instances: InstanceRow[] }>(`/v1/instances${command.host ? `?host=${command.host}` : ''}`);
      if (s.json) json(s, answer);
      else out(s, instanceTable(answer.instances));
      return EXIT.ok;
    }
  }
}

export async function run(argv: string[], io: CliIo): Promise<ExitCode> {
  let invocation: Invocation;
  let session: Session;
  try {
    invocation = parseCommandLine(argv);
    if (invocation.command.name === 'help') {
      io.stdout.write(`${USAGE}\n`);
      return EXIT.ok;
    }
    const config = loadOptionalConfig(invocation.global.config, io.env);
    session = { client: new FerryApiClient(apiUrl(invocation, config, io.env), io.env.FERRY_TOKEN || undefined), config, json: invocation.global.json, io };
  } catch (err) {
    io.stderr.write(`ferry: ${(err as Error).message}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  try {
    return await execute(session, invocation.command);
  } catch (err) {
    const json = invocation.global.json;
    if (err instanceof ApiCallError) {
      if (json) io.stdout.write(`${JSON.stringify({ error: { code: err.code, status: err.status, message: err.message } })}\n`);
      io.stderr.write(`ferry: ${err.message} (HTTP ${err.status})\n`);
      return exitCodeForStatus(err.status);
    }
    const message = (err as Error).message;
    if (json) io.stdout.write(`${JSON.stringify({ error: { code: 'unreachable', message } })}\n`);
    io.stderr.write(`ferry: ${message}\n`);
    return EXIT.unreachable;
  }
}
