// Starts one simulator process per pool (from temporal.yaml HostConfigs), waits until each is
// ready, and can crash and restart single hosts (in-process: admin /crash and /restart) or kill
// and respawn a whole pool process. All pools of a cluster share one state directory, which holds
// each pool's database and shared SR and each host's local SR.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { HostConfig } from '../lib/config';
import { claimPort, freePort } from '../lib/ports';
import { AdminClient } from './admin-client';
import { DEFAULTS, memberFromHostConfig, validatePool, type PoolOptions } from './options';

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
  /** SIGTERM every pool process and wait for them to exit. */
  stop(): Promise<void>;
  /**
   * A power loss of one host (admin POST /crash): its guests die, its XenAPI and data servers stop
   * accepting connections (every member's XenAPI when it is the master); the pool database keeps
   * its VMs as they were.
   */
  crash(name: string): Promise<void>;
  /**
   * Brings a crashed host back (admin POST /restart): VMs resident on it become Halted. When its
   * pool process is gone (killProcess, or it died), respawns the pool: it loads the pool database
   * with every VM Halted.
   */
  restart(name: string): Promise<void>;
  /** SIGKILL the process of the host's pool (every member at once, as a pool-wide power loss). */
  killProcess(name: string): Promise<void>;
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

/** Addresses handed out by this process (127.0.<n>.<m>, never 127.0.0.x). */
const usedIps = new Set<string>();
/** Pool name -> the XenAPI port its members share (each on its own address). */
const poolPorts = new Map<string, number>();

function newIp(): string {
  for (;;) {
    const ip = `127.0.${1 + Math.floor(Math.random() * 254)}.${1 + Math.floor(Math.random() * 254)}`;
    if (!usedIps.has(ip)) {
      usedIps.add(ip);
      return ip;
    }
  }
}

/**
 * A simulated host's config (tests, benchmarks, the generated stack): its own loopback address,
 * free data and admin ports there, and the XenAPI port every member of `pool` shares.
 */
export async function simulatedHostConfig(name: string, pool: string, simulator: Partial<SimulatorBlock> = {}): Promise<HostConfig> {
  let ip = newIp();
  let xenapiPort = poolPorts.get(pool);
  if (xenapiPort === undefined) {
    xenapiPort = await freePort(ip);
    poolPorts.set(pool, xenapiPort);
  } else {
    let attempts = 0;
    while (!(await claimPort(xenapiPort, ip))) {
      if (++attempts > 20) throw new Error(`port ${xenapiPort} of pool ${pool} is taken on 20 addresses; cannot place ${name}`);
      ip = newIp();
    }
  }
  return {
    name,
    pool,
    xenapiUrl: `http://${ip}:${xenapiPort}/`,
    user: 'root',
    passwordEnv: 'FERRY_XENAPI_PASSWORD',
    simulator: {
      dataPort: await freePort(ip),
      adminPort: await freePort(ip),
      memoryMiB: 2048,
      cpuModel: 'Intel Xeon (simulated)',
      productVersion: '8.2.1',
      platformVersion: '3.4.0',
      ...simulator,
    },
  };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

export async function startSimulators(opts: StartSimulatorsOptions): Promise<SimCluster> {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'ferry-sim-'));
  if (opts.logDir) mkdirSync(opts.logDir, { recursive: true });
  // One process per pool, members in configuration order (the first is the master).
  const pools = new Map<string, PoolOptions>();
  for (const h of opts.hosts) {
    let p = pools.get(h.pool);
    if (!p) {
      p = {
        pool: h.pool,
        members: [],
        user: h.user,
        password: opts.password,
        bandwidthMiBps: opts.bandwidthMiBps,
        maxIterations: opts.maxIterations ?? DEFAULTS.maxIterations,
        minDirtyPages: DEFAULTS.minDirtyPages,
        stateDir,
      };
      pools.set(h.pool, p);
    }
    p.members.push(memberFromHostConfig(h));
  }
  for (const p of pools.values()) validatePool(p);

  const spawnPool = async (p: PoolOptions): Promise<ChildProcess> => {
    const { password, ...rest } = p;
    const args = ['--import', 'tsx', MAIN, '--pool-json', JSON.stringify(rest), '--password', password, '--exit-with-parent'];
    const log = opts.logDir ? openSync(join(opts.logDir, `${p.pool}.log`), 'a') : 'ignore';
    // cwd: the project root, where `--import tsx` resolves whatever the caller's cwd.
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', log], env: process.env, cwd: resolve(__dirname, '..') });
    await new Promise<void>((resolveReady, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`simulated pool ${p.pool} not ready within ${opts.startTimeoutMs ?? 20_000} ms`)), opts.startTimeoutMs ?? 20_000);
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('"event":"ready"')) {
          clearTimeout(timer);
          resolveReady();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`simulated pool ${p.pool} exited with ${code} before it was ready${opts.logDir ? ` (see ${opts.logDir}/${p.pool}.log)` : ''}`));
      });
    });
    child.stdout?.resume();
    return child;
  };

  const hosts: SimHostHandle[] = [];
  const processes = new Map<string, ChildProcess>();
  try {
    for (const p of pools.values()) {
      const child = await spawnPool(p);
      processes.set(p.pool, child);
      for (const m of p.members) {
        const adminUrl = `http://${m.ip}:${m.adminPort}/`;
        hosts.push({
          name: m.name,
          pool: p.pool,
          xenapiUrl: `http://${m.ip}:${m.xenapiPort}/`,
          adminUrl,
          dataPort: m.dataPort,
          process: child,
          admin: new AdminClient(adminUrl),
        });
      }
    }
  } catch (err) {
    for (const c of processes.values()) c.kill('SIGKILL');
    throw err;
  }
  // Keep each host's xenapiUrl exactly as configured (trailing path and all).
  for (const h of hosts) h.xenapiUrl = opts.hosts.find((c) => c.name === h.name)?.xenapiUrl ?? h.xenapiUrl;

  const find = (name: string) => {
    const h = hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no simulated host ${name}`);
    return h;
  };
  const alive = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;

  return {
    hosts,
    stateDir,
    host: find,
    async stop() {
      await Promise.all(
        [...processes.values()].map(async (c) => {
          c.kill('SIGTERM');
          const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
          await exited(c);
          clearTimeout(timer);
        }),
      );
    },
    async crash(name) {
      const h = find(name);
      if (!alive(h.process)) return;
      await h.admin.crash();
    },
    async restart(name) {
      const h = find(name);
      const child = processes.get(h.pool) as ChildProcess;
      if (alive(child)) {
        await h.admin.restart();
        return;
      }
      const fresh = await spawnPool(pools.get(h.pool) as PoolOptions);
      processes.set(h.pool, fresh);
      for (const m of hosts) if (m.pool === h.pool) m.process = fresh;
    },
    async killProcess(name) {
      const child = processes.get(find(name).pool) as ChildProcess;
      child.kill('SIGKILL');
      await exited(child);
    },
  };
}
