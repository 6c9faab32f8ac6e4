// The source side of live migration: host.migrate_receive (as destination), VM.assert_can_migrate,
// VM.migrate_send and VM.pool_migrate. A migration streams VDI blocks (storage migration), then
// memory with Xen's pre-copy rule (libxc): round 1 sends every page, each later round the pages
// dirtied during the previous one, until fewer than minDirtyPages are dirty or maxIterations
// rounds ran (0 = no limit); then the guest is paused and the rest is copied (stop-and-copy),
// and downtime is measured from that pause until the destination has resumed the VM.
import { closeSync, openSync, readSync } from 'node:fs';
import { XenApiError } from '../xenapi/errors';
import type { CallContext, Methods } from './api';
import { DISK_CHUNK, DataConnection, Frame, Link, PAGES_PER_FRAME, frameHeader, jsonFrame } from './data-plane';
import { PAGE } from './guest';
import type { SimHost } from './host';
import { newRef } from './ids';
import type { DiskPlan, Hello } from './receiver';
import type { Rec } from './store';

export const MAX_STORAGE_MIGRATIONS = 3;
const PROGRESS_EVERY_MS = 100;

interface Plan {
  vmRef: string;
  kind: 'migrate_send' | 'pool_migrate';
  destHost: string;
  dataHost: string;
  dataPort: number;
  hello: Hello;
  storage: boolean;
}

const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));

function parseXenops(xenops: string): { host: string; port: number } {
  const m = /^tcp:\/\/([^:/]+):(\d+)/.exec(xenops);
  if (!m) throw new XenApiError('INVALID_VALUE', ['xenops', xenops]);
  return { host: m[1] as string, port: Number(m[2]) };
}

function basePlan(host: SimHost, vmRef: string): { vm: Rec; vbds: [string, Rec][]; vifs: [string, Rec][] } {
  const vm = host.vm(vmRef);
  if (vm.is_control_domain) throw new XenApiError('OPERATION_NOT_ALLOWED', ['cannot migrate the control domain']);
  host.assertPowerState(vmRef, 'Running', 'Paused');
  const s = host.store;
  const vbds = s.find('VBD', (r) => r.VM === vmRef && r.VDI !== 'OpaqueRef:NULL').map((r) => [r, s.raw('VBD', r)] as [string, Rec]);
  const vifs = s.find('VIF', (r) => r.VM === vmRef).map((r) => [r, s.raw('VIF', r)] as [string, Rec]);
  return { vm: { ...vm }, vbds, vifs };
}

function hello(host: SimHost, vmRef: string, vm: Rec, samePool: boolean, sessionId: string, disks: DiskPlan[], vifs: Hello['vifs']): Hello {
  return {
    kind: 'migrate',
    samePool,
    pool: host.opts.pool,
    sessionId,
    source: host.hostRef,
    sourcePlatformVersion: host.opts.platformVersion,
    vmRef,
    vm: { ...vm, VBDs: undefined, VIFs: undefined, resident_on: undefined },
    memoryBytes: Number(vm.memory_static_max),
    disks,
    vifs,
  };
}

function planMigrateSend(host: SimHost, vmRef: string, dest: unknown, vdiMap: unknown, vifMap: unknown): Plan {
  const token = (dest ?? {}) as Record<string, string>;
  if (!token.xenops || !token.host) throw new XenApiError('INVALID_VALUE', ['dest', 'not a host.migrate_receive token']);
  const { host: dataHost, port } = parseXenops(token.xenops);
  const samePool = host.peer(token.host) !== undefined;
  const vdis = (vdiMap ?? {}) as Record<string, string>;
  const vifsMap = (vifMap ?? {}) as Record<string, string>;
  const { vm, vbds, vifs } = basePlan(host, vmRef);
  const disks: DiskPlan[] = vbds.map(([, vbd]) => {
    const vdiRef = str(vbd.VDI);
    const vdi = host.store.raw('VDI', vdiRef);
    const target = vdis[vdiRef];
    if (!target && !(samePool && vdi.SR === host.sharedSrRef)) throw new XenApiError('VDI_NOT_IN_MAP', [vdiRef]);
    return { userdevice: str(vbd.userdevice), vbd: { ...vbd }, vdi: { ...vdi }, vdiRef, move: !!target, targetSr: target ?? str(vdi.SR), sizeBytes: Number(vdi.virtual_size) };
  });
  const vifPlans = vifs.map(([ref, vif]) => {
    const network = vifsMap[ref] ?? (samePool ? str(vif.network) : undefined);
    if (!network) throw new XenApiError('VIF_NOT_IN_MAP', [ref]);
    return { vif: { ...vif }, network };
  });
  return {
    vmRef,
    kind: 'migrate_send',
    destHost: token.host,
    dataHost,
    dataPort: port,
    hello: hello(host, vmRef, vm, samePool, str(token.session_id), disks, vifPlans),
    storage: disks.some((d) => d.move),
  };
}

function planPoolMigrate(host: SimHost, vmRef: string, destHost: string): Plan {
  const peer = host.peer(destHost);
  if (!peer) throw new XenApiError('HANDLE_INVALID', ['host', destHost]);
  if (peer.name === host.name) throw new XenApiError('OPERATION_NOT_ALLOWED', [`VM ${vmRef} is already resident on ${host.name}`]);
  const { vm, vbds, vifs } = basePlan(host, vmRef);
  const disks: DiskPlan[] = vbds.map(([, vbd]) => {
    const vdiRef = str(vbd.VDI);
    const vdi = host.store.raw('VDI', vdiRef);
    if (vdi.SR !== host.sharedSrRef) throw new XenApiError('VM_REQUIRES_SR', [vmRef, str(vdi.SR)]);
    return { userdevice: str(vbd.userdevice), vbd: { ...vbd }, vdi: { ...vdi }, vdiRef, move: false, targetSr: str(vdi.SR), sizeBytes: Number(vdi.virtual_size) };
  });
  return {
    vmRef,
    kind: 'pool_migrate',
    destHost,
    dataHost: '127.0.0.1',
    dataPort: peer.dataPort,
    hello: hello(host, vmRef, vm, true, '', disks, vifs.map(([, vif]) => ({ vif: { ...vif }, network: str(vif.network) }))),
    storage: false,
  };
}

/** Checks on the source: one migration per VM, at most 3 storage migrations per host. */
function assertSourceCan(host: SimHost, plan: Plan): void {
  for (const o of host.outgoing.values()) {
    if (o.vmRef === plan.vmRef) throw new XenApiError('OTHER_OPERATION_IN_PROGRESS', ['VM', plan.vmRef]);
  }
  if (plan.storage && [...host.outgoing.values()].filter((o) => o.storage).length >= MAX_STORAGE_MIGRATIONS) {
    throw new XenApiError('TOO_MANY_STORAGE_MIGRATES', [String(MAX_STORAGE_MIGRATIONS)]);
  }
}

/** The destination's own checks (credentials, memory, SRs, networks), over its data port. */
async function assertDestinationCan(host: SimHost, plan: Plan): Promise<void> {
  let conn: DataConnection;
  try {
    // Checks do not queue behind migrations on the shared link.
    conn = await DataConnection.open(plan.dataHost, plan.dataPort, new Link(Infinity), () => undefined);
  } catch {
    throw new XenApiError('CANNOT_CONTACT_HOST', [plan.destHost]);
  }
  try {
    const reply = await conn
      .send(jsonFrame(Frame.CHECK, { ...plan.hello, kind: 'check' }))
      .then(() => conn.reply(10_000))
      .catch(() => {
        throw new XenApiError('CANNOT_CONTACT_HOST', [plan.destHost]);
      });
    if (reply.type === Frame.ERR) throw XenApiError.fromDescription(JSON.parse(reply.payload.toString()));
  } finally {
    conn.close();
  }
}

async function assertCanMigrate(host: SimHost, plan: Plan): Promise<void> {
  assertSourceCan(host, plan);
  await assertDestinationCan(host, plan);
}

class Cancelled extends Error {}

/** Shared between task.cancel and the running migration. */
interface Control {
  cancelled: boolean;
  /** Interrupts a wait that would otherwise delay the cancel (set by the migration). */
  interrupt?: () => void;
}

async function runMigration(host: SimHost, plan: Plan, taskRef: string, control: Control): Promise<string> {
  const s = host.store;
  const vmRef = plan.vmRef;
  const guest = host.guests.get(vmRef);
  if (!guest) throw new XenApiError('VM_BAD_POWER_STATE', [vmRef, 'running', 'halted']);
  const memTotal = guest.pages * PAGE;
  const diskTotal = plan.hello.disks.filter((d) => d.move).reduce((a, d) => a + d.sizeBytes, 0);
  let memProcessed = 0;
  let diskProcessed = 0;
  let memRemaining = memTotal;
  let iteration = 0;
  let dirtyRate = 0;
  let phase = 'connecting';
  let progress = 0;
  let lastReport = 0;
  let conn: DataConnection | undefined;
  let stoppedGuest = false;
  const started = performance.now();

  const report = (force = false, extra: Record<string, string> = {}) => {
    const now = performance.now();
    if (!force && now - lastReport < PROGRESS_EVERY_MS) return;
    lastReport = now;
    // Monotonic: remaining memory can grow between rounds, the bar must not go back.
    const estimate = (diskProcessed + memProcessed) / Math.max(1, diskTotal + memProcessed + memRemaining);
    progress = Math.min(0.99, Math.max(progress, estimate));
    const task = s.raw('task', taskRef);
    s.update('task', taskRef, {
      progress,
      other_config: {
        ...(task.other_config as Record<string, string>),
        phase,
        memory_total_bytes: String(memTotal),
        memory_processed_bytes: String(memProcessed),
        memory_remaining_bytes: String(memRemaining),
        disk_total_bytes: String(diskTotal),
        disk_processed_bytes: String(diskProcessed),
        disk_remaining_bytes: String(diskTotal - diskProcessed),
        iteration: String(iteration),
        dirty_rate_bytes_per_s: String(Math.round(dirtyRate)),
        expected_downtime_ms: String(Math.round(((guest.dirtyCount * PAGE) / host.link.bandwidthBytesPerS) * 1000)),
        bytes_sent: String(conn?.bytesSent ?? 0),
        elapsed_ms: String(Math.round(now - started)),
        ...extra,
      },
    });
  };
  const checkCancel = () => {
    if (control.cancelled) throw new Cancelled();
  };

  // Waiting for the destination's answer: drop the connection rather than wait for it.
  control.interrupt = () => {
    if (phase === 'connecting') conn?.close();
  };
  s.update('VM', vmRef, { current_operations: { ...(host.vm(vmRef).current_operations as Rec), [taskRef]: plan.kind } });
  report(true);
  try {
    checkCancel();
    try {
      const cut = host.faults.takeCut(); // an injected cut applies to this one connection
      conn = await DataConnection.open(plan.dataHost, plan.dataPort, host.link, () => cut);
    } catch {
      throw new XenApiError('CANNOT_CONTACT_HOST', [plan.destHost]);
    }
    checkCancel();
    await conn.send(jsonFrame(Frame.HELLO, plan.hello));
    const accepted = await conn.reply();
    if (accepted.type === Frame.ERR) throw XenApiError.fromDescription(JSON.parse(accepted.payload.toString()));
    checkCancel();

    // Storage first (the VDI mirror), as xapi's storage migration copies disks before memory.
    phase = 'disk';
    for (const [i, d] of plan.hello.disks.entries()) {
      if (!d.move) continue;
      const fd = openSync(host.vdiPath(d.vdi), 'r');
      try {
        for (let off = 0; off < d.sizeBytes; off += DISK_CHUNK) {
          checkCancel();
          const len = Math.min(DISK_CHUNK, d.sizeBytes - off);
          const frame = Buffer.allocUnsafe(10 + len);
          frame.writeUInt16LE(i, 0);
          frame.writeBigUInt64LE(BigInt(off), 2);
          readSync(fd, frame, 10, len, off);
          await conn.send(Buffer.concat([frameHeader(Frame.DISK, frame.length), frame]));
          diskProcessed += len;
          report();
        }
      } finally {
        closeSync(fd);
      }
    }

    phase = 'precopy';
    guest.enableDirtyLog();
    let pages: ArrayLike<number> = Uint32Array.from({ length: guest.pages }, (_, i) => i);
    for (;;) {
      iteration++;
      const roundStart = performance.now();
      memRemaining = pages.length * PAGE + guest.dirtyCount * PAGE;
      report(true);
      for (let i = 0; i < pages.length; i += PAGES_PER_FRAME) {
        checkCancel();
        const to = Math.min(pages.length, i + PAGES_PER_FRAME);
        await conn.sendPages(guest.mem, pages, i, to);
        guest.catchUp();
        memProcessed += (to - i) * PAGE;
        memRemaining = (pages.length - to) * PAGE + guest.dirtyCount * PAGE;
        report();
      }
      checkCancel();
      guest.catchUp();
      const roundSeconds = Math.max(1e-3, (performance.now() - roundStart) / 1000);
      dirtyRate = (guest.dirtyCount * PAGE) / roundSeconds;
      host.log.debug({ iteration, pages: pages.length, ms: roundSeconds * 1000, dirtyPages: guest.dirtyCount, sinceStartMs: performance.now() - started }, 'pre-copy round');
      const limitReached = host.maxIterations > 0 && iteration >= host.maxIterations;
      if (guest.dirtyCount < host.minDirtyPages || limitReached) break;
      pages = guest.collectDirty();
    }

    // Stop-and-copy: past this point the migration can no longer be cancelled.
    phase = 'stop_and_copy';
    host.cancelHandlers.delete(taskRef);
    s.update('task', taskRef, { allowed_operations: [] });
    const pausedByUser = host.vm(vmRef).power_state === 'Paused';
    guest.catchUp();
    const pauseAt = performance.now();
    if (guest.running) {
      guest.stop();
      stoppedGuest = true;
    }
    const last = guest.collectDirty();
    memRemaining = last.length * PAGE;
    report(true);
    for (let i = 0; i < last.length; i += PAGES_PER_FRAME) {
      const to = Math.min(last.length, i + PAGES_PER_FRAME);
      await conn.sendPages(guest.mem, last, i, to);
      memProcessed += (to - i) * PAGE;
      memRemaining = (last.length - to) * PAGE;
    }
    // The VM record as it is now (VCPUs_params, other_config may have changed while migrating).
    await conn.send(jsonFrame(Frame.COMMIT, { paused: pausedByUser, vm: { ...plan.hello.vm, ...host.vm(vmRef), VBDs: undefined, VIFs: undefined } }));
    const done = await conn.reply();
    if (done.type === Frame.ERR) throw XenApiError.fromDescription(JSON.parse(done.payload.toString()));
    const downtimeMs = performance.now() - pauseAt;
    const totalMs = performance.now() - started;
    const destVm = (JSON.parse(done.payload.toString()) as { vmRef: string }).vmRef;

    // The guest is stopped: its memory is exactly what the destination resumed with.
    const memorySha = guest.checksum();
    // The VM now runs on the destination: forget it here.
    guest.disableDirtyLog();
    host.removeVm(vmRef);
    for (const d of plan.hello.disks) if (host.store.has('VDI', d.vdiRef)) host.destroyVdi(d.vdiRef, !d.move);
    phase = 'done';
    memRemaining = 0;
    report(true, { downtime_ms: downtimeMs.toFixed(1), bytes_sent: String(conn.bytesSent), total_ms: totalMs.toFixed(1), memory_sha256: memorySha });
    host.log.info({ vm: plan.hello.vm.uuid, iteration, downtimeMs, bytesSent: conn.bytesSent }, 'migration completed');
    return plan.kind === 'migrate_send' ? destVm : '';
  } catch (err) {
    // The VM stays (or goes back to) running here; closing the connection makes the destination discard.
    conn?.close();
    guest.disableDirtyLog();
    if (stoppedGuest && host.guests.get(vmRef) === guest && host.vm(vmRef).power_state === 'Running') guest.start();
    phase = control.cancelled ? 'cancelled' : 'failed';
    if (s.has('task', taskRef)) report(true);
    if (err instanceof Cancelled || control.cancelled) throw new XenApiError('TASK_CANCELLED', [taskRef]);
    if (err instanceof XenApiError) throw err;
    throw new XenApiError('VM_MIGRATE_FAILED', [vmRef, host.hostRef, plan.destHost, (err as Error).message]);
  } finally {
    host.outgoing.delete(taskRef);
    host.cancelHandlers.delete(taskRef);
    if (host.store.has('VM', vmRef)) {
      const ops = { ...(host.vm(vmRef).current_operations as Record<string, string>) };
      delete ops[taskRef];
      s.update('VM', vmRef, { current_operations: ops });
    }
  }
}

/** Runs a planned migration under the call's task (Async) or a task of its own (sync call). */
async function migrate(host: SimHost, plan: Plan, ctx: CallContext): Promise<string> {
  // Check and claim the VM (and a storage-migration slot) in one step, before anything awaits.
  assertSourceCan(host, plan);
  const taskRef = ctx.taskRef ?? host.createTask(`VM.${plan.kind}`);
  host.outgoing.set(taskRef, { vmRef: plan.vmRef, storage: plan.storage });
  // The task names its VM from the start, so a retried caller finds it, and is cancellable at once.
  const control: Control = { cancelled: false };
  host.cancelHandlers.set(taskRef, () => {
    control.cancelled = true;
    control.interrupt?.();
  });
  const oc = host.store.raw('task', taskRef).other_config as Record<string, string>;
  host.store.update('task', taskRef, {
    allowed_operations: ['cancel'],
    other_config: { ...oc, vm_uuid: String(plan.hello.vm.uuid), vm_ref: plan.vmRef, destination_host: plan.destHost, migration_kind: plan.kind, phase: 'checking' },
  });
  try {
    try {
      await assertDestinationCan(host, plan);
    } catch (err) {
      host.outgoing.delete(taskRef);
      host.cancelHandlers.delete(taskRef);
      throw control.cancelled ? new XenApiError('TASK_CANCELLED', [taskRef]) : err;
    }
    const result = await runMigration(host, plan, taskRef, control);
    if (!ctx.taskRef) host.finishTask(taskRef, 'success', result ? `<value>${result}</value>` : '');
    return result;
  } catch (err) {
    if (!ctx.taskRef) {
      const e = err as XenApiError;
      host.finishTask(taskRef, e.code === 'TASK_CANCELLED' ? 'cancelled' : 'failure', '', e.errorDescription ?? ['INTERNAL_ERROR']);
    }
    throw err;
  }
}

export function addMigrationMethods(host: SimHost, m: Methods): void {
  m.set('host.migrate_receive', {
    arity: 3,
    fn: ([h, network]) => {
      if (h !== host.hostRef) {
        if (host.peer(String(h))) throw new XenApiError('OPERATION_NOT_ALLOWED', ["call host.migrate_receive on the destination host's own XenAPI"]);
        throw new XenApiError('HANDLE_INVALID', ['host', String(h)]);
      }
      host.store.raw('network', String(network));
      const session = newRef();
      host.sessions.add(session);
      const master = host.poolMembers[0];
      return {
        SM: `http://127.0.0.1:${host.opts.xenapiPort}/services/SM?session_id=${session}`,
        host: host.hostRef,
        xenops: `tcp://127.0.0.1:${host.opts.dataPort}`,
        session_id: session,
        master: master?.xenapiUrl ?? `http://127.0.0.1:${host.opts.xenapiPort}/`,
      };
    },
  });
  m.set('VM.assert_can_migrate', {
    arity: 6,
    fn: async ([vm, dest, , vdiMap, vifMap]) => {
      await assertCanMigrate(host, planMigrateSend(host, str(vm), dest, vdiMap, vifMap));
      return '';
    },
  });
  m.set('VM.migrate_send', {
    arity: 6,
    fn: ([vm, dest, , vdiMap, vifMap], ctx) => migrate(host, planMigrateSend(host, str(vm), dest, vdiMap, vifMap), ctx),
  });
  m.set('VM.pool_migrate', {
    arity: 3,
    fn: ([vm, h], ctx) => migrate(host, planPoolMigrate(host, str(vm), str(h)), ctx),
  });
}
