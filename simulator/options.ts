// Everything one simulated pool process needs to know: its members (each host with its own
// loopback IP and ports), the credentials, the link and pre-copy settings, and where the pool's
// database, its shared SR and each member's local SR live on disk.
import { join } from 'node:path';
import type { HostConfig } from '../lib/config';
export interface MemberOptions {
  name: string;
  /** The host's own loopback address (host.address); its XenAPI, data and admin servers bind here. */
  ip: string;
  /**
   * The address of the host's second PIF, on the pool's storage/migration network; absent: derived
   * from ip (migrationAddress). Its data server listens there too.
   */
  migrationIp?: string;
  /** The same for every member of a pool (os-xenapi swaps only the address after HOST_IS_SLAVE). */
  xenapiPort: number;
  dataPort: number;
  adminPort: number;
  memoryMiB: number;
  cpuModel: string;
  productVersion: string;
  platformVersion: string;
}

export interface PoolOptions {
  pool: string;
  /** The first member is the pool master (pool.get_master). */
  members: MemberOptions[];
  user: string;
  password: string;
  bandwidthMiBps: number;
  /** Pre-copy rounds before stop-and-copy (libxc: 5); 0 = unlimited (only convergence stops it). */
  maxIterations: number;
  /** Pre-copy stops once fewer pages than this are dirty (libxc: 50). */
  minDirtyPages: number;
  /** Holds pool-<pool>/db.json, pool-<pool>/shared-sr/ and <host>/local-sr/. */
  stateDir: string;
  /**
   * How this pool's hosts reach the others over SSH (the cluster's sshd, simulator/sshd.ts): the
   * dom0 migration plugin's rsync uses it. Absent: transfer_vhd to another host fails.
   */
  ssh?: { port: number; identityFile: string };
}

/**
 * The address of a host's PIF on its pool's second network (the storage/migration network): its
 * loopback address moved to 127.(a+100).b.c, so that it is distinct from every host's management
 * address (127.0.n.m) and from each other's. A host that is not on loopback has no second PIF.
 */
export function migrationAddress(m: Pick<MemberOptions, 'ip' | 'migrationIp'>): string | null {
  if (m.migrationIp) return m.migrationIp;
  const parts = /^127\.(\d+)\.(\d+)\.(\d+)$/.exec(m.ip);
  if (!parts || Number(parts[1]) >= 100) return null;
  return `127.${Number(parts[1]) + 100}.${parts[2]}.${parts[3]}`;
}

/** A member's options from its temporal.yaml entry: the address and XenAPI port come from xenapiUrl. */
export function memberFromHostConfig(h: HostConfig): MemberOptions {
  if (!h.simulator) throw new Error(`host ${h.name} has no simulator block`);
  const u = new URL(h.xenapiUrl);
  return {
    name: h.name,
    ip: u.hostname,
    xenapiPort: Number(u.port || 80),
    dataPort: h.simulator.dataPort,
    adminPort: h.simulator.adminPort,
    memoryMiB: h.simulator.memoryMiB,
    cpuModel: h.simulator.cpuModel,
    productVersion: h.simulator.productVersion,
    platformVersion: h.simulator.platformVersion,
  };
}

export const DEFAULTS = {
  user: 'root',
  memoryMiB: 16384,
  cpuModel: 'Intel Xeon (simulated)',
  productVersion: '8.2.1',
  platformVersion: '3.4.0',
  bandwidthMiBps: 256,
  maxIterations: 5,
  minDirtyPages: 50,
};

/** Throws a readable error when the members cannot form one pool on this machine. */
export function validatePool(o: PoolOptions): void {
  if (!o.members.length) throw new Error(`pool ${o.pool} has no member`);
  const ports = new Set(o.members.map((m) => m.xenapiPort));
  if (ports.size > 1) {
    throw new Error(
      `the members of pool ${o.pool} must share one XenAPI port (each on its own address), as a client that follows ` +
        `HOST_IS_SLAVE keeps the port and swaps only the address; got ${o.members.map((m) => `${m.name}=${m.ip}:${m.xenapiPort}`).join(', ')}`,
    );
  }
  const ips = new Map<string, string>();
  for (const m of o.members) {
    const other = ips.get(m.ip);
    if (other) throw new Error(`hosts ${other} and ${m.name} of pool ${o.pool} have the same address ${m.ip}: each host needs its own`);
    ips.set(m.ip, m.name);
  }
}

/** <stateDir>/by-address/<address>: a host's directory by each of its addresses (how another host's rsync names it). */
export function hostDirByAddress(stateDir: string, address: string): string {
  return join(stateDir, 'by-address', address);
}
