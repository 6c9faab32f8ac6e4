// One simulated Xen host: its object database, the guests running on it (real memory), VDI
// contents (files: a local SR per host, a shared SR directory per pool), sessions, tasks and
// faults. The XML-RPC methods (api.ts), the data plane (receiver.ts, migration.ts) and the admin
// endpoint (admin.ts) all work through this class.
import { randomFillSync } from 'node:crypto';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, type Logger } from '../lib/logger';
import { XenApiError } from '../xenapi/errors';
import { DataConnection, Frame, Link, jsonFrame } from './data-plane';
import { Faults } from './faults';
import { GuestMemory } from './guest';
import { NULL_REF, macFor, newUuid, stableRef, stableUuid } from './ids';
import type { HostOptions, PeerHost } from './options';
import { Store, type ClassName, type Rec } from './store';

const MiB = 1024 * 1024;
/** Classes written to db.json: what a host's disk would remember across a crash. */
const PERSISTENT: ClassName[] = ['VM', 'VDI', 'VBD', 'VIF'];

export const refs = {
  host: (name: string) => stableRef(`host:${name}`),
  hostMetrics: (name: string) => stableRef(`host_metrics:${name}`),
  pif: (name: string) => stableRef(`pif:${name}`),
  pool: (pool: string) => stableRef(`pool:${pool}`),
  network: (pool: string) => stableRef(`network:${pool}`),
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

export class SimHost {
  readonly store = new Store();
  readonly guests = new Map<string, GuestMemory>();
  readonly sessions = new Set<string>();
  readonly faults = new Faults();
  readonly link: Link;
  readonly log: Logger;
  readonly hostRef: string;
  readonly poolRef: string;
  readonly networkRef: string;
  readonly localSrRef: string;
  readonly sharedSrRef: string;
  readonly poolMembers: PeerHost[];
  /** Task ref -> what task.cancel should do while the task is cancellable. */
  readonly cancelHandlers = new Map<string, () => void>();
  readonly incoming = new Map<string, Incoming>();
  /** VM uuid -> sha256 of its memory at the instant it resumed here after a migration. */
  readonly arrivals = new Map<string, string>();
  /** Migration task ref -> VM ref and whether storage moves (for TOO_MANY_STORAGE_MIGRATES). */
  readonly outgoing = new Map<string, { vmRef: string; storage: boolean }>();
  maxIterations: number;
  minDirtyPages: number;
  private nextDomid = 1;
  private saveScheduled = false;
  private reservedIncomingBytes = 0;

  constructor(readonly opts: HostOptions) {
    this.log = createLogger('simulator', { host: opts.name });
    this.link = new Link(opts.bandwidthMiBps * MiB);
    this.maxIterations = opts.maxIterations;
    this.minDirtyPages = opts.minDirtyPages;
    this.hostRef = refs.host(opts.name);
    this.poolRef = refs.pool(opts.pool);
    this.networkRef = refs.network(opts.pool);
    this.localSrRef = refs.localSr(opts.name);
    this.sharedSrRef = refs.sharedSr(opts.pool);
    const members = opts.hosts.filter((h) => h.pool === opts.pool);
    this.poolMembers = members.some((h) => h.name === opts.name)
      ? members
      : [{ name: opts.name, pool: opts.pool, xenapiUrl: `http://127.0.0.1:${opts.xenapiPort}/`, dataPort: opts.dataPort, memoryMiB: opts.memoryMiB }, ...members];
    mkdirSync(this.srDir(this.localSrRef), { recursive: true });
    mkdirSync(this.srDir(this.sharedSrRef), { recursive: true });
    this.removeOwnPartialFiles();
    this.bootstrap();
    this.load();
    this.store.onChange = (cls, ref, op) => this.changed(cls, ref, op);
  }

  get name(): string {
    return this.opts.name;
  }

  get masterName(): string {
    return (this.poolMembers[0] as PeerHost).name;
  }

  peer(hostRef: string): PeerHost | undefined {
    return this.poolMembers.find((h) => refs.host(h.name) === hostRef);
  }

  // ---- bootstrap: the pool, its hosts, network, PIFs, SRs, and this host's control domain ----

  private bootstrap(): void {
    const o = this.opts;
    const s = this.store;
    s.add('pool', {
      uuid: stableUuid(`pool:${o.pool}`),
      name_label: o.pool,
      name_description: '',
      master: refs.host(this.masterName),
      default_SR: this.sharedSrRef,
      other_config: {},
    }, this.poolRef);
    s.add('network', {
      uuid: stableUuid(`network:${o.pool}`),
      name_label: 'Pool-wide network associated with eth0',
      name_description: '',
      bridge: 'xenbr0',
      MTU: '1500',
      other_config: {},
    }, this.networkRef);
    for (const h of this.poolMembers) {
      const self = h.name === o.name;
      s.add('host', {
        uuid: stableUuid(`host:${h.name}`),
        name_label: h.name,
        name_description: self ? 'simulated Xen host' : 'simulated Xen host (pool member)',
        hostname: h.name,
        address: '127.0.0.1',
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
          hostname: h.name,
        },
        cpu_info: { cpu_count: '2', modelname: o.cpuModel, vendor: 'GenuineIntel' },
        memory_overhead: '0',
        metrics: refs.hostMetrics(h.name),
        allowed_operations: [],
        current_operations: {},
        other_config: { ferry_xenapi_url: h.xenapiUrl, ferry_data_port: String(h.dataPort) },
      }, refs.host(h.name));
      s.add('host_metrics', {
        uuid: stableUuid(`host_metrics:${h.name}`),
        memory_total: String(h.memoryMiB * MiB),
        memory_free: String(h.memoryMiB * MiB),
        live: true,
        last_updated: new Date(),
      }, refs.hostMetrics(h.name));
      s.add('PIF', {
        uuid: stableUuid(`pif:${h.name}`),
        device: 'eth0',
        network: this.networkRef,
        host: refs.host(h.name),
        MAC: macFor(stableUuid(`pif:${h.name}`)),
        MTU: '1500',
        IP: '127.0.0.1',
        IP_configuration_mode: 'Static',
        management: true,
        currently_attached: true,
        other_config: {},
      }, refs.pif(h.name));
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
    sr(this.localSrRef, stableUuid(`sr-local:${o.name}`), `Local storage on ${o.name}`, false);
    sr(this.sharedSrRef, stableUuid(`sr-shared:${o.pool}`), `Shared storage of ${o.pool}`, true);
    s.add('VM', {
      ...vmDefaults(),
      uuid: stableUuid(`dom0:${o.name}`),
      name_label: `Control domain on host: ${o.name}`,
      is_control_domain: true,
      power_state: 'Running',
      domid: '0',
      resident_on: this.hostRef,
      memory_static_max: '0',
      memory_dynamic_max: '0',
      memory_dynamic_min: '0',
      memory_static_min: '0',
      memory_target: '0',
    }, refs.dom0(o.name));
  }

  /** Half-received disks of migrations this host was receiving when it crashed. */
  private removeOwnPartialFiles(): void {
    for (const dir of [this.srDir(this.localSrRef), this.srDir(this.sharedSrRef)]) {
      for (const f of readdirSync(dir)) if (f.endsWith(`.${this.name}.partial`)) rmSync(join(dir, f), { force: true });
    }
  }

  /**
   * Keeps the host_metrics of the other pool members current (memory_free, live), as a pool master's
   * database would be: asks each peer over its data port every second. A frozen or dead peer is
   * reported live=false.
   */
  watchPeers(intervalMs = 1000): () => void {
    const peers = this.poolMembers.filter((p) => p.name !== this.name);
    const poll = async (peer: PeerHost) => {
      const metricsRef = refs.hostMetrics(peer.name);
      let patch: Rec = { live: false };
      try {
        const conn = await DataConnection.open('127.0.0.1', peer.dataPort, new Link(Infinity), () => undefined, 500);
        try {
          await conn.send(jsonFrame(Frame.STATUS, {}));
          const reply = await conn.reply(Math.max(200, intervalMs - 100));
          const status = JSON.parse(reply.payload.toString()) as { memoryFree: number };
          patch = { live: true, memory_free: String(status.memoryFree) };
        } finally {
          conn.close();
        }
      } catch {
        // unreachable or not answering: live=false
      }
      const current = this.store.raw('host_metrics', metricsRef);
      if (current.live !== patch.live || (patch.memory_free !== undefined && current.memory_free !== patch.memory_free)) {
        this.store.update('host_metrics', metricsRef, { ...patch, last_updated: new Date() });
      }
    };
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      Promise.all(peers.map(poll)).finally(() => {
        running = false;
      });
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  // ---- persistence: VMs, VDIs, VBDs, VIFs survive a crash; memory does not ----

  private get dbPath(): string {
    return join(this.opts.stateDir, this.opts.name, 'db.json');
  }

  private load(): void {
    if (!existsSync(this.dbPath)) return;
    const db = JSON.parse(readFileSync(this.dbPath, 'utf8')) as Record<string, [string, Rec][]>;
    for (const cls of PERSISTENT) {
      for (const [ref, rec] of db[cls] ?? []) {
        if (cls === 'VDI' && !existsSync(this.vdiPath(rec))) continue;
        if (cls === 'VM') {
          // As after a power loss: every VM that ran here is halted.
          Object.assign(rec, { power_state: 'Halted', domid: '-1', resident_on: NULL_REF, current_operations: {} });
        }
        this.store.add(cls, rec, ref);
      }
    }
    this.log.info({ vms: db.VM?.length ?? 0 }, 'state loaded; VMs that ran here are halted');
  }

  private changed(cls: ClassName, ref: string, op: string): void {
    if (cls === 'VM' && op === 'mod') this.refreshGuest(ref);
    if (PERSISTENT.includes(cls) && !this.saveScheduled) {
      this.saveScheduled = true;
      setImmediate(() => this.save());
    }
  }

  save(): void {
    this.saveScheduled = false;
    const db: Record<string, [string, Rec][]> = {};
    for (const cls of PERSISTENT) {
      db[cls] = [...this.store.table(cls).entries()].filter(([, r]) => !r.is_control_domain);
    }
    mkdirSync(join(this.opts.stateDir, this.opts.name), { recursive: true });
    writeFileSync(`${this.dbPath}.tmp`, JSON.stringify(db));
    renameSync(`${this.dbPath}.tmp`, this.dbPath);
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
    if (bytes > free) throw new XenApiError('HOST_NOT_ENOUGH_FREE_MEMORY', [String(bytes), String(free)]);
    this.reservedIncomingBytes += bytes;
  }

  releaseIncoming(bytes: number): void {
    this.reservedIncomingBytes -= bytes;
  }

  /** The record as the API shows it (host_metrics of this host are computed live). */
  view(cls: ClassName, ref: string): Rec {
    const rec = this.store.view(cls, ref);
    if (cls === 'host_metrics' && ref === refs.hostMetrics(this.name)) {
      rec.memory_free = String(this.memoryFree());
      rec.last_updated = new Date();
    }
    return rec;
  }

  // ---- storage ----

  srDir(srRef: string): string {
    return srRef === this.sharedSrRef
      ? join(this.opts.stateDir, `pool-${this.opts.pool}`, 'shared-sr')
      : join(this.opts.stateDir, this.opts.name, 'local-sr');
  }

  vdiPath(vdi: Rec): string {
    return join(this.srDir(String(vdi.SR)), `${String(vdi.uuid)}.img`);
  }

  createVdi(fields: Rec, fill: 'zero' | 'random' = 'zero'): string {
    const sr = String(fields.SR ?? NULL_REF);
    if (!this.store.has('SR', sr)) throw new XenApiError('HANDLE_INVALID', ['SR', sr]);
    const size = Number(fields.virtual_size ?? 0);
    if (!Number.isFinite(size) || size < 0) throw new XenApiError('INVALID_VALUE', ['virtual_size', String(fields.virtual_size)]);
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
    if (!keepFile) rmSync(this.vdiPath(rec), { force: true });
    this.store.remove('VDI', ref);
  }

  // ---- VM lifecycle ----

  vm(ref: string): Rec {
    return this.store.raw('VM', ref);
  }

  assertPowerState(ref: string, ...expected: string[]): void {
    const actual = String(this.vm(ref).power_state);
    if (!expected.includes(actual)) throw new XenApiError('VM_BAD_POWER_STATE', [ref, (expected[0] ?? '').toLowerCase(), actual.toLowerCase()]);
  }

  private guestSettings(rec: Rec): { dirtyRateMiBps: number; workingSetMiB?: number } {
    const oc = (rec.other_config ?? {}) as Record<string, string>;
    return { dirtyRateMiBps: Number(oc.sim_dirty_rate_mibps ?? 0), workingSetMiB: oc.sim_working_set_mib ? Number(oc.sim_working_set_mib) : undefined };
  }

  /** Fraction of its dirty rate a VM keeps under its vCPU cap (cap = % of one vCPU, 0 = none). */
  private capFactor(rec: Rec): number {
    const params = (rec.VCPUs_params ?? {}) as Record<string, string>;
    const cap = Number(params.cap ?? 0);
    const vcpus = Math.max(1, Number(rec.VCPUs_at_startup ?? 1));
    return cap > 0 ? Math.min(1, cap / (100 * vcpus)) : 1;
  }

  private refreshGuest(ref: string): void {
    const guest = this.guests.get(ref);
    const rec = this.store.table('VM').get(ref);
    if (!guest || !rec) return;
    guest.settings = this.guestSettings(rec);
    guest.capFactor = this.capFactor(rec);
  }

  startVm(ref: string, paused: boolean, memory?: Buffer): void {
    const rec = this.vm(ref);
    if (rec.is_a_template || rec.is_control_domain) throw new XenApiError('VM_IS_TEMPLATE', [ref]);
    this.assertPowerState(ref, 'Halted');
    const need = Number(rec.memory_static_max);
    const free = this.memoryFree();
    if (need > free) throw new XenApiError('HOST_NOT_ENOUGH_FREE_MEMORY', [String(need), String(free)]);
    this.attachGuest(ref, new GuestMemory(need, this.guestSettings(rec), memory), paused);
  }

  /** Makes a VM resident here with the given memory (VM.start, or the end of an incoming migration). */
  attachGuest(ref: string, guest: GuestMemory, paused: boolean): void {
    this.guests.set(ref, guest);
    this.store.update('VM', ref, {
      power_state: paused ? 'Paused' : 'Running',
      domid: String(this.nextDomid++),
      resident_on: this.hostRef,
    });
    this.refreshGuest(ref);
    if (!paused) guest.start();
  }

  pauseVm(ref: string): void {
    this.assertPowerState(ref, 'Running');
    this.guests.get(ref)?.stop();
    this.store.update('VM', ref, { power_state: 'Paused' });
  }

  unpauseVm(ref: string): void {
    this.assertPowerState(ref, 'Paused');
    this.guests.get(ref)?.start();
    this.store.update('VM', ref, { power_state: 'Running' });
  }

  /** Shutdown and destroy wait for a migration to end, as in xapi; pause and unpause do not. */
  assertNotMigrating(ref: string): void {
    for (const [task, o] of this.outgoing) {
      if (o.vmRef === ref) throw new XenApiError('OTHER_OPERATION_IN_PROGRESS', ['VM', ref, task]);
    }
  }

  haltVm(ref: string): void {
    this.assertNotMigrating(ref);
    this.assertPowerState(ref, 'Running', 'Paused');
    this.dropGuest(ref);
    this.store.update('VM', ref, { power_state: 'Halted', domid: '-1', resident_on: NULL_REF });
  }

  dropGuest(ref: string): void {
    this.guests.get(ref)?.stop();
    this.guests.delete(ref);
  }

  destroyVm(ref: string): void {
    const rec = this.vm(ref);
    if (rec.is_control_domain) throw new XenApiError('OPERATION_NOT_ALLOWED', ['cannot destroy the control domain']);
    this.assertNotMigrating(ref);
    this.assertPowerState(ref, 'Halted');
    this.removeVm(ref);
  }

  /** Forgets a VM and its VBDs and VIFs (its VDIs stay, as in xapi). */
  removeVm(ref: string): void {
    this.dropGuest(ref);
    for (const vbd of this.store.find('VBD', (r) => r.VM === ref)) this.store.remove('VBD', vbd);
    for (const vif of this.store.find('VIF', (r) => r.VM === ref)) this.store.remove('VIF', vif);
    this.store.remove('VM', ref);
  }

  // ---- tasks ----

  createTask(name: string, otherConfig: Record<string, string> = {}, cancellable = false): string {
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
      resident_on: this.hostRef,
      subtask_of: NULL_REF,
      subtasks: [],
      backtrace: '()',
      other_config: otherConfig,
    });
  }

  finishTask(ref: string, status: 'success' | 'failure' | 'cancelled', result: string, errorInfo: string[] = []): void {
    this.cancelHandlers.delete(ref);
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
      throw new XenApiError('OPERATION_NOT_ALLOWED', [`task ${ref} cannot be cancelled now (status ${String(rec.status)})`]);
    }
    this.store.update('task', ref, { status: 'cancelling' });
    handler();
  }

  /** Crash: as on real hardware, the guests die with the host. */
  haltAllForCrash(): void {
    for (const ref of [...this.guests.keys()]) this.dropGuest(ref);
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
