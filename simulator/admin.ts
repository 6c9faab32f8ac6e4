// The admin HTTP endpoint of one host (JSON, separate from XML-RPC, and not affected by freeze):
// one-call VM setup, checksums, guest and link settings, migration figures, fault injection, crash
// and restart, and a full state dump for consistency checks. While the host is crashed only
// /health and POST /restart answer (503 otherwise). Routes are listed in simulator/README.md.
import { readdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { XenApiError } from '../xenapi/errors';
import { type HandoffAction, type HandoffPoint, type SimHost, vmDefaults } from './host';
import { NULL_REF, macFor, newUuid } from './ids';
import { killTransfers, runningTransfers, stagedFiles } from './migration-plugin';
import type { Rec } from './store';

const MiB = 1024 * 1024;

export interface CreateVmRequest {
  nameLabel: string;
  memoryMiB: number;
  vcpus?: number;
  diskMiB?: number[];
  dirtyRateMiBps?: number;
  /** MiB/s the guest writes to its disks while it runs (other_config sim_disk_write_mibps). */
  diskWriteMiBps?: number;
  /** The first MiB of each disk the guest writes to (default: all of it). */
  diskWorkingSetMiB?: number;
  workingSetMiB?: number;
  sr?: 'local' | 'shared';
  /** xapi VM.tags (a set of strings). */
  tags?: string[];
  /** Entries added to VM.other_config (beside the simulator's own sim_* keys). */
  otherConfig?: Record<string, string>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function findVm(host: SimHost, uuid: string): string | undefined {
  return host.store.find('VM', (r) => r.uuid === uuid)[0];
}

/** A VM is "here" when it is resident on this host, or halted with this host as its affinity. */
function isHere(host: SimHost, rec: Record<string, unknown>): boolean {
  return rec.resident_on === host.hostRef || (rec.resident_on === NULL_REF && rec.affinity === host.hostRef);
}

export function createVm(host: SimHost, req: CreateVmRequest): { uuid: string; ref: string } {
  const s = host.store;
  const mem = String(Math.round(req.memoryMiB * MiB));
  const other: Record<string, string> = { ...(req.otherConfig ?? {}), sim_dirty_rate_mibps: String(req.dirtyRateMiBps ?? 0) };
  if (req.workingSetMiB) other.sim_working_set_mib = String(req.workingSetMiB);
  if (req.diskWriteMiBps) other.sim_disk_write_mibps = String(req.diskWriteMiBps);
  if (req.diskWorkingSetMiB) other.sim_disk_working_set_mib = String(req.diskWorkingSetMiB);
  const uuid = newUuid();
  const vcpus = String(req.vcpus ?? 1);
  const ref = s.add('VM', {
    ...vmDefaults(),
    uuid,
    name_label: req.nameLabel,
    memory_static_max: mem,
    memory_dynamic_max: mem,
    memory_dynamic_min: mem,
    memory_static_min: mem,
    memory_target: mem,
    VCPUs_max: vcpus,
    VCPUs_at_startup: vcpus,
    affinity: host.hostRef,
    other_config: other,
    tags: [...new Set(req.tags ?? [])],
  });
  const sr = req.sr === 'shared' ? host.pool.sharedSrRef : host.localSrRef;
  (req.diskMiB ?? []).forEach((size, i) => {
    const vdi = host.pool.createVdi({ SR: sr, virtual_size: String(Math.round(size * MiB)), name_label: `${req.nameLabel} disk ${i}` }, 'random');
    s.add('VBD', {
      uuid: newUuid(), VM: ref, VDI: vdi, userdevice: String(i), device: `xvd${String.fromCharCode(97 + i)}`, bootable: i === 0,
      mode: 'RW', type: 'Disk', empty: false, currently_attached: true, unpluggable: true, other_config: {},
    });
  });
  const vifUuid = newUuid();
  s.add('VIF', { uuid: vifUuid, device: '0', VM: ref, network: host.pool.networkRef, MAC: macFor(vifUuid), MTU: '1500', currently_attached: true, other_config: {} });
  try {
    host.startVm(ref, false);
  } catch (err) {
    host.pool.removeVm(ref);
    throw err;
  }
  return { uuid, ref };
}

/** sha256 of a VDI's content as its VM sees it (through its chain), up to `upTo` bytes. */
function sha256Vdi(host: SimHost, vdi: Rec, upTo?: number): string {
  const chain = host.pool.openChain(vdi);
  try {
    return chain.sha256(upTo === undefined ? undefined : Math.min(upTo, chain.virtualSize));
  } finally {
    chain.close();
  }
}

/** A VDI's checksum (admin GET /vdis/<uuid>/checksum[?bytes=N]) with its chain as sm_config shows it. */
export function vdiChecksum(host: SimHost, uuid: string, upTo?: number): { uuid: string; virtualSize: number; bytes: number; sha256: string; chain: string[] } | null {
  const s = host.store;
  const ref = s.find('VDI', (r) => r.uuid === uuid)[0];
  if (!ref) return null;
  const rec = s.raw('VDI', ref);
  const virtualSize = Number(rec.virtual_size);
  const chain: string[] = [uuid];
  for (let p = (rec.sm_config as Record<string, string>)['vhd-parent']; p && chain.length < 64; ) {
    chain.push(p);
    const parent = s.find('VDI', (r) => r.uuid === p && r.SR === rec.SR)[0];
    p = parent ? (s.raw('VDI', parent).sm_config as Record<string, string>)['vhd-parent'] : undefined;
  }
  const bytes = upTo === undefined ? virtualSize : Math.min(upTo, virtualSize);
  return { uuid, virtualSize, bytes, sha256: sha256Vdi(host, rec, bytes), chain };
}

export async function checksums(
  host: SimHost,
  uuid: string,
): Promise<{ memory: string | null; memoryAtArrival: string | null; disks: Record<string, string> } | null> {
  const ref = findVm(host, uuid);
  if (!ref) return null;
  const rec = host.store.raw('VM', ref);
  if (rec.resident_on !== host.hostRef && rec.resident_on !== NULL_REF) return null;
  const guest = host.guests.get(ref);
  const disks: Record<string, string> = {};
  for (const vbd of host.store.find('VBD', (r) => r.VM === ref && r.VDI !== NULL_REF)) {
    const rec = host.store.raw('VBD', vbd);
    disks[String(rec.userdevice)] = sha256Vdi(host, host.store.raw('VDI', String(rec.VDI)));
  }
  const memory = guest ? guest.checksum() : null;
  return { memory, memoryAtArrival: (await host.arrivals.get(uuid)?.()) ?? null, disks };
}

export function listVms(host: SimHost): { uuid: string; ref: string; nameLabel: string; powerState: string; residentOn: string }[] {
  return host.store
    .find('VM', (r) => !r.is_control_domain && isHere(host, r))
    .map((ref) => {
      const r = host.store.raw('VM', ref);
      return { uuid: String(r.uuid), ref, nameLabel: String(r.name_label), powerState: String(r.power_state), residentOn: String(r.resident_on) };
    });
}

export function hostState(host: SimHost): Rec {
  const s = host.store;
  const dump = (cls: 'VM' | 'VDI' | 'VBD' | 'VIF' | 'task') => Object.fromEntries(s.refs(cls).map((r) => [r, host.pool.view(cls, r)]));
  const files = (dir: string) => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  return {
    name: host.name,
    pool: host.pool.name,
    hostRef: host.hostRef,
    crashed: host.crashed,
    memoryTotal: host.memoryTotal(),
    memoryFree: host.memoryFree(),
    // Bytes this host's data servers received, per local address: which PIF (network) the migrations came in on.
    receivedBytesByAddress: Object.fromEntries(host.receivedByAddress),
    bandwidthMiBps: host.link.bandwidthBytesPerS / MiB,
    maxIterations: host.maxIterations,
    faults: host.faults.describe(),
    vms: listVms(host),
    domains: [...host.guests.entries()].map(([vmRef, g]) => {
      const rec = s.table('VM').get(vmRef);
      return { vmRef, vmUuid: String(rec?.uuid ?? ''), domid: String(rec?.domid ?? ''), running: g.running, cap: g.cap };
    }),
    records: { VM: dump('VM'), VDI: dump('VDI'), VBD: dump('VBD'), VIF: dump('VIF'), task: dump('task') },
    incoming: [...host.incoming.values()],
    outgoing: [...host.outgoing.entries()].map(([taskRef, o]) => ({ taskRef, vmRef: o.vmRef, storage: o.storage })),
    handoffFault: host.handoffFault ?? null,
    srFiles: { local: files(host.localSrDir), shared: files(host.pool.sharedSrDir) },
    staged: stagedFiles(host),
  };
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString();
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

const HANDOFF_POINTS: HandoffPoint[] = ['after-handoff', 'after-ready', 'after-resume'];
const HANDOFF_ACTIONS: HandoffAction[] = ['crash-source', 'crash-destination', 'drop-connection'];

export function createAdminServer(host: SimHost): Server {
  const route = async (req: IncomingMessage): Promise<unknown> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const b = method === 'POST' ? await body(req) : {};
    const vmMatch = /^\/vms\/([^/]+)\/(checksums|guest)$/.exec(path);
    if (method === 'GET' && (path === '/' || path === '/health')) {
      return { name: host.name, pool: host.pool.name, hostRef: host.hostRef, address: host.opts.ip, master: host.isMaster, crashed: host.crashed, pid: process.pid };
    }
    if (method === 'POST' && path === '/restart') {
      await host.restart();
      return { ok: true };
    }
    if (host.crashed) throw new HttpError(503, `${host.name} is crashed: only GET /health and POST /restart answer`);
    if (method === 'GET' && path === '/state') return hostState(host);
    if (method === 'GET' && path === '/vms') return listVms(host);
    if (method === 'GET' && path === '/sessions') {
      return { migrateReceive: host.pool.migrateReceiveSessions.map((ref) => ({ ref, active: host.pool.sessions.has(ref) })) };
    }
    if (method === 'GET' && path === '/migrations') {
      await Promise.all([...host.pendingChecksums]);
      return host.migrations;
    }
    if (method === 'POST' && path === '/vms') return createVm(host, b as unknown as CreateVmRequest);
    if (method === 'GET' && vmMatch?.[2] === 'checksums') return checksums(host, decodeURIComponent(vmMatch[1] as string));
    if (method === 'POST' && vmMatch?.[2] === 'guest') {
      const ref = findVm(host, decodeURIComponent(vmMatch[1] as string));
      if (!ref) throw new HttpError(404, 'no such VM');
      const oc = { ...(host.vm(ref).other_config as Record<string, string>) };
      if (b.dirtyRateMiBps !== undefined) oc.sim_dirty_rate_mibps = String(b.dirtyRateMiBps);
      if (b.diskWriteMiBps !== undefined) oc.sim_disk_write_mibps = String(b.diskWriteMiBps);
      if (b.diskWorkingSetMiB !== undefined) oc.sim_disk_working_set_mib = String(b.diskWorkingSetMiB);
      if (b.ignoreCleanShutdown !== undefined) oc.sim_clean_shutdown = b.ignoreCleanShutdown ? 'ignore' : 'obey';
      if (b.shutdownTimeoutS !== undefined) oc.sim_shutdown_timeout_s = String(b.shutdownTimeoutS);
      if (b.workingSetMiB !== undefined) oc.sim_working_set_mib = String(b.workingSetMiB);
      host.store.update('VM', ref, { other_config: oc });
      return { ok: true };
    }
    const vdiMatch = /^\/vdis\/([^/]+)\/checksum$/.exec(path);
    if (method === 'GET' && vdiMatch) {
      const upTo = url.searchParams.get('bytes');
      const sum = vdiChecksum(host, decodeURIComponent(vdiMatch[1] as string), upTo === null ? undefined : Number(upTo));
      if (!sum) throw new HttpError(404, 'no such VDI');
      return sum;
    }
    if (method === 'GET' && path === '/transfers') return { running: runningTransfers(host) };
    if (method === 'POST' && path === '/faults/kill-transfers') return { killed: killTransfers(host) };
    if (method === 'POST' && path === '/bandwidth') {
      host.link.bandwidthBytesPerS = Number(b.MiBps) * MiB;
      return { ok: true };
    }
    if (method === 'POST' && path === '/max-iterations') {
      host.maxIterations = Number(b.value);
      return { ok: true };
    }
    if (method === 'POST' && path === '/faults/fail-next') {
      host.faults.failNext(String(b.method), { code: String(b.code), params: ((b.params as unknown[]) ?? []).map(String) });
      return { ok: true };
    }
    if (method === 'POST' && path === '/faults/cut-data') {
      host.faults.cutDataAfterBytes = Number(b.bytes);
      return { ok: true };
    }
    if (method === 'POST' && path === '/faults/freeze') {
      host.faults.freeze();
      return { ok: true };
    }
    if (method === 'POST' && path === '/faults/thaw') {
      host.faults.thaw();
      return { ok: true };
    }
    if (method === 'POST' && path === '/faults/slow') {
      host.faults.delayMs = Number(b.ms ?? 0);
      return { ok: true };
    }
    if (method === 'POST' && path === '/faults/handoff') {
      const point = b.point as HandoffPoint;
      const action = b.action as HandoffAction;
      if (!HANDOFF_POINTS.includes(point)) throw new HttpError(400, `point must be one of ${HANDOFF_POINTS.join(', ')}`);
      if (!HANDOFF_ACTIONS.includes(action)) throw new HttpError(400, `action must be one of ${HANDOFF_ACTIONS.join(', ')}`);
      host.handoffFault = { point, action };
      return { ok: true };
    }
    if (method === 'POST' && path === '/crash') {
      await host.crash();
      return { ok: true };
    }
    throw new HttpError(404, `no route ${method} ${path}`);
  };
  return createServer((req, res: ServerResponse) => {
    route(req).then(
      (value) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(value ?? null));
      },
      (err: unknown) => {
        const status = err instanceof HttpError ? err.status : 400;
        const payload = err instanceof XenApiError ? { error: err.code, params: err.params } : { error: (err as Error).message };
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(payload));
      },
    );
  });
}
