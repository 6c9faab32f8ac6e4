// One simulated pool: the database its master holds (one Store for pool, hosts, host_metrics,
// network, PIFs, SRs, VMs including each member's control domain, VDIs, VBDs, VIFs, tasks and
// sessions) and its member hosts. Every member's XenAPI endpoint works on this one database, so
// refs are pool-wide, as in xapi where slaves forward every call to the master.
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger, type Logger } from '../lib/logger';
import { XenApiCode, XenApiError } from '../xenapi/errors';
import { SimHost, refs, vmDefaults } from './host';
import { NULL_REF, macFor, newUuid, stableRef, stableUuid } from './ids';
import { migrationAddress, type PoolOptions } from './options';

/** The name_label of each pool's second network (storage/migration traffic). */
export const MIGRATION_NETWORK_LABEL = 'Storage and migration network';
import { Store, type ClassName, type Rec } from './store';
import { DiskChain, diskPath } from './vdi-chain';

const MiB = 1024 * 1024;
/** Classes written to db.json: what the master's disk remembers across a restart of the pool. */
const PERSISTENT: ClassName[] = ['VM', 'VDI', 'VBD', 'VIF'];

/** xapi_vm_lifecycle.ml is_allowed_concurrently: may `op` start while `current` operations run? */
export function isAllowedConcurrently(op: string, current: string[]): boolean {
  if (op === 'hard_shutdown') return !current.includes('hard_shutdown');
  if (op === 'hard_reboot') return !current.some((o) => o === 'hard_shutdown' || o === 'hard_reboot');
  const aux = (set: string[]) => set.includes(op) && current.every((o) => set.includes(o));
  if (aux(['clone', 'copy', 'export']) || aux(['snapshot', 'checkpoint']) || aux(['get_boot_record'])) return true;
  const allowed: [string[], string][] = [
    [['snapshot_with_quiesce'], 'snapshot'],
    [['migrate_send'], 'metadata_export'],
    [['migrate_send'], 'clean_shutdown'],
    [['migrate_send'], 'clean_reboot'],
  ];
  return allowed.some(([state, o]) => o === op && state.length === current.length && state.every((s, i) => s === current[i]));
}

/** What a VM's allowed_operations list before concurrency is applied (by power state). */
const BY_POWER_STATE: Record<string, string[]> = {
  Halted: ['start', 'start_on', 'destroy', 'clone', 'copy', 'export', 'snapshot', 'metadata_export'],
  Running: ['pause', 'clean_shutdown', 'hard_shutdown', 'clean_reboot', 'hard_reboot', 'pool_migrate', 'migrate_send', 'snapshot', 'checkpoint', 'suspend', 'metadata_export'],
  Paused: ['unpause', 'hard_shutdown', 'hard_reboot', 'pool_migrate', 'migrate_send', 'metadata_export'],
};

export class SimPool {
  readonly store = new Store();
  readonly sessions = new Set<string>();
  /**
   * The sessions host.migrate_receive created, newest last (the last 200), logged out or not: xapi
   * logs each session it creates (xensource.log), and the admin endpoint shows these
   * (GET /sessions), so a test can look for them where they must not be, and try them.
   */
  readonly migrateReceiveSessions: string[] = [];
  /** Task ref -> what task.cancel should do while the task is cancellable. */
  readonly cancelHandlers = new Map<string, () => void>();
  readonly members: SimHost[];
  readonly poolRef: string;
  readonly networkRef: string;
  readonly sharedSrRef: string;
  readonly log: Logger;
  private saveScheduled = false;
  /** The write of db.json in progress, if any. */
  private saving: Promise<void> | undefined;

  constructor(readonly opts: PoolOptions) {
    this.log = createLogger('simulator', { pool: opts.pool });
    this.poolRef = refs.pool(opts.pool);
    this.networkRef = refs.network(opts.pool);
    this.sharedSrRef = refs.sharedSr(opts.pool);
    mkdirSync(this.sharedSrDir, { recursive: true });
    this.members = opts.members.map((m) => new SimHost(this, m));
    this.bootstrap();
    this.load();
    this.store.onChange = (cls, ref, op) => this.changed(cls, ref, op);
  }

  get name(): string {
    return this.opts.pool;
  }

  /** The first host of the pool in the configuration (pool.master). */
  get master(): SimHost {
    return this.members[0] as SimHost;
  }

  member(hostRef: string): SimHost | undefined {
    return this.members.find((h) => h.hostRef === hostRef);
  }

  memberByName(name: string): SimHost | undefined {
    return this.members.find((h) => h.name === name);
  }

  /** The member a VM is resident on (from the database), if any. */
  hostOf(vmRef: string): SimHost | undefined {
    const rec = this.store.table('VM').get(vmRef);
    return rec ? this.member(String(rec.resident_on)) : undefined;
  }

  /** The pool's API answers while its master is up (slaves forward to it). */
  get apiUp(): boolean {
    return !this.master.crashed;
  }

  // ---- bootstrap: the pool, its hosts, network, PIFs, SRs, and each member's control domain ----

  private bootstrap(): void {
    const s = this.store;
    s.add('pool', {
      uuid: stableUuid(`pool:${this.name}`),
      name_label: this.name,
      name_description: '',
      master: this.master.hostRef,
      default_SR: this.sharedSrRef,
      other_config: {},
    }, this.poolRef);
    s.add('network', {
      uuid: stableUuid(`network:${this.name}`),
      name_label: 'Pool-wide network associated with eth0',
      name_description: '',
      bridge: 'xenbr0',
      MTU: '1500',
      other_config: {},
    }, this.networkRef);
    // A second network, as a pool with a dedicated storage/migration NIC has: each member's eth1 on
    // its own address (host.migrate_receive and VM.pool_migrate's `network` option pick the PIF's IP).
    const secondPifs = this.members.filter((h) => migrationAddress(h.opts) !== null);
    if (secondPifs.length > 0) {
      s.add('network', {
        uuid: stableUuid(`network-migration:${this.name}`),
        name_label: MIGRATION_NETWORK_LABEL,
        name_description: 'Pool-wide network associated with eth1',
        bridge: 'xenbr1',
        MTU: '1500',
        other_config: {},
      }, refs.migrationNetwork(this.name));
    }
    const sr = (ref: string, uuid: string, label: string, shared: boolean) =>
      s.add('SR', {
        uuid,
        name_label: label,
        name_description: '',
        type: shared ? 'nfs' : 'ext',
        content_type: 'user',
        shared,
        physical_size: String(1024 * 1024 * MiB),
        physical_utilisation: '0',
        virtual_allocation: '0',
        other_config: {},
      }, ref);
    sr(this.sharedSrRef, stableUuid(`sr-shared:${this.name}`), `Shared storage of ${this.name}`, true);
    for (const h of this.members) {
      const o = h.opts;
      s.add('host', {
        uuid: stableUuid(`host:${o.name}`),
        name_label: o.name,
        name_description: 'simulated Xen host',
        hostname: o.name,
        address: o.ip,
        enabled: true,
        API_version_major: '2',
        API_version_minor: '21',
        API_version_vendor: 'XenSource',
        software_version: {
          product_version: o.productVersion,
          platform_version: o.platformVersion,
          // Nova's XenAPI driver reads these to skip VDI_NOT_IN_MAP on XCP >= 2.1 (DESIGN section 3).
          platform_name: 'XCP',
          product_brand: 'XCP-ng',
          xapi: '1.20',
          xen: '4.17.0',
          hostname: o.name,
        },
        cpu_info: { cpu_count: '2', modelname: o.cpuModel, vendor: 'GenuineIntel' },
        memory_overhead: '0',
        metrics: refs.hostMetrics(o.name),
        allowed_operations: [],
        current_operations: {},
        other_config: {},
      }, h.hostRef);
      s.add('host_metrics', {
        uuid: stableUuid(`host_metrics:${o.name}`),
        memory_total: String(o.memoryMiB * MiB),
        memory_free: String(o.memoryMiB * MiB),
        live: true,
        last_updated: new Date(),
      }, refs.hostMetrics(o.name));
      s.add('PIF', {
        uuid: stableUuid(`pif:${o.name}`),
        device: 'eth0',
        network: this.networkRef,
        host: h.hostRef,
        MAC: macFor(stableUuid(`pif:${o.name}`)),
        MTU: '1500',
        IP: o.ip,
        IP_configuration_mode: 'Static',
        management: true,
        currently_attached: true,
        other_config: {},
      }, refs.pif(o.name));
      const second = migrationAddress(o);
      if (second) {
        s.add('PIF', {
          uuid: stableUuid(`pif-migration:${o.name}`),
          device: 'eth1',
          network: refs.migrationNetwork(this.name),
          host: h.hostRef,
          MAC: macFor(stableUuid(`pif-migration:${o.name}`)),
          MTU: '1500',
          IP: second,
          IP_configuration_mode: 'Static',
          management: false,
          currently_attached: true,
          other_config: {},
        }, refs.migrationPif(o.name));
      }
      sr(h.localSrRef, stableUuid(`sr-local:${o.name}`), `Local storage on ${o.name}`, false);
      // Each host plugs its local SR and the pool's shared SR (xapi's PBD; SM mounts an ext or nfs
      // SR at /var/run/sr-mount/<SR uuid>, which the migration plugin maps to the SR's directory).
      const pbd = (srRef: string, deviceConfig: Record<string, string>) =>
        s.add('PBD', { uuid: stableUuid(`pbd:${o.name}:${srRef}`), host: h.hostRef, SR: srRef, device_config: deviceConfig, currently_attached: true, other_config: {} }, stableRef(`pbd:${o.name}:${srRef}`));
      pbd(h.localSrRef, { device: `/dev/disk/by-id/simulated-${o.name}` });
      pbd(this.sharedSrRef, { server: this.master.opts.ip, serverpath: `/srv/ferry/${this.name}` });
      s.add('VM', {
        ...vmDefaults(),
        uuid: stableUuid(`dom0:${o.name}`),
        name_label: `Control domain on host: ${o.name}`,
        is_control_domain: true,
        power_state: 'Running',
        domid: '0',
        resident_on: h.hostRef,
        affinity: h.hostRef,
        memory_static_max: '0',
        memory_dynamic_max: '0',
        memory_dynamic_min: '0',
        memory_static_min: '0',
        memory_target: '0',
      }, refs.dom0(o.name));
    }
  }

  // ---- persistence: VMs, VDIs, VBDs, VIFs survive; memory, sessions and tasks do not ----

  private get dbDir(): string {
    return join(this.opts.stateDir, `pool-${this.name}`);
  }

  private get dbPath(): string {
    return join(this.dbDir, 'db.json');
  }

  private load(): void {
    if (!existsSync(this.dbPath)) return;
    const db = JSON.parse(readFileSync(this.dbPath, 'utf8')) as Record<string, [string, Rec][]>;
    for (const cls of PERSISTENT) {
      for (const [ref, rec] of db[cls] ?? []) {
        if (cls === 'VDI' && (!this.store.has('SR', String(rec.SR)) || !existsSync(this.vdiPath(rec)))) continue;
        // JSON kept the dateTime fields as strings: XML-RPC must send them as dateTime again.
        if (typeof rec.snapshot_time === 'string') rec.snapshot_time = new Date(rec.snapshot_time);
        if (cls === 'VM') {
          // As after a power loss of the whole pool: every VM is halted.
          Object.assign(rec, { power_state: 'Halted', domid: '-1', resident_on: NULL_REF, current_operations: {} });
        }
        this.store.add(cls, rec, ref);
      }
    }
    this.log.info({ vms: db.VM?.length ?? 0 }, 'pool database loaded; every VM is halted');
  }

  private changed(cls: ClassName, ref: string, op: string): void {
    if (cls === 'VM' && op === 'mod') for (const h of this.members) h.refreshGuest(ref);
    if (PERSISTENT.includes(cls) && !this.saveScheduled) {
      this.saveScheduled = true;
      setImmediate(() => {
        this.saving ??= this.saveSoon().finally(() => {
          this.saving = undefined;
        });
      });
    }
  }

  private snapshotDb(): string {
    const db: Record<string, [string, Rec][]> = {};
    for (const cls of PERSISTENT) {
      db[cls] = [...this.store.table(cls).entries()].filter(([, r]) => !r.is_control_domain);
    }
    return JSON.stringify(db);
  }

  /**
   * Writes db.json after a change, off the event loop (a new file renamed over the old one, so a
   * kill -9 leaves one or the other whole); changes made meanwhile are written next, one write at a
   * time. xapi flushes its database every 2 s (db_backend.ml db_FLUSH_TIMER); the simulator writes
   * within milliseconds, so that a killed pool process forgets (almost) nothing.
   */
  private async saveSoon(): Promise<void> {
    try {
      while (this.saveScheduled) {
        this.saveScheduled = false;
        const json = this.snapshotDb();
        await mkdir(this.dbDir, { recursive: true });
        await writeFile(`${this.dbPath}.tmp`, json);
        await rename(`${this.dbPath}.tmp`, this.dbPath);
      }
    } catch (err) {
      this.log.error({ err }, 'could not write the pool database');
    }
  }

  /** Writes db.json now, after any write in progress (at shutdown). */
  async flush(): Promise<void> {
    await this.saving;
    this.saveSync();
  }

  private saveSync(): void {
    this.saveScheduled = false;
    mkdirSync(this.dbDir, { recursive: true });
    writeFileSync(`${this.dbPath}.sync.tmp`, this.snapshotDb());
    renameSync(`${this.dbPath}.sync.tmp`, this.dbPath);
  }

  // ---- the view of records (computed fields) ----

  view(cls: ClassName, ref: string): Rec {
    const rec = this.store.view(cls, ref);
    if (cls === 'host_metrics') {
      const h = this.members.find((m) => refs.hostMetrics(m.name) === ref);
      if (h) {
        rec.memory_free = String(h.memoryFree());
        rec.live = !h.crashed;
        rec.last_updated = new Date();
      }
    }
    if (cls === 'VM') rec.allowed_operations = this.allowedOperations(rec);
    return rec;
  }

  /** VM.allowed_operations: by power state, less what the current operations exclude (xapi_vm_lifecycle.ml). */
  private allowedOperations(rec: Rec): string[] {
    if (rec.is_control_domain) return [];
    const current = Object.values((rec.current_operations ?? {}) as Record<string, string>);
    const ops = BY_POWER_STATE[String(rec.power_state)] ?? [];
    return current.length ? ops.filter((o) => isAllowedConcurrently(o, current)) : ops;
  }

  /** OTHER_OPERATION_IN_PROGRESS as report_concurrent_operations_error builds it, when `op` may not start now. */
  assertOperationAllowed(vmRef: string, op: string): void {
    const current = Object.entries((this.store.raw('VM', vmRef).current_operations ?? {}) as Record<string, string>);
    if (!current.length || isAllowedConcurrently(op, current.map(([, o]) => o))) return;
    const [taskRefs, opNames] =
      current.length === 1
        ? [current[0]?.[0] as string, current[0]?.[1] as string]
        : [`{${current.map(([t]) => t).join(',')}}`, `{${current.map(([, o]) => o).join(',')}}`];
    throw new XenApiError(XenApiCode.OTHER_OPERATION_IN_PROGRESS, ['VM', vmRef, opNames, taskRefs]);
  }

  // ---- storage ----

  get sharedSrDir(): string {
    return join(this.opts.stateDir, `pool-${this.name}`, 'shared-sr');
  }

  /** The SR's directory from its uuid (what /var/run/sr-mount/<uuid> is on a real host), or undefined. */
  srDirByUuid(uuid: string): string | undefined {
    const ref = this.store.find('SR', (r) => r.uuid === uuid)[0];
    return ref ? this.srDir(ref) : undefined;
  }

  srDir(srRef: string): string {
    if (srRef === this.sharedSrRef) return this.sharedSrDir;
    const h = this.members.find((m) => m.localSrRef === srRef);
    if (!h) throw new XenApiError(XenApiCode.HANDLE_INVALID, ['SR', srRef]);
    return h.localSrDir;
  }

  /** The VDI's file: <uuid>.cow when it is a copy-on-write delta, else the raw <uuid>.img (vdi-chain.ts). */
  vdiPath(vdi: Rec): string {
    return diskPath(this.srDir(String(vdi.SR)), String(vdi.uuid));
  }

  /** Opens the VDI's chain (leaf first) for reading, or for writing into its leaf. */
  openChain(vdi: Rec, writable = false): DiskChain {
    return DiskChain.open(this.srDir(String(vdi.SR)), String(vdi.uuid), writable);
  }

  /** The VDIs of the same SR whose files name this one as their parent (sm_config vhd-parent). */
  childrenOf(vdiRef: string): string[] {
    const rec = this.store.raw('VDI', vdiRef);
    return this.store.find('VDI', (r) => r.SR === rec.SR && (r.sm_config as Record<string, string> | undefined)?.['vhd-parent'] === rec.uuid);
  }

  createVdi(fields: Rec, fill: 'zero' | 'random' = 'zero'): string {
    const sr = String(fields.SR ?? NULL_REF);
    if (!this.store.has('SR', sr)) throw new XenApiError(XenApiCode.HANDLE_INVALID, ['SR', sr]);
    const size = Number(fields.virtual_size ?? 0);
    if (!Number.isFinite(size) || size < 0) throw new XenApiError(XenApiCode.INVALID_VALUE, ['virtual_size', String(fields.virtual_size)]);
    const rec: Rec = {
      uuid: newUuid(),
      name_label: '',
      name_description: '',
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
      sm_config: {},
      managed: true,
      missing: false,
      is_a_snapshot: false,
      snapshot_of: NULL_REF,
      snapshot_time: new Date(0),
      ...fields,
      SR: sr,
      virtual_size: String(size),
      physical_utilisation: String(size),
    };
    const fd = openSync(this.vdiPath(rec), 'w');
    try {
      ftruncateSync(fd, size);
      if (fill === 'random') {
        const chunk = Buffer.allocUnsafe(Math.min(size, MiB));
        for (let off = 0; off < size; off += chunk.length) {
          randomFillSync(chunk);
          writeSync(fd, chunk, 0, Math.min(chunk.length, size - off), off);
        }
      }
    } finally {
      closeSync(fd);
    }
    return this.store.add('VDI', rec);
  }

  destroyVdi(ref: string, keepFile = false): void {
    const rec = this.store.raw('VDI', ref);
    for (const vbd of this.store.find('VBD', (r) => r.VDI === ref)) this.store.remove('VBD', vbd);
    const parentUuid = (rec.sm_config as Record<string, string> | undefined)?.['vhd-parent'];
    if (!keepFile && this.childrenOf(ref).length > 0) {
      // SM hides a VHD that still has children instead of deleting it; its garbage collector
      // removes it once the last child is gone (below).
      this.store.update('VDI', ref, { managed: false, read_only: true, name_label: 'base copy' });
      return;
    }
    if (!keepFile) rmSync(this.vdiPath(rec), { force: true });
    this.store.remove('VDI', ref);
    if (!keepFile && parentUuid) this.collectGarbage(String(rec.SR), parentUuid);
  }

  /**
   * SM's garbage collector (cleanup.py), at once: a hidden parent (managed false) that no VDI
   * uses any more is deleted, and so on up the chain. (SM also coalesces a parent with a single
   * child into it; the simulator leaves such chains as they are.)
   */
  private collectGarbage(sr: string, uuid: string): void {
    const ref = this.store.find('VDI', (r) => r.SR === sr && r.uuid === uuid)[0];
    if (!ref || this.store.raw('VDI', ref).managed !== false || this.childrenOf(ref).length > 0) return;
    this.destroyVdi(ref);
  }

  /** Forgets a VM and its VBDs and VIFs (its VDIs stay, as in xapi); its domain, if any, is destroyed. */
  removeVm(ref: string): void {
    for (const h of this.members) h.dropGuest(ref);
    for (const vbd of this.store.find('VBD', (r) => r.VM === ref)) this.store.remove('VBD', vbd);
    for (const vif of this.store.find('VIF', (r) => r.VM === ref)) this.store.remove('VIF', vif);
    this.store.remove('VM', ref);
  }

  // ---- tasks ----

  createTask(name: string, residentOn: string, cancellable = false): string {
    return this.store.add('task', {
      uuid: newUuid(),
      name_label: name,
      name_description: '',
      status: 'pending',
      progress: 0,
      result: '',
      error_info: [],
      type: '<none/>',
      created: new Date(),
      finished: new Date(0),
      allowed_operations: cancellable ? ['cancel'] : [],
      current_operations: {},
      resident_on: residentOn,
      subtask_of: NULL_REF,
      subtasks: [],
      backtrace: '()',
      other_config: {},
    });
  }

  finishTask(ref: string, status: 'success' | 'failure' | 'cancelled', result: string, errorInfo: string[] = []): void {
    this.cancelHandlers.delete(ref);
    if (!this.store.has('task', ref)) return; // forgotten by a master restart
    // A task ends once (a migration finishes its own task, then the Async wrapper would again).
    if (!['pending', 'cancelling'].includes(String(this.store.raw('task', ref).status))) return;
    this.store.update('task', ref, {
      status,
      progress: 1,
      result,
      error_info: errorInfo,
      finished: new Date(),
      allowed_operations: [],
    });
  }

  cancelTask(ref: string): void {
    const rec = this.store.raw('task', ref);
    const allowed = (rec.allowed_operations ?? []) as string[];
    const handler = this.cancelHandlers.get(ref);
    if (!allowed.includes('cancel') || !handler) {
      throw new XenApiError(XenApiCode.OPERATION_NOT_ALLOWED, [`task ${ref} cannot be cancelled now (status ${String(rec.status)})`]);
    }
    this.store.update('task', ref, { status: 'cancelling' });
    handler();
  }

  /** The master came back: sessions and tasks lived in its memory and are gone. */
  forgetSessionsAndTasks(): void {
    this.sessions.clear();
    this.store.wakeAll(); // event.from calls of those sessions fail
    this.cancelHandlers.clear();
    for (const t of this.store.refs('task')) this.store.remove('task', t);
  }

  /** xapi's resync when a host comes back: every VM the database has resident on it is halted. */
  /**
   * The master writes a member's liveness into its host_metrics record when its heartbeats stop or
   * come back (db_gc.ml, Db.Host_metrics.set_live): a change that event.from reports.
   */
  setLive(host: SimHost, live: boolean): void {
    const ref = refs.hostMetrics(host.name);
    if (this.store.has('host_metrics', ref)) this.store.update('host_metrics', ref, { live });
  }

  resyncHost(host: SimHost): void {
    for (const ref of this.store.find('VM', (r) => r.resident_on === host.hostRef && !r.is_control_domain)) {
      this.store.update('VM', ref, { power_state: 'Halted', domid: '-1', resident_on: NULL_REF, current_operations: {} });
    }
  }
}
