// The admin HTTP endpoint (JSON, separate from XML-RPC, and not affected by freeze): one-call VM
// setup, checksums, guest and link settings, fault injection, crash, and a full state dump for
// consistency checks. Routes are listed in simulator/README.md.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { XenApiError } from '../xenapi/errors';
import { type SimHost, vmDefaults } from './host';
import { NULL_REF, macFor, newUuid } from './ids';
import type { Rec } from './store';

const MiB = 1024 * 1024;

export interface CreateVmRequest {
  nameLabel: string;
  memoryMiB: number;
  vcpus?: number;
  diskMiB?: number[];
  dirtyRateMiBps?: number;
  workingSetMiB?: number;
  sr?: 'local' | 'shared';
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

export function createVm(host: SimHost, req: CreateVmRequest): { uuid: string; ref: string } {
  const s = host.store;
  const mem = String(Math.round(req.memoryMiB * MiB));
  const other: Record<string, string> = { sim_dirty_rate_mibps: String(req.dirtyRateMiBps ?? 0) };
  if (req.workingSetMiB) other.sim_working_set_mib = String(req.workingSetMiB);
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
    other_config: other,
  });
  const sr = req.sr === 'shared' ? host.sharedSrRef : host.localSrRef;
  (req.diskMiB ?? []).forEach((size, i) => {
    const vdi = host.createVdi({ SR: sr, virtual_size: String(Math.round(size * MiB)), name_label: `${req.nameLabel} disk ${i}` }, 'random');
    s.add('VBD', {
      uuid: newUuid(), VM: ref, VDI: vdi, userdevice: String(i), device: `xvd${String.fromCharCode(97 + i)}`, bootable: i === 0,
      mode: 'RW', type: 'Disk', empty: false, currently_attached: true, unpluggable: true, other_config: {},
    });
  });
  const vifUuid = newUuid();
  s.add('VIF', { uuid: vifUuid, device: '0', VM: ref, network: host.networkRef, MAC: macFor(vifUuid), MTU: '1500', currently_attached: true, other_config: {} });
  try {
    host.startVm(ref, false);
  } catch (err) {
    host.removeVm(ref);
    throw err;
  }
  return { uuid, ref };
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function checksums(
  host: SimHost,
  uuid: string,
): { memory: string | null; memoryAtArrival: string | null; disks: Record<string, string> } | null {
  const ref = findVm(host, uuid);
  if (!ref) return null;
  const guest = host.guests.get(ref);
  const disks: Record<string, string> = {};
  for (const vbd of host.store.find('VBD', (r) => r.VM === ref && r.VDI !== NULL_REF)) {
    const rec = host.store.raw('VBD', vbd);
    disks[String(rec.userdevice)] = sha256File(host.vdiPath(host.store.raw('VDI', String(rec.VDI))));
  }
  return { memory: guest ? guest.checksum() : null, memoryAtArrival: host.arrivals.get(uuid) ?? null, disks };
}

export function listVms(host: SimHost): { uuid: string; ref: string; nameLabel: string; powerState: string; residentOn: string }[] {
  return host.store
    .find('VM', (r) => !r.is_control_domain)
    .map((ref) => {
      const r = host.store.raw('VM', ref);
      return { uuid: String(r.uuid), ref, nameLabel: String(r.name_label), powerState: String(r.power_state), residentOn: String(r.resident_on) };
    });
}

export function hostState(host: SimHost): Rec {
  const s = host.store;
  const dump = (cls: 'VM' | 'VDI' | 'VBD' | 'VIF' | 'task') => Object.fromEntries(s.refs(cls).map((r) => [r, host.view(cls, r)]));
  const files = (dir: string) => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  return {
    name: host.name,
    pool: host.opts.pool,
    hostRef: host.hostRef,
    memoryTotal: host.memoryTotal(),
    memoryFree: host.memoryFree(),
    bandwidthMiBps: host.link.bandwidthBytesPerS / MiB,
    maxIterations: host.maxIterations,
    faults: host.faults.describe(),
    vms: listVms(host),
    records: { VM: dump('VM'), VDI: dump('VDI'), VBD: dump('VBD'), VIF: dump('VIF'), task: dump('task') },
    incoming: [...host.incoming.values()],
    outgoing: [...host.outgoing.entries()].map(([taskRef, o]) => ({ taskRef, ...o })),
    srFiles: { local: files(host.srDir(host.localSrRef)), shared: files(host.srDir(host.sharedSrRef)) },
  };
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString();
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

export function createAdminServer(host: SimHost, onCrash: () => void): Server {
  const route = async (req: IncomingMessage): Promise<unknown> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const b = method === 'POST' ? await body(req) : {};
    const vmMatch = /^\/vms\/([^/]+)\/(checksums|guest)$/.exec(path);
    if (method === 'GET' && (path === '/' || path === '/health')) return { name: host.name, pool: host.opts.pool, hostRef: host.hostRef, pid: process.pid };
    if (method === 'GET' && path === '/state') return hostState(host);
    if (method === 'GET' && path === '/vms') return listVms(host);
    if (method === 'POST' && path === '/vms') return createVm(host, b as unknown as CreateVmRequest);
    if (method === 'GET' && vmMatch?.[2] === 'checksums') return checksums(host, decodeURIComponent(vmMatch[1] as string));
    if (method === 'POST' && vmMatch?.[2] === 'guest') {
      const ref = findVm(host, decodeURIComponent(vmMatch[1] as string));
      if (!ref) throw new HttpError(404, 'no such VM');
      const oc = { ...(host.vm(ref).other_config as Record<string, string>) };
      if (b.dirtyRateMiBps !== undefined) oc.sim_dirty_rate_mibps = String(b.dirtyRateMiBps);
      if (b.workingSetMiB !== undefined) oc.sim_working_set_mib = String(b.workingSetMiB);
      host.store.update('VM', ref, { other_config: oc });
      return { ok: true };
    }
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
    if (method === 'POST' && path === '/crash') {
      setImmediate(onCrash);
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
