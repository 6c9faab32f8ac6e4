// The destination side of the data plane: accepts a migration on the data port, checks it
// (credentials, free memory, SRs, networks), stages memory pages and VDI blocks, stages the VM at
// HANDOFF (not running) and answers READY, and only at RESUME makes the VM run here: same pool,
// the shared record gets resident_on = this host; cross pool, the VM, its VDIs, VBDs and VIFs are
// created in this pool's database. It answers DONE. A connection that closes before RESUME
// (cancel, failure, cut link, crashed source) discards everything it staged.
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server, type Socket } from 'node:net';
import { XenApiCode, XenApiError } from '../xenapi/errors';
import { Frame, FrameReader, HEADER, jsonFrame } from './data-plane';
import { GuestMemory, PAGE } from './guest';
import { prefault, sharedBuffer } from './hasher';
import type { SimHost } from './host';
import { newRef, newUuid } from './ids';
import type { Rec } from './store';

export interface DiskPlan {
  userdevice: string;
  vbdRef: string;
  vbd: Rec;
  vdi: Rec;
  vdiRef: string;
  /** Storage migration: blocks are streamed into a new VDI on targetSr. */
  move: boolean;
  targetSr: string;
  sizeBytes: number;
}

export interface Hello {
  kind: 'check' | 'migrate';
  samePool: boolean;
  pool: string;
  sessionId: string;
  source: string;
  /** The source host's platform_version: a VM may not move to an older platform. */
  sourcePlatformVersion?: string;
  vmRef: string;
  vm: Rec;
  memoryBytes: number;
  disks: DiskPlan[];
  vifs: { ref: string; vif: Rec; network: string }[];
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Throws the xapi error that makes this migration impossible here, if any. */
function check(host: SimHost, hello: Hello): void {
  const s = host.store;
  if (hello.samePool ? hello.pool !== host.pool.name : !host.sessions.has(hello.sessionId)) {
    throw new XenApiError('SESSION_INVALID', [hello.sessionId]);
  }
  if (hello.sourcePlatformVersion && compareVersions(host.opts.platformVersion, hello.sourcePlatformVersion) < 0) {
    throw new XenApiError('VM_INCOMPATIBLE_WITH_THIS_HOST', [
      hello.vmRef,
      host.hostRef,
      `destination platform ${host.opts.platformVersion} is older than the source's ${hello.sourcePlatformVersion}`,
    ]);
  }
  const uuid = String(hello.vm.uuid);
  // Same pool: the VM's one record is already here (it is resident on the source).
  const existing = hello.samePool ? [] : s.find('VM', (r) => r.uuid === uuid);
  if (existing.length || [...host.incoming.values()].some((i) => i.vmUuid === uuid)) {
    throw new XenApiError('VM_MIGRATE_FAILED', [hello.vmRef, hello.source, host.hostRef, `VM ${uuid} already exists on ${host.name}`]);
  }
  for (const d of hello.disks) {
    if (d.move && !s.has('SR', d.targetSr)) throw new XenApiError('HANDLE_INVALID', ['SR', d.targetSr]);
    if (!d.move && !s.has('SR', String(d.vdi.SR))) throw new XenApiError('VM_REQUIRES_SR', [hello.vmRef, String(d.vdi.SR)]);
  }
  for (const v of hello.vifs) if (!s.has('network', v.network)) throw new XenApiError('HANDLE_INVALID', ['network', v.network]);
  const free = host.memoryFree();
  if (hello.memoryBytes > free) throw new XenApiError('HOST_NOT_ENOUGH_FREE_MEMORY', [String(hello.memoryBytes), String(free)]);
}

/** The record of a moved disk: it arrives as one flat raw file, so it has no parent (vhd-parent). */
function flatCopy(vdi: Rec, uuid: string, sr: string): Rec {
  const { 'vhd-parent': _parent, ...sm } = (vdi.sm_config ?? {}) as Record<string, string>;
  return { ...vdi, uuid, SR: sr, sm_config: sm };
}

class IncomingMigration {
  private readonly reader = new FrameReader();
  private hello: Hello | undefined;
  private mem: Buffer | undefined;
  private diskFds: number[] = [];
  private diskPaths: string[] = [];
  private diskUuids: string[] = [];
  private committed = false;
  private reserved = 0;
  private readonly id = newUuid();
  private received = 0;
  private pageDest = 0;
  private pageRemaining = 0;
  /** An injected cut, taken by the first migration (not check) connection after it was set. */
  private cutAfter: number | undefined;
  /** The VM record and pause state the source handed over (HANDOFF), waiting for RESUME. */
  private staged: { paused: boolean; vm?: Rec } | undefined;
  /** The host crashed: the connection dies with it. */
  private readonly cut = () => this.socket.destroy();

  constructor(
    private readonly host: SimHost,
    private readonly socket: Socket,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.discard('connection error'));
    socket.on('close', () => {
      host.onCrash.delete(this.cut);
      this.discard('connection closed');
    });
    host.onCrash.add(this.cut);
    if (host.faults.frozen) {
      // A frozen host accepts and never answers.
      socket.pause();
      host.faults.onThaw(() => socket.resume());
    }
  }

  private onData(chunk: Buffer): void {
    this.received += chunk.length;
    const address = (this.socket.localAddress ?? '').replace(/^::ffff:/, '');
    this.host.receivedByAddress.set(address, (this.host.receivedByAddress.get(address) ?? 0) + chunk.length);
    if (this.cutAfter !== undefined && this.received > this.cutAfter) {
      this.socket.destroy();
      return;
    }
    const inc = this.host.incoming.get(this.id);
    if (inc) inc.receivedBytes = this.received;
    this.reader.push(chunk);
    try {
      this.parse();
    } catch (err) {
      if (!(err instanceof XenApiError)) this.host.log.error({ err }, 'incoming migration failed');
      const desc = err instanceof XenApiError ? err.errorDescription : ['INTERNAL_ERROR', (err as Error).message];
      this.socket.end(jsonFrame(Frame.ERR, desc));
      this.discard('rejected');
    }
  }

  /** Page data goes from the socket's chunks straight into the staged memory (one copy). */
  private parse(): void {
    for (;;) {
      // A crashed host processes nothing more, not even frames already received.
      if (this.host.crashed || this.socket.destroyed) return;
      if (this.pageRemaining > 0) {
        const n = this.reader.drainInto(this.mem as Buffer, this.pageDest, this.pageRemaining);
        this.pageDest += n;
        this.pageRemaining -= n;
        if (this.pageRemaining > 0) return;
        continue;
      }
      const head = this.reader.peek(HEADER);
      if (!head) return;
      if (head.readUInt8(0) === Frame.PAGES) {
        const sub = this.reader.peek(HEADER + 8);
        if (!sub) return;
        if (!this.mem) throw new XenApiError('INTERNAL_ERROR', ['page data before HELLO']);
        this.pageDest = sub.readUInt32LE(HEADER) * PAGE;
        this.pageRemaining = sub.readUInt32LE(HEADER + 4) * PAGE;
        this.reader.skip(HEADER + 8);
        continue;
      }
      const f = this.reader.next();
      if (!f) return;
      this.onFrame(f.type, f.payload);
    }
  }

  private onFrame(type: number, payload: Buffer): void {
    switch (type) {
      case Frame.CHECK: {
        check(this.host, JSON.parse(payload.toString()) as Hello);
        this.socket.end(jsonFrame(Frame.OK, {}));
        return;
      }
      case Frame.STATUS:
        this.socket.end(jsonFrame(Frame.OK, { memoryFree: this.host.memoryFree(), memoryTotal: this.host.memoryTotal() }));
        return;
      case Frame.HELLO:
        return this.start(JSON.parse(payload.toString()) as Hello);
      case Frame.DISK: {
        const idx = payload.readUInt16LE(0);
        const offset = Number(payload.readBigUInt64LE(2));
        writeSync(this.diskFds[idx] as number, payload, 10, payload.length - 10, offset);
        return;
      }
      case Frame.HANDOFF:
        return this.handoff(JSON.parse(payload.toString()) as { paused: boolean; vm?: Rec; crash?: boolean });
      case Frame.RESUME:
        return this.resume(JSON.parse(payload.toString()) as { then?: 'crash' | 'drop' });
      case Frame.CRASH:
        // Fault injection by the source: this host loses power now.
        void this.host.crash();
        return;
      default:
        throw new XenApiError('INTERNAL_ERROR', [`unexpected data frame ${type}`]);
    }
  }

  private start(hello: Hello): void {
    check(this.host, hello);
    this.cutAfter = this.host.faults.takeCut();
    this.hello = hello;
    this.host.reserveIncoming(hello.memoryBytes);
    this.reserved = hello.memoryBytes;
    // Shared memory, so that the worker thread can reach it (prefault, arrival checksum).
    this.mem = sharedBuffer(Math.ceil(hello.memoryBytes / PAGE) * PAGE);
    // The kernel's first touch of each page happens on the worker thread, ahead of the stream.
    void prefault(this.mem).catch(() => undefined);
    hello.disks.forEach((d, i) => {
      const uuid = d.move ? newUuid() : String(d.vdi.uuid);
      this.diskUuids[i] = uuid;
      if (!d.move) return;
      const path = join(this.host.pool.srDir(d.targetSr), `${uuid}.${this.host.name}.partial`);
      this.diskPaths[i] = path;
      this.diskFds[i] = openSync(path, 'w');
    });
    this.host.incoming.set(this.id, {
      id: this.id,
      vmUuid: String(hello.vm.uuid),
      vmName: String(hello.vm.name_label),
      memoryBytes: hello.memoryBytes,
      receivedBytes: this.received,
      from: hello.source,
      startedAt: new Date().toISOString(),
    });
    this.host.log.info({ vm: hello.vm.uuid, from: hello.source }, 'incoming migration started');
    this.socket.write(jsonFrame(Frame.OK, {}));
  }

  /** The last pages are in: the VM is staged here, not running, until the source says RESUME. */
  private handoff(final: { paused: boolean; vm?: Rec; crash?: boolean }): void {
    if (!this.hello || !this.mem) throw new XenApiError(XenApiCode.INTERNAL_ERROR, ['HANDOFF before HELLO']);
    if (final.crash) {
      // Fault injection by the source: this host loses power with the HANDOFF received, before READY.
      void this.host.crash();
      return;
    }
    for (const fd of this.diskFds) if (fd !== undefined) closeSync(fd);
    this.diskFds = [];
    this.staged = final;
    this.socket.write(jsonFrame(Frame.READY, {}));
  }

  /** RESUME: the VM runs here from now on; DONE tells the source. */
  private resume(opts: { then?: 'crash' | 'drop' }): void {
    const hello = this.hello;
    const final = this.staged;
    if (!hello || !final) throw new XenApiError(XenApiCode.INTERNAL_ERROR, ['RESUME before HANDOFF']);
    const host = this.host;
    const pool = host.pool;
    const s = host.store;
    let vmRef: string;
    if (hello.samePool) {
      // One database: the VM keeps its ref, its VBDs and VIFs; moved disks get their new VDIs.
      vmRef = hello.vmRef;
      if (!s.has('VM', vmRef)) throw new XenApiError(XenApiCode.HANDLE_INVALID, ['VM', vmRef]);
      hello.disks.forEach((d, i) => {
        if (!d.move) return;
        const vdi = flatCopy(d.vdi, this.diskUuids[i] as string, d.targetSr);
        renameSync(this.diskPaths[i] as string, pool.vdiPath(vdi));
        const vdiRef = s.add('VDI', vdi);
        if (s.has('VBD', d.vbdRef)) s.update('VBD', d.vbdRef, { VDI: vdiRef });
      });
      for (const v of hello.vifs) if (s.has('VIF', v.ref) && s.raw('VIF', v.ref).network !== v.network) s.update('VIF', v.ref, { network: v.network });
    } else {
      vmRef = newRef();
      s.add('VM', { ...hello.vm, ...final.vm, resident_on: undefined, allowed_operations: undefined, power_state: 'Halted', domid: '-1', current_operations: {}, affinity: host.hostRef }, vmRef);
      hello.disks.forEach((d, i) => {
        const uuid = this.diskUuids[i] as string;
        let vdiRef = d.vdiRef;
        if (d.move) {
          const vdi = flatCopy(d.vdi, uuid, d.targetSr);
          renameSync(this.diskPaths[i] as string, pool.vdiPath(vdi));
          vdiRef = s.add('VDI', vdi);
        } else if (!s.has('VDI', vdiRef)) {
          s.add('VDI', d.vdi, vdiRef);
        }
        s.add('VBD', { ...d.vbd, uuid: newUuid(), VM: vmRef, VDI: vdiRef, currently_attached: true });
      });
      for (const v of hello.vifs) s.add('VIF', { ...v.vif, uuid: newUuid(), VM: vmRef, network: v.network, currently_attached: true });
    }
    this.diskPaths = [];
    host.releaseIncoming(this.reserved);
    this.reserved = 0;
    // xenopsd builds a fresh domain here: it runs unless xapi had the VM paused.
    const guest = new GuestMemory(hello.memoryBytes, { dirtyRateMiBps: 0 }, this.mem);
    host.attachGuest(vmRef, guest, final.paused);
    // What the VM's memory is as it resumes here, hashed off the event loop (the guest's writes wait
    // for it): the hash must not count as downtime, nor hold up the process's other migrations.
    host.arrivals.set(String(hello.vm.uuid), guest.snapshotChecksum());
    this.committed = true;
    host.incoming.delete(this.id);
    host.log.info({ vm: hello.vm.uuid, vmRef, paused: final.paused }, 'incoming migration resumed here');
    if (opts.then === 'crash') {
      void host.crash();
      return;
    }
    if (opts.then === 'drop') {
      this.socket.destroy();
    } else {
      this.socket.end(jsonFrame(Frame.DONE, { vmRef, vmUuid: hello.vm.uuid }));
    }
  }

  private discard(why: string): void {
    if (this.committed || !this.hello) return;
    for (const fd of this.diskFds) if (fd !== undefined) closeSync(fd);
    this.diskFds = [];
    for (const p of this.diskPaths) if (p) rmSync(p, { force: true });
    this.diskPaths = [];
    this.host.releaseIncoming(this.reserved);
    this.reserved = 0;
    this.mem = undefined;
    this.host.incoming.delete(this.id);
    this.host.log.info({ vm: this.hello.vm.uuid, why }, 'incoming migration discarded');
    this.hello = undefined;
  }
}

export function createDataServer(host: SimHost): Server {
  return createServer((socket) => {
    if (host.crashed) {
      socket.destroy();
      return;
    }
    new IncomingMigration(host, socket);
  });
}
