// One simulated Xen host, a member of a pool (pool.ts holds the pool's database): the guests
// running on it (real memory), its local SR, its outgoing link, its faults, the migrations it sends
// and receives, and whether it is crashed. The XML-RPC methods (api.ts), the data plane
// (receiver.ts, migration.ts) and the admin endpoint (admin.ts) work through this class.
import { mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createLogger, type Logger } from '../lib/logger';
import { XenApiCode, XenApiError } from '../xenapi/errors';
import { Link } from './data-plane';
import { DiskWriter } from './disk-writer';
import { Faults } from './faults';
import { GuestMemory } from './guest';
import { NULL_REF, newUuid, stableRef } from './ids';
import { hostDirByAddress, migrationAddress, type MemberOptions } from './options';
import { cutTransfers } from './migration-plugin';
import type { SimPool } from './pool';
import type { ClassName, Rec, Store } from './store';

const MiB = 1024 * 1024;

export const refs = {
  host: (name: string) => stableRef(`host:${name}`),
  hostMetrics: (name: string) => stableRef(`host_metrics:${name}`),
  pif: (name: string) => stableRef(`pif:${name}`),
  pool: (pool: string) => stableRef(`pool:${pool}`),
  network: (pool: string) => stableRef(`network:${pool}`),
  /** The pool's second network (storage/migration), and each host's PIF on it. */
  migrationNetwork: (pool: string) => stableRef(`network-migration:${pool}`),
  migrationPif: (name: string) => stableRef(`pif-migration:${name}`),
  sharedSr: (pool: string) => stableRef(`sr-shared:${pool}`),
  localSr: (name: string) => stableRef(`sr-local:${name}`),
  dom0: (name: string) => stableRef(`dom0:${name}`),
};

export interface Incoming {
  id: string;
  vmUuid: string;
  vmName: string;
  memoryBytes: number;
  receivedBytes: number;
  from: string;
  startedAt: string;
}

/** The figures of one migration this host sends (admin GET /migrations); xapi shows none of them. */
export interface MigrationFigures {
  taskRef: string;
  vmUuid: string;
  kind: 'migrate_send' | 'pool_migrate';
  destination: string;
  phase: string;
  iteration: number;
  memoryTotalBytes: number;
  memoryProcessedBytes: number;
  memoryRemainingBytes: number;
  diskTotalBytes: number;
  diskProcessedBytes: number;
  dirtyRateBytesPerS: number;
  expectedDowntimeMs: number;
  bytesSent: number;
  downtimeMs: number | null;
  totalMs: number | null;
  memorySha256: string | null;
  status: 'running' | 'success' | 'failure' | 'cancelled';
}

export type HandoffPoint = 'after-handoff' | 'after-ready' | 'after-resume';
export type HandoffAction = 'crash-source' | 'crash-destination' | 'drop-connection';

/** What the servers of a host do when it crashes or comes back (set by server.ts). */
export interface Endpoints {
  /** Opens or closes the host's XenAPI and data servers to match its state and its master's. */
  sync(): Promise<void>;
}

const KEEP_FINISHED = 50;

export class SimHost {
  readonly guests = new Map<string, GuestMemory>();
  /** The disk writes of each running guest (other_config sim_disk_write_mibps). */
  readonly diskWriters = new Map<string, DiskWriter>();
  readonly faults = new Faults();
  readonly link: Link;
  readonly log: Logger;
  readonly hostRef: string;
  readonly localSrRef: string;
  readonly incoming = new Map<string, Incoming>();
  /** Bytes received by this host's data servers, per local address (the PIF's IP the source connected to). */
  readonly receivedByAddress = new Map<string, number>();
  /** VM uuid -> sha256 of its memory at the instant it resumed here after a migration (computed off the event loop). */
  readonly arrivals = new Map<string, () => Promise<string>>();
  /** Checksums of finished migrations still being computed (memorySha256): admin GET /migrations waits for them. */
  readonly pendingChecksums = new Set<Promise<void>>();
  /** Migration task ref -> VM ref, whether storage moves, and how to abort it (crash, hard_shutdown). */
  readonly outgoing = new Map<string, { vmRef: string; storage: boolean; abort: (why: string) => void; done: Promise<unknown> }>();
  /** Running and recently finished migrations this host sent, newest last. */
  readonly migrations: MigrationFigures[] = [];
  /** Called when the host crashes: cuts its data connections. */
  readonly onCrash = new Set<() => void>();
  maxIterations: number;
  minDirtyPages: number;
  crashed = false;
  endpoints: Endpoints | undefined;
  /** One-shot handshake fault for the next migration this host sends. */
  handoffFault: { point: HandoffPoint; action: HandoffAction } | undefined;
  private nextDomid = 1;
  private reservedIncomingBytes = 0;

  constructor(
    readonly pool: SimPool,
    readonly opts: MemberOptions,
  ) {
    this.log = createLogger('simulator', { host: opts.name, pool: pool.name });
    this.link = new Link(pool.opts.bandwidthMiBps * MiB);
    this.maxIterations = pool.opts.maxIterations;
    this.minDirtyPages = pool.opts.minDirtyPages;
    this.hostRef = refs.host(opts.name);
    this.localSrRef = refs.localSr(opts.name);
    mkdirSync(this.localSrDir, { recursive: true });
    mkdirSync(this.imagesDir, { recursive: true });
    rmSync(join(this.rootDir, 'crashed'), { force: true }); // a new process: the host is up
    linkAddresses(this);
    this.removeOwnPartialFiles();
  }

  get name(): string {
    return this.opts.name;
  }

  get store(): Store {
    return this.pool.store;
  }

  get sessions(): Set<string> {
    return this.pool.sessions;
  }

  get isMaster(): boolean {
    return this.pool.master === this;
  }

  /** This host's XenAPI answers: it is up, and so is its master (a slave forwards to the master). */
  get xenapiUp(): boolean {
    return !this.crashed && this.pool.apiUp;
  }

  /** This host's own directory in the state directory (what "/" is for paths its dom0 plugins use). */
  get rootDir(): string {
    return join(this.pool.opts.stateDir, this.opts.name);
  }

  /** Nova's staging area for incoming disks, /images on a real host (os-xenapi migration.py). */
  get imagesDir(): string {
    return join(this.rootDir, 'images');
  }

  get localSrDir(): string {
    return join(this.pool.opts.stateDir, this.opts.name, 'local-sr');
  }

  /** Half-received disks of migrations this host was receiving when it crashed. */
  removeOwnPartialFiles(): void {
    for (const dir of [this.localSrDir, this.pool.sharedSrDir]) {
      let files: string[];
      try {
        files = readdirSync(dir);
      } catch {
        continue;
      }
      for (const f of files) if (f.endsWith(`.${this.name}.partial`)) rmSync(join(dir, f), { force: true });
    }
  }

  // ---- memory accounting ----

  memoryTotal(): number {
    return this.opts.memoryMiB * MiB;
  }

  memoryFree(): number {
    let used = this.reservedIncomingBytes;
    for (const rec of this.store.table('VM').values()) {
      if (rec.resident_on === this.hostRef && rec.power_state !== 'Halted') used += Number(rec.memory_static_max);
    }
    return this.memoryTotal() - used;
  }

  reserveIncoming(bytes: number): void {
    const free = this.memoryFree();
    if (bytes > free) throw new XenApiError(XenApiCode.HOST_NOT_ENOUGH_FREE_MEMORY, [String(bytes), String(free)]);
    this.reservedIncomingBytes += bytes;
  }

  releaseIncoming(bytes: number): void {
    this.reservedIncomingBytes -= bytes;
  }

  view(cls: ClassName, ref: string): Rec {
    return this.pool.view(cls, ref);
  }

  // ---- VM lifecycle (the domain runs here) ----

  vm(ref: string): Rec {
    return this.store.raw('VM', ref);
  }

  assertPowerState(ref: string, ...expected: string[]): void {
    const actual = String(this.vm(ref).power_state);
    if (!expected.includes(actual)) throw new XenApiError(XenApiCode.VM_BAD_POWER_STATE, [ref, (expected[0] ?? '').toLowerCase(), actual.toLowerCase()]);
  }

  private guestSettings(rec: Rec): { dirtyRateMiBps: number; workingSetMiB?: number } {
    const oc = (rec.other_config ?? {}) as Record<string, string>;
    return { dirtyRateMiBps: Number(oc.sim_dirty_rate_mibps ?? 0), workingSetMiB: oc.sim_working_set_mib ? Number(oc.sim_working_set_mib) : undefined };
  }

  /** The guest model follows the VM's other_config at once (it is the guest's own behaviour). */
  refreshGuest(ref: string): void {
    const guest = this.guests.get(ref);
    const rec = this.store.table('VM').get(ref);
    if (!guest || !rec) return;
    guest.settings = this.guestSettings(rec);
    const writer = this.diskWriters.get(ref);
    if (writer) this.configureDiskWriter(writer, rec);
  }

  /** The guest's disk writes follow other_config: sim_disk_write_mibps, sim_disk_working_set_mib. */
  private configureDiskWriter(writer: DiskWriter, rec: Rec): void {
    const oc = (rec.other_config ?? {}) as Record<string, string>;
    writer.rateMiBps = Number(oc.sim_disk_write_mibps ?? 0) || 0;
    writer.workingSetMiB = Number(oc.sim_disk_working_set_mib ?? 0) || 0;
  }

  startVm(ref: string, paused: boolean): void {
    const rec = this.vm(ref);
    if (rec.is_a_template || rec.is_control_domain) throw new XenApiError(XenApiCode.VM_IS_TEMPLATE, [ref]);
    this.assertPowerState(ref, 'Halted');
    const need = Number(rec.memory_static_max);
    const free = this.memoryFree();
    if (need > free) throw new XenApiError(XenApiCode.HOST_NOT_ENOUGH_FREE_MEMORY, [String(need), String(free)]);
    this.attachGuest(ref, new GuestMemory(need, this.guestSettings(rec)), paused);
  }

  /**
   * Builds a domain here for the VM with the given memory (VM.start, or the end of an incoming
   * migration): a fresh domain takes its vCPU cap from the record's VCPUs_params.
   */
  attachGuest(ref: string, guest: GuestMemory, paused: boolean): void {
    const rec = this.vm(ref);
    this.guests.set(ref, guest);
    guest.settings = this.guestSettings(rec);
    guest.setCap(Number(((rec.VCPUs_params ?? {}) as Record<string, string>).cap ?? 0), Number(rec.VCPUs_at_startup ?? 1));
    this.store.update('VM', ref, {
      power_state: paused ? 'Paused' : 'Running',
      domid: String(this.nextDomid++),
      resident_on: this.hostRef,
    });
    if (!paused) guest.start();
    this.diskWriters.get(ref)?.stop();
    const writer = new DiskWriter(this.pool, ref, () => this.guests.get(ref)?.running === true);
    this.configureDiskWriter(writer, rec);
    this.diskWriters.set(ref, writer);
    writer.start();
  }

  pauseVm(ref: string): void {
    this.assertPowerState(ref, 'Running');
    this.guests.get(ref)?.stop();
    this.store.update('VM', ref, { power_state: 'Paused' });
  }

  unpauseVm(ref: string): void {
    this.assertPowerState(ref, 'Paused');
    const guest = this.guests.get(ref);
    if (guest) {
      guest.domainPaused = false;
      guest.start();
    }
    this.store.update('VM', ref, { power_state: 'Running' });
  }

  haltVm(ref: string): void {
    this.assertPowerState(ref, 'Running', 'Paused');
    this.dropGuest(ref);
    this.store.update('VM', ref, { power_state: 'Halted', domid: '-1', resident_on: NULL_REF });
  }

  /** Destroys the domain (its memory is gone). */
  dropGuest(ref: string): void {
    this.guests.get(ref)?.stop();
    this.guests.delete(ref);
    this.diskWriters.get(ref)?.stop();
    this.diskWriters.delete(ref);
  }

  /** The running domain with this domid, if any. */
  domain(domid: string): { vmRef: string; guest: GuestMemory } | undefined {
    for (const [vmRef, guest] of this.guests) {
      const rec = this.store.table('VM').get(vmRef);
      if (rec && String(rec.domid) === domid) return { vmRef, guest };
    }
    return undefined;
  }

  // ---- migrations this host sends: figures for the admin endpoint ----

  trackMigration(f: MigrationFigures): void {
    this.migrations.push(f);
    const finished = this.migrations.filter((m) => m.status !== 'running');
    if (finished.length > KEEP_FINISHED) {
      const drop = new Set(finished.slice(0, finished.length - KEEP_FINISHED));
      for (let i = this.migrations.length - 1; i >= 0; i--) if (drop.has(this.migrations[i] as MigrationFigures)) this.migrations.splice(i, 1);
    }
  }

  // ---- crash and restart ----

  /**
   * A power loss of this host: its guests die, its XenAPI and data servers stop accepting
   * connections, its migrations lose their connections. The pool database keeps what it had.
   */
  async crash(): Promise<void> {
    if (this.crashed) return;
    this.log.warn('crashed: guests halted, XenAPI and data servers down');
    this.crashed = true;
    // Its SSH refuses connections from now on (the sshd gate checks this file), and the rsyncs it
    // sends or receives die with it.
    writeFileSync(join(this.rootDir, 'crashed'), new Date().toISOString());
    cutTransfers(this);
    for (const ref of [...this.guests.keys()]) this.dropGuest(ref);
    for (const cut of [...this.onCrash]) cut();
    for (const o of this.outgoing.values()) o.abort('source host crashed');
    this.pool.setLive(this, false);
    await this.syncPoolEndpoints();
  }

  /** The host boots again: xapi's resync halts every VM the database has resident on it. */
  async restart(): Promise<void> {
    if (!this.crashed) return;
    this.crashed = false;
    rmSync(join(this.rootDir, 'crashed'), { force: true });
    this.removeOwnPartialFiles();
    this.incoming.clear();
    this.reservedIncomingBytes = 0;
    this.faults.thaw();
    if (this.isMaster) this.pool.forgetSessionsAndTasks();
    this.pool.resyncHost(this);
    this.pool.setLive(this, true);
    this.log.info('restarted: VMs that ran here are halted');
    await this.syncPoolEndpoints();
  }

  /** The master's state decides every member's XenAPI endpoint. */
  private async syncPoolEndpoints(): Promise<void> {
    await Promise.all(this.pool.members.map((m) => m.endpoints?.sync()));
  }
}

function linkAddresses(host: SimHost): void {
  const addresses = [host.opts.ip, migrationAddress(host.opts)].filter((a): a is string => !!a);
  for (const a of addresses) {
    const link = hostDirByAddress(host.pool.opts.stateDir, a);
    mkdirSync(dirname(link), { recursive: true });
    try {
      if (readlinkSync(link) === host.rootDir) continue;
      rmSync(link, { force: true });
    } catch {
      // no link yet
    }
    symlinkSync(host.rootDir, link);
  }
}

export function vmDefaults(): Rec {
  return {
    uuid: newUuid(),
    name_label: '',
    name_description: '',
    user_version: '1',
    is_a_template: false,
    is_a_snapshot: false,
    snapshot_of: NULL_REF,
    snapshot_time: new Date(0),
    is_control_domain: false,
    power_state: 'Halted',
    memory_static_max: String(256 * MiB),
    memory_dynamic_max: String(256 * MiB),
    memory_dynamic_min: String(256 * MiB),
    memory_static_min: String(256 * MiB),
    memory_target: String(256 * MiB),
    VCPUs_max: '1',
    VCPUs_at_startup: '1',
    VCPUs_params: {},
    actions_after_shutdown: 'destroy',
    actions_after_reboot: 'restart',
    actions_after_crash: 'restart',
    domid: '-1',
    resident_on: NULL_REF,
    affinity: NULL_REF,
    allowed_operations: [],
    current_operations: {},
    HVM_boot_policy: '',
    HVM_boot_params: {},
    PV_bootloader: '',
    PV_kernel: '',
    PV_ramdisk: '',
    PV_args: '',
    PV_bootloader_args: '',
    PV_legacy_args: '',
    platform: {},
    other_config: {},
    xenstore_data: {},
    blocked_operations: {},
    tags: [],
    ha_restart_priority: '',
    ha_always_run: false,
    recommendations: '',
  };
}
