// The source side of live migration: host.migrate_receive (for a member of this pool),
// VM.assert_can_migrate, VM.migrate_send and VM.pool_migrate. A migration runs on the host the VM
// is resident on, whichever member's endpoint took the call. It streams VDI blocks (storage
// migration), then memory with Xen's pre-copy rule (libxc): round 1 sends every page, each later
// round the pages dirtied during the previous one, until fewer than minDirtyPages are dirty or
// maxIterations rounds ran (0 = no limit); then the guest is paused, the rest is copied
// (stop-and-copy) and xenopsd's handshake hands the VM over (HANDOFF -> READY, the source gives up
// its domain, RESUME -> DONE). Downtime runs from that pause until DONE. The task shows only what
// xapi shows (progress, status, allowed_operations); the figures go to the admin endpoint.
import { XenApiCode, XenApiError } from '../xenapi/errors';
import type { CallContext, Methods } from './api';
import { DISK_CHUNK, DataConnection, Frame, Link, PAGES_PER_FRAME, frameHeader, jsonFrame } from './data-plane';
import { PAGE } from './guest';
import type { HandoffAction, HandoffPoint, MigrationFigures, SimHost } from './host';
import { NULL_REF, newRef } from './ids';
import type { SimPool } from './pool';
import type { DiskPlan, Hello } from './receiver';
import type { Rec } from './store';

export const MAX_STORAGE_MIGRATIONS = 3;
const PROGRESS_EVERY_MS = 100;

type Kind = 'migrate_send' | 'pool_migrate';

interface Plan {
  /** The host the VM runs on: the migration runs there. */
  src: SimHost;
  vmRef: string;
  kind: Kind;
  destHost: string;
  dataHost: string;
  dataPort: number;
  hello: Hello;
  storage: boolean;
}

const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));

function parseXenops(xenops: string): { host: string; port: number } {
  const m = /^tcp:\/\/([^:/]+):(\d+)/.exec(xenops);
  if (!m) throw new XenApiError(XenApiCode.INVALID_VALUE, ['xenops', xenops]);
  return { host: m[1] as string, port: Number(m[2]) };
}

/** The host the VM runs on (VM_BAD_POWER_STATE when halted, HOST_OFFLINE when that host is down). */
function sourceOf(pool: SimPool, vmRef: string): SimHost {
  const vm = pool.store.raw('VM', vmRef);
  if (vm.is_control_domain) throw new XenApiError(XenApiCode.OPERATION_NOT_ALLOWED, ['cannot migrate the control domain']);
  const src = pool.hostOf(vmRef);
  if (!src || (vm.power_state !== 'Running' && vm.power_state !== 'Paused')) {
    throw new XenApiError(XenApiCode.VM_BAD_POWER_STATE, [vmRef, 'running', String(vm.power_state).toLowerCase()]);
  }
  if (src.crashed) throw new XenApiError(XenApiCode.HOST_OFFLINE, [src.hostRef]);
  return src;
}

function basePlan(pool: SimPool, vmRef: string): { src: SimHost; vm: Rec; vbds: [string, Rec][]; vifs: [string, Rec][] } {
  const src = sourceOf(pool, vmRef);
  const s = pool.store;
  const vbds = s.find('VBD', (r) => r.VM === vmRef && r.VDI !== NULL_REF).map((r) => [r, s.raw('VBD', r)] as [string, Rec]);
  const vifs = s.find('VIF', (r) => r.VM === vmRef).map((r) => [r, s.raw('VIF', r)] as [string, Rec]);
  return { src, vm: { ...s.raw('VM', vmRef) }, vbds, vifs };
}

function hello(src: SimHost, vmRef: string, vm: Rec, samePool: boolean, sessionId: string, disks: DiskPlan[], vifs: Hello['vifs']): Hello {
  return {
    kind: 'migrate',
    samePool,
    pool: src.pool.name,
    sessionId,
    source: src.hostRef,
    sourcePlatformVersion: src.opts.platformVersion,
    vmRef,
    vm: { ...vm, VBDs: undefined, VIFs: undefined, resident_on: undefined, allowed_operations: undefined },
    memoryBytes: Number(vm.memory_static_max),
    disks,
    vifs,
  };
}

function planMigrateSend(pool: SimPool, vmRef: string, dest: unknown, vdiMap: unknown, vifMap: unknown): Plan {
  const token = (dest ?? {}) as Record<string, string>;
  if (!token.xenops || !token.host) throw new XenApiError(XenApiCode.INVALID_VALUE, ['dest', 'not a host.migrate_receive token']);
  const { host: dataHost, port } = parseXenops(token.xenops);
  const samePool = pool.member(token.host) !== undefined;
  const vdis = (vdiMap ?? {}) as Record<string, string>;
  const vifsMap = (vifMap ?? {}) as Record<string, string>;
  const { src, vm, vbds, vifs } = basePlan(pool, vmRef);
  const disks: DiskPlan[] = vbds.map(([vbdRef, vbd]) => {
    const vdiRef = str(vbd.VDI);
    const vdi = pool.store.raw('VDI', vdiRef);
    const target = vdis[vdiRef];
    if (!target && !(samePool && vdi.SR === pool.sharedSrRef)) throw new XenApiError(XenApiCode.VDI_NOT_IN_MAP, [vdiRef]);
    const move = !!target && target !== vdi.SR;
    return { userdevice: str(vbd.userdevice), vbdRef, vbd: { ...vbd }, vdi: { ...vdi }, vdiRef, move, targetSr: target ?? str(vdi.SR), sizeBytes: Number(vdi.virtual_size) };
  });
  const vifPlans = vifs.map(([ref, vif]) => {
    const network = vifsMap[ref] ?? (samePool ? str(vif.network) : undefined);
    if (!network) throw new XenApiError(XenApiCode.VIF_NOT_IN_MAP, [ref]);
    return { ref, vif: { ...vif }, network };
  });
  return {
    src,
    vmRef,
    kind: 'migrate_send',
    destHost: token.host,
    dataHost,
    dataPort: port,
    hello: hello(src, vmRef, vm, samePool, str(token.session_id), disks, vifPlans),
    storage: disks.some((d) => d.move),
  };
}

function planPoolMigrate(pool: SimPool, vmRef: string, destHost: string, options: Record<string, string> = {}): Plan {
  const dest = pool.member(destHost);
  if (!dest) throw new XenApiError(XenApiCode.HANDLE_INVALID, ['host', destHost]);
  const { src, vm, vbds, vifs } = basePlan(pool, vmRef);
  if (dest === src) throw new XenApiError(XenApiCode.OPERATION_NOT_ALLOWED, [`VM ${vmRef} is already resident on ${src.name}`]);
  const disks: DiskPlan[] = vbds.map(([vbdRef, vbd]) => {
    const vdiRef = str(vbd.VDI);
    const vdi = pool.store.raw('VDI', vdiRef);
    if (vdi.SR !== pool.sharedSrRef) throw new XenApiError(XenApiCode.VM_REQUIRES_SR, [vmRef, str(vdi.SR)]);
    return { userdevice: str(vbd.userdevice), vbdRef, vbd: { ...vbd }, vdi: { ...vdi }, vdiRef, move: false, targetSr: str(vdi.SR), sizeBytes: Number(vdi.virtual_size) };
  });
  return {
    src,
    vmRef,
    kind: 'pool_migrate',
    destHost,
    dataHost: poolMigrateAddress(pool, dest, options),
    dataPort: dest.opts.dataPort,
    hello: hello(src, vmRef, vm, true, '', disks, vifs.map(([ref, vif]) => ({ ref, vif: { ...vif }, network: str(vif.network) }))),
    storage: false,
  };
}

/** Checks on the source: no conflicting operation on the VM, at most 3 storage migrations per host. */
function assertSourceCan(plan: Plan): void {
  plan.src.pool.assertOperationAllowed(plan.vmRef, plan.kind);
  if (plan.storage && [...plan.src.outgoing.values()].filter((o) => o.storage).length >= MAX_STORAGE_MIGRATIONS) {
    throw new XenApiError(XenApiCode.TOO_MANY_STORAGE_MIGRATES, [String(MAX_STORAGE_MIGRATIONS)]);
  }
}

/** The destination's own checks (credentials, memory, SRs, networks), over its data port. */
async function assertDestinationCan(plan: Plan): Promise<void> {
  let conn: DataConnection;
  try {
    // Checks do not queue behind migrations on the shared link.
    conn = await DataConnection.open(plan.dataHost, plan.dataPort, new Link(Infinity), () => undefined);
  } catch {
    throw new XenApiError(XenApiCode.CANNOT_CONTACT_HOST, [plan.destHost]);
  }
  try {
    const reply = await conn
      .send(jsonFrame(Frame.CHECK, { ...plan.hello, kind: 'check' }))
      .then(() => conn.reply(10_000))
      .catch(() => {
        throw new XenApiError(XenApiCode.CANNOT_CONTACT_HOST, [plan.destHost]);
      });
    if (reply.type === Frame.ERR) throw XenApiError.fromDescription(JSON.parse(reply.payload.toString()));
  } finally {
    conn.close();
  }
}

class Cancelled extends Error {}

/** Shared between task.cancel, hard_shutdown, a crash of the source and the running migration. */
interface Control {
  cancelled: boolean;
  /** Set when the migration must fail (the source crashed, hard_shutdown of a migrate_send). */
  failed?: string;
  /** Interrupts a wait that would otherwise delay the cancel (set by the migration). */
  interrupt?: () => void;
}

function figuresFor(plan: Plan, taskRef: string): MigrationFigures {
  return {
    taskRef,
    vmUuid: str(plan.hello.vm.uuid),
    kind: plan.kind,
    destination: plan.destHost,
    phase: 'checking',
    iteration: 0,
    memoryTotalBytes: plan.hello.memoryBytes,
    memoryProcessedBytes: 0,
    memoryRemainingBytes: plan.hello.memoryBytes,
    diskTotalBytes: plan.hello.disks.filter((d) => d.move).reduce((a, d) => a + d.sizeBytes, 0),
    diskProcessedBytes: 0,
    dirtyRateBytesPerS: 0,
    expectedDowntimeMs: 0,
    bytesSent: 0,
    downtimeMs: null,
    totalMs: null,
    memorySha256: null,
    status: 'running',
  };
}

async function runMigration(plan: Plan, taskRef: string, control: Control, fig: MigrationFigures, fault: { point: HandoffPoint; action: HandoffAction } | undefined): Promise<string> {
  const host = plan.src;
  const pool = host.pool;
  const s = pool.store;
  const vmRef = plan.vmRef;
  const guest = host.guests.get(vmRef);
  if (!guest) throw new XenApiError(XenApiCode.VM_BAD_POWER_STATE, [vmRef, 'running', 'halted']);
  const memTotal = guest.pages * PAGE;
  let progress = 0;
  let lastReport = 0;
  let conn: DataConnection | undefined;
  let stoppedGuest = false;
  /** The source gave up its domain (after READY): from here the source copy can never resume. */
  let gaveUp = false;
  const started = performance.now();
  fig.memoryTotalBytes = memTotal;

  const report = (force = false) => {
    const now = performance.now();
    fig.bytesSent = conn?.bytesSent ?? 0;
    fig.expectedDowntimeMs = Math.round(((guest.dirtyCount * PAGE) / host.link.bandwidthBytesPerS) * 1000);
    if (!force && now - lastReport < PROGRESS_EVERY_MS) return;
    lastReport = now;
    // Monotonic: remaining memory can grow between rounds, the bar must not go back.
    const estimate = (fig.diskProcessedBytes + fig.memoryProcessedBytes) / Math.max(1, fig.diskTotalBytes + fig.memoryProcessedBytes + fig.memoryRemainingBytes);
    const next = Math.min(0.99, Math.max(progress, estimate));
    if (next !== progress && s.has('task', taskRef)) {
      progress = next;
      s.update('task', taskRef, { progress });
    }
  };
  const checkCancel = () => {
    if (control.failed) throw new Error(control.failed);
    if (control.cancelled) throw new Cancelled();
  };
  /** Injected handshake fault: the action, at its point. */
  const inject = async (point: HandoffPoint) => {
    if (fault?.point !== point) return;
    host.log.warn({ point, action: fault.action }, 'injected handshake fault');
    if (fault.action === 'crash-source') {
      await host.crash();
      throw new Error(`source ${host.name} crashed ${point}`);
    }
    if (fault.action === 'drop-connection') conn?.close();
    else await conn?.send(jsonFrame(Frame.CRASH, {})).catch(() => undefined);
  };

  // Waiting for the destination's answer: drop the connection rather than wait for it.
  control.interrupt = () => {
    if (fig.phase === 'connecting' || control.failed) conn?.close();
  };
  const cut = () => conn?.close();
  host.onCrash.add(cut);
  fig.phase = 'connecting';
  report(true);
  try {
    checkCancel();
    try {
      const cutAt = host.faults.takeCut(); // an injected cut applies to this one connection
      conn = await DataConnection.open(plan.dataHost, plan.dataPort, host.link, () => cutAt);
    } catch {
      throw new XenApiError(XenApiCode.CANNOT_CONTACT_HOST, [plan.destHost]);
    }
    checkCancel();
    await conn.send(jsonFrame(Frame.HELLO, plan.hello));
    const accepted = await conn.reply();
    if (accepted.type === Frame.ERR) throw XenApiError.fromDescription(JSON.parse(accepted.payload.toString()));
    checkCancel();

    // Storage first (the VDI mirror), as xapi's storage migration copies disks before memory.
    fig.phase = 'disk';
    for (const [i, d] of plan.hello.disks.entries()) {
      if (!d.move) continue;
      // Through the disk's chain (vdi-chain.ts): the destination gets one flat disk.
      const chain = pool.openChain(d.vdi);
      try {
        for (let off = 0; off < d.sizeBytes; off += DISK_CHUNK) {
          checkCancel();
          const len = Math.min(DISK_CHUNK, d.sizeBytes - off);
          const frame = Buffer.allocUnsafe(10 + len);
          frame.writeUInt16LE(i, 0);
          frame.writeBigUInt64LE(BigInt(off), 2);
          chain.read(frame, off, len, 10);
          await conn.send(Buffer.concat([frameHeader(Frame.DISK, frame.length), frame]));
          fig.diskProcessedBytes += len;
          report();
        }
      } finally {
        chain.close();
      }
    }

    fig.phase = 'precopy';
    guest.enableDirtyLog();
    let pages: ArrayLike<number> = Uint32Array.from({ length: guest.pages }, (_, i) => i);
    for (;;) {
      fig.iteration++;
      const roundStart = performance.now();
      fig.memoryRemainingBytes = pages.length * PAGE + guest.dirtyCount * PAGE;
      report(true);
      for (let i = 0; i < pages.length; i += PAGES_PER_FRAME) {
        checkCancel();
        const to = Math.min(pages.length, i + PAGES_PER_FRAME);
        await conn.sendPages(guest.mem, pages, i, to);
        guest.catchUp();
        fig.memoryProcessedBytes += (to - i) * PAGE;
        fig.memoryRemainingBytes = (pages.length - to) * PAGE + guest.dirtyCount * PAGE;
        report();
      }
      await conn.drain();
      checkCancel();
      guest.catchUp();
      const roundSeconds = Math.max(1e-3, (performance.now() - roundStart) / 1000);
      fig.dirtyRateBytesPerS = Math.round((guest.dirtyCount * PAGE) / roundSeconds);
      host.log.debug({ iteration: fig.iteration, pages: pages.length, ms: roundSeconds * 1000, dirtyPages: guest.dirtyCount }, 'pre-copy round');
      const limitReached = host.maxIterations > 0 && fig.iteration >= host.maxIterations;
      if (guest.dirtyCount < host.minDirtyPages || limitReached) break;
      pages = guest.collectDirty();
    }

    // Stop-and-copy: past this point the migration can no longer be cancelled.
    fig.phase = 'stop_and_copy';
    pool.cancelHandlers.delete(taskRef);
    if (s.has('task', taskRef)) s.update('task', taskRef, { allowed_operations: [] });
    const pausedByXapi = host.vm(vmRef).power_state === 'Paused';
    guest.catchUp();
    const pauseAt = performance.now();
    guest.suspended = true;
    if (guest.running) {
      guest.stop();
      stoppedGuest = true;
    }
    const last = guest.collectDirty();
    fig.memoryRemainingBytes = last.length * PAGE;
    report(true);
    for (let i = 0; i < last.length; i += PAGES_PER_FRAME) {
      const to = Math.min(last.length, i + PAGES_PER_FRAME);
      await conn.sendPages(guest.mem, last, i, to);
      fig.memoryProcessedBytes += (to - i) * PAGE;
      fig.memoryRemainingBytes = (last.length - to) * PAGE;
    }
    await conn.drain();
    // HANDOFF: the VM record as it is now (VCPUs_params, other_config may have changed while migrating).
    fig.phase = 'handoff';
    const crashAtHandoff = fault?.point === 'after-handoff' && fault.action === 'crash-destination';
    await conn.send(
      jsonFrame(Frame.HANDOFF, { paused: pausedByXapi, vm: { ...plan.hello.vm, ...host.vm(vmRef), VBDs: undefined, VIFs: undefined, allowed_operations: undefined }, crash: crashAtHandoff || undefined }),
    );
    if (!crashAtHandoff) await inject('after-handoff');
    const ready = await conn.reply();
    if (ready.type === Frame.ERR) throw XenApiError.fromDescription(JSON.parse(ready.payload.toString()));
    if (ready.type !== Frame.READY) throw new Error(`unexpected reply ${ready.type} to HANDOFF`);

    // The destination staged the VM: the source gives up its domain (its memory is released; only
    // the arrival checksum below still reads the stopped buffer).
    gaveUp = true;
    guest.disableDirtyLog();
    host.dropGuest(vmRef);
    await inject('after-ready');
    fig.phase = 'resume';
    const then = fault?.point === 'after-resume' ? { 'crash-destination': 'crash', 'drop-connection': 'drop', 'crash-source': undefined }[fault.action] : undefined;
    await conn.send(jsonFrame(Frame.RESUME, { then }));
    const done = await conn.reply();
    if (fault?.point === 'after-resume' && fault.action === 'crash-source') await inject('after-resume');
    if (done.type === Frame.ERR) throw XenApiError.fromDescription(JSON.parse(done.payload.toString()));
    if (done.type !== Frame.DONE) throw new Error(`unexpected reply ${done.type} to RESUME`);
    fig.downtimeMs = +(performance.now() - pauseAt).toFixed(1);
    fig.totalMs = +(performance.now() - started).toFixed(1);
    const destVm = (JSON.parse(done.payload.toString()) as { vmRef: string }).vmRef;

    // The guest was stopped: its memory is exactly what the destination resumed with. Hashed off
    // the event loop; admin GET /migrations waits for it.
    const checksum = guest
      .snapshotChecksum()()
      .then((sum) => {
        fig.memorySha256 = sum;
      })
      .finally(() => host.pendingChecksums.delete(checksum));
    host.pendingChecksums.add(checksum);
    if (!plan.hello.samePool) {
      // Cross-pool: the VM now lives in the destination pool's database; forget it here.
      pool.removeVm(vmRef);
    }
    for (const d of plan.hello.disks) if (d.move && s.has('VDI', d.vdiRef)) pool.destroyVdi(d.vdiRef);
    fig.phase = 'done';
    fig.memoryRemainingBytes = 0;
    report(true);
    host.log.info({ vm: plan.hello.vm.uuid, iteration: fig.iteration, downtimeMs: fig.downtimeMs, bytesSent: conn.bytesSent }, 'migration completed');
    return plan.kind === 'migrate_send' ? destVm : '';
  } catch (err) {
    conn?.close();
    guest.disableDirtyLog();
    guest.suspended = false;
    if (!gaveUp) {
      // The VM stays (or goes back to) running here; closing the connection made the destination discard.
      if (stoppedGuest && !host.crashed && host.guests.get(vmRef) === guest) guest.start();
    } else if (!host.crashed && s.has('VM', vmRef)) {
      // The source copy is gone. Same pool: unless the destination resumed it (the shared record
      // says so), the VM is halted. Cross pool: the source pool keeps a halted record.
      const rec = s.raw('VM', vmRef);
      if (!plan.hello.samePool || rec.resident_on === host.hostRef) {
        s.update('VM', vmRef, { power_state: 'Halted', domid: '-1', resident_on: NULL_REF });
      }
    }
    fig.phase = control.cancelled && !gaveUp ? 'cancelled' : 'failed';
    if (err instanceof Cancelled || (control.cancelled && !gaveUp && !control.failed)) throw new XenApiError(XenApiCode.TASK_CANCELLED, [taskRef]);
    if (err instanceof XenApiError && !gaveUp) throw err;
    const msg = err instanceof XenApiError ? err.errorDescription.join(' ') : (err as Error).message;
    throw new XenApiError(XenApiCode.VM_MIGRATE_FAILED, [vmRef, host.hostRef, plan.destHost, msg]);
  } finally {
    host.onCrash.delete(cut);
    fig.bytesSent = conn?.bytesSent ?? fig.bytesSent;
  }
}

/** Runs a planned migration under the call's task (Async) or a task of its own (sync call). */
async function migrate(plan: Plan, ctx: CallContext): Promise<string> {
  const host = plan.src;
  const pool = host.pool;
  const s = pool.store;
  // Check and claim the VM (and a storage-migration slot) in one step, before anything awaits.
  assertSourceCan(plan);
  const taskRef = ctx.taskRef ?? pool.createTask(`VM.${plan.kind}`, host.hostRef);
  const fault = host.handoffFault;
  host.handoffFault = undefined;
  const control: Control = { cancelled: false };
  let finished: () => void = () => undefined;
  const done = new Promise<void>((r) => {
    finished = r;
  });
  host.outgoing.set(taskRef, {
    vmRef: plan.vmRef,
    storage: plan.storage,
    done,
    abort: (why) => {
      // A crash cuts everything; a hard_shutdown stops a migration that can still stop.
      if (!host.crashed && !pool.cancelHandlers.has(taskRef)) return;
      if (plan.kind === 'pool_migrate' && !host.crashed) control.cancelled = true;
      else control.failed = why;
      control.interrupt?.();
    },
  });
  s.update('VM', plan.vmRef, { current_operations: { ...(s.raw('VM', plan.vmRef).current_operations as Rec), [taskRef]: plan.kind } });
  pool.cancelHandlers.set(taskRef, () => {
    control.cancelled = true;
    control.interrupt?.();
  });
  s.update('task', taskRef, { allowed_operations: ['cancel'] });
  const fig = figuresFor(plan, taskRef);
  host.trackMigration(fig);
  try {
    try {
      await assertDestinationCan(plan);
    } catch (err) {
      if (control.failed) throw new XenApiError(XenApiCode.VM_MIGRATE_FAILED, [plan.vmRef, host.hostRef, plan.destHost, control.failed]);
      throw control.cancelled ? new XenApiError(XenApiCode.TASK_CANCELLED, [taskRef]) : err;
    }
    const result = await runMigration(plan, taskRef, control, fig, fault);
    fig.status = 'success';
    // Finished here also for Async calls, so that whoever waits on the migration (hard_shutdown) sees the task done.
    pool.finishTask(taskRef, 'success', result ? `<value>${result}</value>` : '');
    return result;
  } catch (err) {
    const e = err instanceof XenApiError ? err : new XenApiError(XenApiCode.INTERNAL_ERROR, [(err as Error).message]);
    fig.status = e.code === XenApiCode.TASK_CANCELLED ? 'cancelled' : 'failure';
    if (fig.phase !== 'failed' && fig.phase !== 'cancelled') fig.phase = fig.status === 'cancelled' ? 'cancelled' : 'failed';
    pool.finishTask(taskRef, e.code === XenApiCode.TASK_CANCELLED ? 'cancelled' : 'failure', '', e.errorDescription);
    throw e;
  } finally {
    host.outgoing.delete(taskRef);
    pool.cancelHandlers.delete(taskRef);
    if (s.has('VM', plan.vmRef)) {
      const ops = { ...(s.raw('VM', plan.vmRef).current_operations as Record<string, string>) };
      delete ops[taskRef];
      s.update('VM', plan.vmRef, { current_operations: ops });
    }
    finished();
  }
}

/** Waits for any migration of the VM to end (after asking it to stop, when `abort` is given). */
export async function settleMigrations(pool: SimPool, vmRef: string, abort?: string): Promise<void> {
  for (const h of pool.members) {
    for (const o of [...h.outgoing.values()]) {
      if (o.vmRef !== vmRef) continue;
      if (abort) o.abort(abort);
      await o.done;
    }
  }
}

/** The PIF of `network` on `host` (xapi: the network's PIFs, the one whose host is this one). */
function pifOn(pool: SimPool, host: string, network: string): { ref: string; rec: Rec } | null {
  for (const ref of pool.store.refs('PIF')) {
    const rec = pool.store.raw('PIF', ref);
    if (str(rec.host) === host && str(rec.network) === network) return { ref, rec };
  }
  return null;
}

/**
 * host.migrate_receive's address (xapi_host.ml migrate_receive): the IP of the destination's PIF on
 * the given network; none on that host: HOST_CANNOT_ATTACH_NETWORK [host, network]; a PIF without
 * an IP: PIF_HAS_NO_NETWORK_CONFIGURATION [pif] when it is not configured, else INTERFACE_HAS_NO_IP [pif].
 */
function receiveAddress(pool: SimPool, host: string, network: string): string {
  const pif = pifOn(pool, host, network);
  if (!pif) throw new XenApiError('HOST_CANNOT_ATTACH_NETWORK', [host, network]);
  const ip = str(pif.rec.IP);
  if (ip === '') {
    throw new XenApiError(str(pif.rec.IP_configuration_mode) === 'None' ? 'PIF_HAS_NO_NETWORK_CONFIGURATION' : 'INTERFACE_HAS_NO_IP', [pif.ref]);
  }
  return ip;
}

/**
 * VM.pool_migrate's `network` option (xapi_vm_migrate.ml pool_migrate,
 * Xapi_network_attach_helpers.assert_valid_ip_configuration_on_network_for_host): the destination's
 * PIF on that network, PIF_NOT_PRESENT [host, network] when it has none, REQUIRED_PIF_IS_UNPLUGGED
 * [pif] when it is not attached, INTERFACE_HAS_NO_IP [pif] without an address. Without the option,
 * the destination's host.address.
 */
function poolMigrateAddress(pool: SimPool, dest: SimHost, options: Record<string, string>): string {
  const network = options.network;
  if (network === undefined) return dest.opts.ip;
  const pif = pifOn(pool, dest.hostRef, network);
  if (!pif) throw new XenApiError('PIF_NOT_PRESENT', [dest.hostRef, network]);
  if (pif.rec.currently_attached !== true) throw new XenApiError('REQUIRED_PIF_IS_UNPLUGGED', [pif.ref]);
  if (str(pif.rec.IP) === '') throw new XenApiError('INTERFACE_HAS_NO_IP', [pif.ref]);
  return str(pif.rec.IP);
}

export function addMigrationMethods(pool: SimPool, m: Methods): void {
  m.set('host.migrate_receive', {
    arity: 3,
    fn: ([h, network]) => {
      const dest = pool.member(str(h));
      if (!dest) throw new XenApiError(XenApiCode.HANDLE_INVALID, ['host', str(h)]);
      if (dest.crashed) throw new XenApiError(XenApiCode.HOST_OFFLINE, [dest.hostRef]);
      pool.store.raw('network', str(network));
      const ip = receiveAddress(pool, dest.hostRef, str(network));
      // xapi_host.ml migrate_receive: Xapi_session.login_no_password, a new session of the pool with
      // the caller's rights, which nothing logs out but its holder (or xapi's session expiry).
      const session = newRef();
      pool.sessions.add(session);
      pool.migrateReceiveSessions.push(session);
      if (pool.migrateReceiveSessions.length > 200) pool.migrateReceiveSessions.shift();
      const port = dest.opts.xenapiPort;
      return {
        SM: `http://${ip}:${port}/services/SM?session_id=${session}`,
        host: dest.hostRef,
        xenops: `tcp://${ip}:${dest.opts.dataPort}`,
        session_id: session,
        master: `http://${pool.master.opts.ip}:${pool.master.opts.xenapiPort}/`,
      };
    },
  });
  m.set('VM.assert_can_migrate', {
    arity: 6,
    fn: async ([vm, dest, , vdiMap, vifMap]) => {
      const plan = planMigrateSend(pool, str(vm), dest, vdiMap, vifMap);
      assertSourceCan(plan);
      await assertDestinationCan(plan);
      return '';
    },
  });
  m.set('VM.migrate_send', {
    arity: 6,
    fn: ([vm, dest, , vdiMap, vifMap], ctx) => migrate(planMigrateSend(pool, str(vm), dest, vdiMap, vifMap), ctx),
  });
  m.set('VM.pool_migrate', {
    arity: 3,
    fn: ([vm, h, options], ctx) => migrate(planPoolMigrate(pool, str(vm), str(h), (options ?? {}) as Record<string, string>), ctx),
  });
}
