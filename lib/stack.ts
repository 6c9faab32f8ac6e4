// The whole of ferry on one machine: a Temporal dev server, one simulator per host, the conductor
// worker and one host agent per host, each a real process. Tests start it on free ports; the demo
// starts it from temporal.yaml.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { simulatedHostConfig, startSimulators, type SimCluster } from '../simulator/cluster';
import { destroyQemuGuests } from '../activities/host/qemu/admin';
import { hostDriver, hostQueue, loadConfig, parseConfig, type FerryConfig } from './config';
import { HostInventory } from './host-inventory';
import { freePort } from './ports';
import { spawnTs } from './processes';
import { generateEncryptionKey } from './payload-codec';
import { connectClients } from './temporal-connection';
import { startDevServer, stopProcess, type DevServer, type DevServerOptions } from './temporal-dev-server';

export interface StackHost {
  name: string;
  pool: string;
  memoryMiB?: number;
  productVersion?: string;
  /** A QEMU host (issue 15): no simulator; its agent runs guests as QEMU processes under <workDir>/qemu/<name>. */
  driver?: 'xen' | 'qemu';
  /** Overrides of a QEMU host's qemu section (permitPostCopy, bandwidthMiBps, ...). */
  qemu?: Record<string, unknown>;
}

/**
 * A QEMU host's temporal.yaml entry in a generated stack: short paths (QMP sockets are unix
 * sockets, at most 107 bytes), and one images directory per pool (the pool's shared storage).
 */
function qemuHostConfig(h: StackHost, workDir: string): Record<string, unknown> {
  return {
    name: h.name,
    pool: h.pool,
    driver: 'qemu',
    qemu: { stateDir: join(workDir, 'q', h.name), imagesDir: join(workDir, 'q', `images-${h.pool}`), memoryMiB: h.memoryMiB ?? 1024, ...h.qemu },
  };
}

export interface StackOptions {
  /** An existing temporal.yaml (fixed ports, as the demo uses); omitted: a generated one on free ports. */
  configPath?: string;
  hosts?: StackHost[];
  bandwidthMiBps?: number;
  /** Overrides of temporal.yaml's migration section. */
  migration?: Record<string, unknown>;
  /** temporal.yaml's flavors (what a resize may ask for); none by default. */
  flavors?: unknown[];
  /** Serve the Temporal web UI. */
  ui?: boolean;
  /** Pre-copy round limit of every simulated host (default libxc's 5; 0 = unlimited). */
  maxIterations?: number;
  /** Where the processes' logs and the state go; omitted: a fresh temporary folder. */
  workDir?: string;
  /**
   * Keep Temporal's state in <workDir>/temporal.sqlite (a configPath stack always keeps it in its
   * dataDir), so that restartDevServer() finds every workflow again.
   */
  persistTemporal?: boolean;
  /** Also run the API (api/main.ts) as a child process, on temporal.yaml's api.listen. */
  api?: boolean;
  /**
   * Hosts served by one agent process at start (default 1). A large simulated cluster packs its
   * agents; killAgent then kills the whole process, and startAgent starts one host alone.
   */
  agentsPerProcess?: number;
  /** temporal.yaml's pools section (each pool's migrationNetwork). */
  pools?: Record<string, unknown>;
  /** Overrides of temporal.yaml's inventory section (report interval, staleness bound). */
  inventory?: Record<string, unknown>;
  /**
   * Encrypt every payload (temporal.encryption) with a key generated for this stack into its
   * workDir, and serve the codec endpoint the web UI uses (default true; a configPath stack follows
   * its file, and gets its keyFile generated when missing).
   */
  encryption?: boolean;
  /** temporal.yaml's api.auth for a generated config (default: none); its secrets come from `env`. */
  apiAuth?: Record<string, unknown>;
  /** More environment variables for every process of the stack (secrets named by temporal.yaml). */
  env?: Record<string, string>;
}

export interface Stack {
  config: FerryConfig;
  configPath: string;
  workDir: string;
  password: string;
  devServer: DevServer;
  client: Client;
  /** A client of the system namespace (host inventory, migration slots). */
  systemClient: Client;
  sims: SimCluster;
  /** The codec server's base URL (temporal --codec-endpoint), when temporal.encryption has one. */
  codecEndpoint?: string;
  codecServer?: ChildProcess;
  conductor: ChildProcess;
  agents: Map<string, ChildProcess>;
  startConductor(): Promise<void>;
  startAgent(host: string): Promise<void>;
  /** Kills a worker process (SIGKILL by default: a crash). */
  killConductor(signal?: NodeJS.Signals): Promise<void>;
  killAgent(host: string, signal?: NodeJS.Signals): Promise<void>;
  /** The API process and its base URL (http://host:port), when started with `api`. */
  api?: ChildProcess;
  apiUrl?: string;
  startApi(): Promise<void>;
  killApi(signal?: NodeJS.Signals): Promise<void>;
  /**
   * A crash of the Temporal server: SIGKILL, then the dev server again on the same ports and
   * database file (needs persistTemporal or configPath). Workers and clients reconnect by themselves.
   */
  restartDevServer(): Promise<void>;
  stop(): Promise<void>;
}

export const DEFAULT_HOSTS: StackHost[] = [
  { name: 'xen-a', pool: 'pool-1' },
  { name: 'xen-b', pool: 'pool-1' },
  { name: 'xen-c', pool: 'pool-2' },
];

async function generatedConfig(opts: StackOptions, workDir: string): Promise<unknown> {
  const hosts = [];
  for (const h of opts.hosts ?? DEFAULT_HOSTS) {
    if (h.driver === 'qemu') {
      hosts.push(qemuHostConfig(h, workDir));
      continue;
    }
    hosts.push(
      await simulatedHostConfig(h.name, h.pool, {
        memoryMiB: h.memoryMiB ?? 16384,
        ...(h.productVersion ? { productVersion: h.productVersion } : {}),
      }),
    );
  }
  const encryption =
    opts.encryption === false
      ? undefined
      : { keyId: `stack-${randomBytes(4).toString('hex')}`, keyFile: join(workDir, 'codec.key'), codecServer: { listen: `127.0.0.1:${await freePort()}` } };
  return {
    temporal: { address: `127.0.0.1:${await freePort()}`, uiPort: await freePort(), ...(encryption ? { encryption } : {}) },
    simulator: { bandwidthMiBps: opts.bandwidthMiBps ?? 512 },
    hosts,
    migration: opts.migration ?? {},
    ...(opts.flavors ? { flavors: opts.flavors } : {}),
    inventory: opts.inventory ?? {},
    pools: opts.pools ?? {},
    api: { listen: `127.0.0.1:${await freePort()}`, auth: opts.apiAuth ?? { mode: 'none' } },
  };
}

/** Waits until a task queue has a poller: the worker process is up and polling. */
async function waitForPoller(client: Client, namespace: string, queue: string, type: 1 | 2, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`worker for ${queue} exited with ${child.exitCode}`);
    const response = await client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: queue }, taskQueueType: type });
    // This child's own poller (the SDK's identity is pid@host): a worker killed a moment ago is
    // still listed for a while, and must not pass for the new one.
    if ((response.pollers ?? []).some((p) => p.identity?.startsWith(`${child.pid}@`))) return;
    if (Date.now() > deadline) throw new Error(`no worker polls ${queue} after 90 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const workDir = opts.workDir ?? mkdtempSync(join(tmpdir(), 'ferry-stack-'));
  mkdirSync(workDir, { recursive: true });
  let configPath: string;
  let config: FerryConfig;
  if (opts.configPath) {
    configPath = resolve(opts.configPath);
    config = loadConfig(configPath);
  } else {
    const doc = await generatedConfig(opts, workDir);
    config = parseConfig(doc, 'generated stack config');
    configPath = join(workDir, 'temporal.yaml');
    writeFileSync(configPath, JSON.stringify(doc, null, 2)); // JSON is YAML
  }
  const passwordEnv = config.hosts[0]?.passwordEnv ?? 'FERRY_XENAPI_PASSWORD';
  const password = process.env[passwordEnv] || randomBytes(12).toString('hex');
  const env = { ...opts.env, [passwordEnv]: password };
  const port = Number(config.temporal.address.split(':')[1]);
  const logs = join(workDir, 'logs');
  // The key of this stack (or of the demo's state dir): generated once, never in the repository.
  const keyFile = config.temporal.encryption?.keyFile;
  if (keyFile && !existsSync(keyFile)) {
    mkdirSync(resolve(keyFile, '..'), { recursive: true });
    writeFileSync(keyFile, `${generateEncryptionKey()}\n`, { mode: 0o600 });
  }
  const codecListen = config.temporal.encryption?.codecServer?.listen;
  const codecEndpoint = codecListen ? `http://${codecListen}` : undefined;
  // The web UI asks it only when a page needs a payload: it starts alongside the dev server.
  const codecServer = codecEndpoint
    ? spawnTs('scripts/codec-server.ts', ['--config', configPath], { env, logFile: join(logs, 'codec-server.log'), exitWithParent: true })
    : undefined;

  const devServerOptions: DevServerOptions = {
    port,
    uiPort: opts.ui ? config.temporal.uiPort : undefined,
    dbFile: opts.configPath
      ? resolve(configPath, '..', config.temporal.dataDir, 'temporal.sqlite')
      : opts.persistTemporal
        ? join(workDir, 'temporal.sqlite')
        : undefined,
    logFile: join(logs, 'temporal.log'),
    namespace: config.temporal.namespace,
    extraNamespaces: [config.temporal.systemNamespace],
    codecEndpoint,
  };
  let devServer: DevServer;
  try {
    [devServer] = await Promise.all([startDevServer(devServerOptions), codecServer ? waitForHttp(`${codecEndpoint}/healthz`, codecServer) : undefined]);
  } catch (err) {
    if (codecServer) await stopProcess(codecServer);
    throw err;
  }
  const { connection, client, systemClient } = await connectClients(config);
  // QEMU hosts have no simulator: their agents run QEMU processes themselves.
  const xenHosts = config.hosts.filter((h) => hostDriver(h) === 'xen');
  const qemuHosts = config.hosts.filter((h) => hostDriver(h) === 'qemu');
  const sims = await startSimulators({
    hosts: xenHosts,
    ...(xenHosts.length === 0 ? { ssh: false } : {}),
    bandwidthMiBps: config.simulator.bandwidthMiBps,
    password,
    logDir: logs,
    stateDir: join(workDir, 'sim-state'),
    maxIterations: opts.maxIterations,
  });

  const agents = new Map<string, ChildProcess>();
  /** One agent process serving these hosts. */
  const startAgents = async (hosts: string[]) => {
    const child = spawnTs('workers/host-agent.ts', ['--config', configPath, ...hosts.flatMap((h) => ['--host', h])], {
      env,
      logFile: join(logs, `agent-${hosts.length === 1 ? hosts[0] : `${hosts[0]}-and-${hosts.length - 1}-more`}.log`),
      exitWithParent: true,
    });
    for (const host of hosts) agents.set(host, child);
    await Promise.all(hosts.map((host) => waitForPoller(client, config.temporal.namespace, hostQueue(config, host), 2, child)));
  };
  const stack: Stack = {
    config,
    configPath,
    workDir,
    password,
    devServer,
    client,
    systemClient,
    sims,
    codecEndpoint,
    codecServer,
    conductor: undefined as unknown as ChildProcess,
    agents,
    async startConductor() {
      const child = spawnTs('workers/conductor.ts', ['--config', configPath], { env, logFile: join(logs, 'conductor.log'), exitWithParent: true });
      stack.conductor = child;
      await waitForPoller(client, config.temporal.namespace, config.taskQueues.conductor, 1, child);
    },
    async startAgent(host: string) {
      await startAgents([host]);
    },
    async killConductor(signal = 'SIGKILL') {
      await killAndWait(stack.conductor, signal);
    },
    async killAgent(host: string, signal = 'SIGKILL') {
      const child = agents.get(host);
      if (child) await killAndWait(child, signal);
    },
    apiUrl: opts.api ? `http://${config.api.listen}` : undefined,
    async startApi() {
      const child = spawnTs('api/main.ts', ['--config', configPath], { env, logFile: join(logs, 'api.log'), exitWithParent: true });
      stack.api = child;
      await waitForHttp(`http://${config.api.listen}/healthz`, child);
    },
    async killApi(signal = 'SIGKILL') {
      if (stack.api) await killAndWait(stack.api, signal);
    },
    async restartDevServer() {
      if (!devServerOptions.dbFile) throw new Error('restartDevServer needs a database file: start the stack with persistTemporal');
      await killAndWait(stack.devServer.process, 'SIGKILL');
      // The ports were just released; a bind can still race the kernel for a moment.
      for (let attempt = 1; ; attempt++) {
        try {
          stack.devServer = await startDevServer(devServerOptions);
          return;
        } catch (err) {
          if (attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 500 * attempt));
        }
      }
    },
    async stop() {
      await Promise.all([stack.conductor, stack.api, stack.codecServer, ...new Set(agents.values())].filter((c) => c !== undefined).map((c) => stopProcess(c)));
      await sims.stop();
      // QEMU daemonizes: its guests outlive the agents, so the stack ends them.
      await Promise.all(qemuHosts.map((h) => destroyQemuGuests(h).catch(() => undefined)));
      await connection.close();
      await stack.devServer.stop();
    },
  };
  try {
    await Promise.all([
      stack.startConductor(),
      ...chunks(
        config.hosts.map((h) => h.name),
        opts.agentsPerProcess ?? 1,
      ).map(startAgents),
      ...(opts.api ? [stack.startApi()] : []),
    ]);
    await waitForInventory(new HostInventory(systemClient, config));
  } catch (err) {
    await stack.stop().catch(() => undefined);
    throw new Error(`${(err as Error).message} (logs in ${logs})`, { cause: err });
  }
  return stack;
}

/** Waits until every host's agent has reported it up: a stack is ready when the inventory is. */
async function waitForInventory(inventory: HostInventory): Promise<void> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const down = (await inventory.view({ fresh: true })).hosts.filter((h) => !h.up);
    if (down.length === 0) return;
    if (Date.now() > deadline) throw new Error(`hosts not reported up after 90 s: ${down.map((h) => `${h.name} (${h.downReason})`).join(', ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Waits until `url` answers 200 (the process listens). */
async function waitForHttp(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`process for ${url} exited with ${child.exitCode}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${url} does not answer after 90 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function killAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    child.once('exit', () => r());
    child.kill(signal);
  });
}
