// Starts one simulator process per host (from temporal.yaml HostConfigs), waits until each is
// ready, and can crash and restart them. All hosts of a cluster share one state directory, which
// holds each pool's shared SR.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { HostConfig } from '../lib/config';
import { freePort } from '../lib/ports';
import { AdminClient } from './admin-client';
import { DEFAULTS, type PeerHost } from './options';

export interface SimHostHandle {
  name: string;
  pool: string;
  xenapiUrl: string;
  adminUrl: string;
  dataPort: number;
  process: ChildProcess;
  admin: AdminClient;
}

export interface SimCluster {
  hosts: SimHostHandle[];
  stateDir: string;
  host(name: string): SimHostHandle;
  /** SIGTERM every host and wait for them to exit. */
  stop(): Promise<void>;
  /** SIGKILL a host (as a power loss): its VMs are halted. */
  crash(name: string): Promise<void>;
  /** Starts a crashed or stopped host again; it comes back with its VMs halted. */
  restart(name: string): Promise<void>;
}

export interface StartSimulatorsOptions {
  hosts: HostConfig[];
  bandwidthMiBps: number;
  password: string;
  logDir?: string;
  /** Defaults to a fresh temporary directory. */
  stateDir?: string;
  /** Pre-copy round limit for every host (default 5, libxc); 0 = unlimited. */
  maxIterations?: number;
  startTimeoutMs?: number;
}

const MAIN = resolve(__dirname, 'main.ts');

type SimulatorBlock = NonNullable<HostConfig['simulator']>;

/** A simulated host's config on free loopback ports (tests, benchmarks, the generated stack). */
export async function simulatedHostConfig(name: string, pool: string, simulator: Partial<SimulatorBlock> = {}): Promise<HostConfig> {
  return {
    name,
    pool,
    xenapiUrl: `http://127.0.0.1:${await freePort()}/`,
    user: 'root',
    passwordEnv: 'FERRY_XENAPI_PASSWORD',
    simulator: {
      dataPort: await freePort(),
      adminPort: await freePort(),
      memoryMiB: 2048,
      cpuModel: 'Intel Xeon (simulated)',
      productVersion: '8.2.1',
      platformVersion: '3.4.0',
      ...simulator,
    },
  };
}

function portOf(url: string): number {
  return Number(new URL(url).port || 80);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

export async function startSimulators(opts: StartSimulatorsOptions): Promise<SimCluster> {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'ferry-sim-'));
  if (opts.logDir) mkdirSync(opts.logDir, { recursive: true });
  const peers: PeerHost[] = opts.hosts.map((h) => ({
    name: h.name,
    pool: h.pool,
    xenapiUrl: h.xenapiUrl,
    dataPort: h.simulator?.dataPort ?? 0,
    memoryMiB: h.simulator?.memoryMiB ?? DEFAULTS.memoryMiB,
  }));

  const spawnHost = async (h: HostConfig): Promise<ChildProcess> => {
    const sim = h.simulator;
    if (!sim) throw new Error(`host ${h.name} has no simulator block`);
    const args = [
      '--import', 'tsx', MAIN,
      '--name', h.name, '--pool', h.pool,
      '--xenapi-port', String(portOf(h.xenapiUrl)), '--data-port', String(sim.dataPort), '--admin-port', String(sim.adminPort),
      '--user', h.user, '--password', opts.password,
      '--memory-mib', String(sim.memoryMiB), '--cpu-model', sim.cpuModel,
      '--product-version', sim.productVersion, '--platform-version', sim.platformVersion,
      '--bandwidth', String(opts.bandwidthMiBps), '--state-dir', stateDir,
      '--max-iterations', String(opts.maxIterations ?? DEFAULTS.maxIterations),
      '--hosts-json', JSON.stringify(peers),
      '--exit-with-parent',
    ];
    const log = opts.logDir ? openSync(join(opts.logDir, `${h.name}.log`), 'a') : 'ignore';
    // cwd: the project root, where `--import tsx` resolves whatever the caller's cwd.
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', log], env: process.env, cwd: resolve(__dirname, '..') });
    await new Promise<void>((resolveReady, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`simulator ${h.name} not ready within ${opts.startTimeoutMs ?? 20_000} ms`)), opts.startTimeoutMs ?? 20_000);
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('"event":"ready"')) {
          clearTimeout(timer);
          resolveReady();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`simulator ${h.name} exited with ${code} before it was ready${opts.logDir ? ` (see ${opts.logDir}/${h.name}.log)` : ''}`));
      });
    });
    child.stdout?.resume();
    return child;
  };

  const hosts: SimHostHandle[] = [];
  try {
    for (const h of opts.hosts) {
      const adminUrl = `http://127.0.0.1:${h.simulator?.adminPort}/`;
      hosts.push({
        name: h.name,
        pool: h.pool,
        xenapiUrl: h.xenapiUrl,
        adminUrl,
        dataPort: h.simulator?.dataPort ?? 0,
        process: await spawnHost(h),
        admin: new AdminClient(adminUrl),
      });
    }
  } catch (err) {
    for (const h of hosts) h.process.kill('SIGKILL');
    throw err;
  }

  const find = (name: string) => {
    const h = hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no simulated host ${name}`);
    return h;
  };

  return {
    hosts,
    stateDir,
    host: find,
    async stop() {
      await Promise.all(
        hosts.map(async (h) => {
          h.process.kill('SIGTERM');
          const timer = setTimeout(() => h.process.kill('SIGKILL'), 5_000);
          await exited(h.process);
          clearTimeout(timer);
        }),
      );
    },
    async crash(name) {
      const h = find(name);
      h.process.kill('SIGKILL');
      await exited(h.process);
    },
    async restart(name) {
      const h = find(name);
      if (h.process.exitCode === null && h.process.signalCode === null) {
        h.process.kill('SIGKILL');
        await exited(h.process);
      }
      const config = opts.hosts.find((x) => x.name === name) as HostConfig;
      h.process = await spawnHost(config);
    },
  };
}
