// Starts the simulated pools of a cluster (from temporal.yaml HostConfigs) in child processes, one
// pool per process for small clusters and many pools per process for large ones (poolsPerProcess,
// processes), waits until each is ready, and can crash and restart single hosts (in-process: admin
// /crash and /restart) or kill and respawn a whole process. All pools of a cluster share one state
// directory, which holds each pool's database and shared SR and each host's local SR.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { HostConfig } from '../lib/config';
import { claimPort, freePort } from '../lib/ports';
import { AdminClient } from './admin-client';
import { DEFAULTS, memberFromHostConfig, migrationAddress, validatePool, type PoolOptions } from './options';
import { startSshd, type SshAccess, type SshServer } from './sshd';

export interface SimHostHandle {
  name: string;
  pool: string;
  xenapiUrl: string;
  adminUrl: string;
  dataPort: number;
  /** The simulator process running this host's pool (and the other pools packed with it). */
  process: ChildProcess;
  admin: AdminClient;
}

export interface SimCluster {
  hosts: SimHostHandle[];
  stateDir: string;
  /**
   * The sshd every simulated host is reachable through (port, client key), for the migration
   * plugin's rsync; undefined when it could not start (sshReason says why).
   */
  ssh: SshAccess | undefined;
  sshReason?: string;
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
  /**
   * SIGKILL the process of the host's pool (every member at once, as a pool-wide power loss; with
   * several pools per process, every pool of that process).
   */
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
  /**
   * Pools per simulator process, in configuration order. Default: one (as killProcess expects: it
   * takes down that pool only) for clusters of up to 8 pools; larger clusters are spread evenly over
   * `processes`.
   */
  poolsPerProcess?: number;
  /** The most simulator processes when poolsPerProcess is not given (default: 4 above 8 pools). */
  processes?: number;
  /** Start the cluster's sshd for the migration plugin (default true; simulator/sshd.ts). */
  ssh?: boolean;
}

/** Clusters of up to this many pools run one pool per process. */
export const ONE_PROCESS_PER_POOL_UP_TO = 8;
/** Larger clusters are spread over this many processes: each costs ~100 MiB and ~0.5 s of CPU to start. */
export const DEFAULT_PROCESSES = 4;

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

/** Splits pools (in order) into the groups each process runs. */
export function packPools<T>(pools: T[], opts: { poolsPerProcess?: number; processes?: number } = {}): T[][] {
  const maxProcesses = Math.max(1, opts.processes ?? (pools.length <= ONE_PROCESS_PER_POOL_UP_TO ? pools.length : DEFAULT_PROCESSES));
  const per = Math.max(1, opts.poolsPerProcess ?? Math.ceil(pools.length / maxProcesses));
  const groups: T[][] = [];
  for (let i = 0; i < pools.length; i += per) groups.push(pools.slice(i, i + per));
  return groups;
}

export async function startSimulators(opts: StartSimulatorsOptions): Promise<SimCluster> {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'ferry-sim-'));
  if (opts.logDir) mkdirSync(opts.logDir, { recursive: true });
  // Pools with their members in configuration order (the first is the master).
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
  // Each host its own address, cluster-wide: the address is how a host is told apart (host.address).
  const byIp = new Map<string, string>();
  for (const p of pools.values()) {
    for (const m of p.members) {
      const other = byIp.get(m.ip);
      if (other) throw new Error(`hosts ${other} and ${m.name} have the same address ${m.ip}: each simulated host needs its own`);
      byIp.set(m.ip, m.name);
    }
  }
  // One sshd for the cluster, on every host's addresses, so that the migration plugin's rsync
  // reaches a host at its own address. A machine without sshd still runs everything else.
  let sshd: SshServer | undefined;
  let sshReason: string | undefined;
  if (opts.ssh !== false) {
    const addresses = [...pools.values()].flatMap((p) => p.members.flatMap((m) => [m.ip, migrationAddress(m)].filter((a): a is string => !!a)));
    try {
      sshd = await startSshd({ stateDir, addresses, logFile: opts.logDir ? join(opts.logDir, 'sshd.log') : undefined });
      for (const p of pools.values()) p.ssh = { port: sshd.port, identityFile: sshd.identityFile };
    } catch (err) {
      sshReason = (err as Error).message;
      process.stderr.write(`simulator: no sshd for the migration plugin (${sshReason}); transfer_vhd between hosts will fail\n`);
    }
  }
  const groups = packPools([...pools.values()], opts);
  const groupOf = new Map<string, number>();
  groups.forEach((g, i) => g.forEach((p) => groupOf.set(p.pool, i)));

  const spawnGroup = async (group: PoolOptions[]): Promise<ChildProcess> => {
    const what = group.length === 1 ? `simulated pool ${group[0]?.pool}` : `simulated pools ${group[0]?.pool} to ${group.at(-1)?.pool}`;
    const logName = group.length === 1 ? `${group[0]?.pool}.log` : `${group[0]?.pool}-and-${group.length - 1}-more.log`;
    const pools = group.map(({ password: _password, ...rest }) => rest);
    const poolArgs = pools.length === 1 ? ['--pool-json', JSON.stringify(pools[0])] : ['--pools-json', JSON.stringify(pools)];
    const args = ['--import', 'tsx', MAIN, ...poolArgs, '--password', opts.password, '--exit-with-parent'];
    const log = opts.logDir ? openSync(join(opts.logDir, logName), 'a') : 'ignore';
    const timeoutMs = opts.startTimeoutMs ?? 20_000;
    // cwd: the project root, where `--import tsx` resolves whatever the caller's cwd.
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', log], env: process.env, cwd: resolve(__dirname, '..') });
    await new Promise<void>((resolveReady, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`${what} not ready within ${timeoutMs} ms`)), timeoutMs);
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('"event":"ready"')) {
          clearTimeout(timer);
          resolveReady();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${what} exited with ${code} before it was ready${opts.logDir ? ` (see ${opts.logDir}/${logName})` : ''}`));
      });
    });
    child.stdout?.resume();
    return child;
  };

  const hosts: SimHostHandle[] = [];
  const processes: ChildProcess[] = [];
  // Every process starts at once: each takes a while to load, most of it waiting.
  const started = await Promise.allSettled(groups.map((g) => spawnGroup(g)));
  for (const r of started) if (r.status === 'fulfilled') processes.push(r.value);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    for (const c of processes) c.kill('SIGKILL');
    await sshd?.stop();
    throw (failed as PromiseRejectedResult).reason;
  }
  groups.forEach((group, i) => {
    for (const p of group) {
      for (const m of p.members) {
        const adminUrl = `http://${m.ip}:${m.adminPort}/`;
        hosts.push({
          name: m.name,
          pool: p.pool,
          xenapiUrl: `http://${m.ip}:${m.xenapiPort}/`,
          adminUrl,
          dataPort: m.dataPort,
          process: processes[i] as ChildProcess,
          admin: new AdminClient(adminUrl),
        });
      }
    }
  });
  // Keep each host's xenapiUrl exactly as configured (trailing path and all).
  for (const h of hosts) h.xenapiUrl = opts.hosts.find((c) => c.name === h.name)?.xenapiUrl ?? h.xenapiUrl;

  const find = (name: string) => {
    const h = hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no simulated host ${name}`);
    return h;
  };
  const alive = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;
  const processOf = (h: SimHostHandle) => groupOf.get(h.pool) as number;
  const respawning = new Map<number, Promise<void>>();

  return {
    hosts,
    stateDir,
    ssh: sshd ? { port: sshd.port, identityFile: sshd.identityFile } : undefined,
    sshReason,
    host: find,
    async stop() {
      await Promise.all(
        processes.map(async (c) => {
          c.kill('SIGTERM');
          const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
          await exited(c);
          clearTimeout(timer);
        }),
      );
      await sshd?.stop();
    },
    async crash(name) {
      const h = find(name);
      if (!alive(h.process)) return;
      await h.admin.crash();
    },
    async restart(name) {
      const h = find(name);
      const i = processOf(h);
      if (alive(processes[i] as ChildProcess)) {
        await h.admin.restart();
        return;
      }
      // One respawn per process, however many of its hosts ask.
      let respawn = respawning.get(i);
      if (!respawn) {
        respawn = spawnGroup(groups[i] as PoolOptions[])
          .then((fresh) => {
            processes[i] = fresh;
            for (const m of hosts) if (processOf(m) === i) m.process = fresh;
          })
          .finally(() => respawning.delete(i));
        respawning.set(i, respawn);
      }
      await respawn;
    },
    async killProcess(name) {
      const child = processes[processOf(find(name))] as ChildProcess;
      child.kill('SIGKILL');
      await exited(child);
    },
  };
}
