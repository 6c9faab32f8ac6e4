// Starts the Temporal CLI's dev server (installed by scripts/install.sh), with ferry's search
// attributes registered, waits until it answers, and stops it again.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { Connection } from '@temporalio/client';
import { temporalCliPath } from './paths';
import { searchAttributeTypes } from './search-attributes';

export interface DevServerOptions {
  port: number;
  uiPort?: number; // omitted: headless
  dbFile?: string; // omitted: in memory
  logFile?: string; // where the server's own output goes; omitted: discarded
  namespace?: string;
  /** More namespaces to create (ferry's system namespace). */
  extraNamespaces?: string[];
  ip?: string;
  startTimeoutMs?: number;
  /** The codec server (lib/codec-server.ts) the web UI asks to decode payloads; only with uiPort. */
  codecEndpoint?: string;
}

export interface DevServer {
  address: string;
  uiUrl?: string;
  process: ChildProcess;
  startupMs: number;
  stop(): Promise<void>;
}

export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const ip = options.ip ?? '127.0.0.1';
  const args = ['server', 'start-dev', '--ip', ip, '--port', String(options.port), '--log-level', 'warn'];
  for (const namespace of [options.namespace ?? 'default', ...(options.extraNamespaces ?? [])]) args.push('--namespace', namespace);
  for (const [name, type] of Object.entries(searchAttributeTypes)) args.push('--search-attribute', `${name}=${type}`);
  if (options.dbFile) {
    mkdirSync(dirname(options.dbFile), { recursive: true });
    args.push('--db-filename', options.dbFile);
  }
  if (options.uiPort) {
    args.push('--ui-port', String(options.uiPort), '--ui-ip', ip);
    if (options.codecEndpoint) args.push('--ui-codec-endpoint', options.codecEndpoint);
  } else args.push('--headless');
  // Lets the workflows see their own search attributes in visibility right after an upsert.
  args.push('--dynamic-config-value', 'system.forceSearchAttributesCacheRefreshOnRead=true');
  // The history service reads its transfer queue (which hands every new workflow and activity task
  // to matching) at most 20 times a second by default: once that burst is spent, each step of a
  // migration waits ~40 ms to be dispatched. The same for the visibility queue (memos, search
  // attributes). A dev server on one machine can read them as often as tasks come.
  for (const queue of ['transfer', 'visibility']) args.push('--dynamic-config-value', `history.${queue}ProcessorMaxPollRPS=1000`);
  // Visibility calls (workflow lists, and DescribeTaskQueue, which the scheduler asks of each
  // candidate) are limited to 10 a second per namespace by default; beyond that the server answers
  // ResourceExhausted and the client retries after a backoff of about 2 s. ferry's readers and a
  // few migrations at once go past 10 a second. The Temporal CLI's own tests raise it the same way.
  args.push('--dynamic-config-value', 'frontend.namespaceRPS.visibility=10000');

  let stdio: 'ignore' | number = 'ignore';
  if (options.logFile) {
    mkdirSync(dirname(options.logFile), { recursive: true });
    stdio = openSync(options.logFile, 'a');
  }
  const started = Date.now();
  const child = spawn(temporalCliPath(), args, { stdio: ['ignore', stdio, stdio] });
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = `exited with ${signal ?? code}`;
  });

  const address = `${ip}:${options.port}`;
  const deadline = started + (options.startTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) throw new Error(`temporal dev server ${exited} before it answered (args: ${args.join(' ')})`);
    if (await answers(address, options.namespace ?? 'default')) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`temporal dev server did not answer on ${address} within ${options.startTimeoutMs ?? 60_000} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    address,
    uiUrl: options.uiPort ? `http://${ip}:${options.uiPort}` : undefined,
    process: child,
    startupMs: Date.now() - started,
    stop: () => stopProcess(child),
  };
}

async function answers(address: string, namespace: string): Promise<boolean> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: 1000 });
    await connection.workflowService.describeNamespace({ namespace });
    return true;
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

/** SIGTERM, then SIGKILL after a grace period; resolves when the process is gone. */
export function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveStop) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolveStop();
    });
    child.kill('SIGTERM');
  });
}
