// A QEMU host as its agent sees it (issue 15): a state directory on this machine with a directory
// per guest (guests/<instance-uuid>/, qemu/process.ts's files plus ferry's meta.json), local disks
// (disks/), shared-storage images (imagesDir, the same directory for the hosts of a pool that share
// storage), and the agent's one QMP connection per guest (QEMU serves one client at a time).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { hostDriver, type HostConfig, type QemuHostConfig } from '../../../lib/config';
import { diskInfo } from '../../../qemu/disk';
import { pidIfRunning, QemuGuest, type GuestSpecResolved } from '../../../qemu/process';

const run = promisify(execFile);
const QEMU = process.env.FERRY_QEMU ?? 'qemu-system-x86_64';

/** What ferry keeps beside a guest's spec: the CPU model it was given, and an incoming migration's origin. */
export const guestMetaSchema = z.object({
  uuid: z.string().min(1),
  cpuModel: z.string().min(1),
  /** Set while this directory holds a migration's destination (removed once it runs here). */
  incoming: z.object({ from: z.string(), block: z.boolean(), startedAt: z.string(), uri: z.string(), nbd: z.string().nullable() }).optional(),
  /** Set on the source while a migration is sent from here (postLiveMigration reads it). */
  outgoing: z.object({ to: z.string(), block: z.boolean(), uri: z.string(), nbd: z.string().nullable() }).optional(),
});
export type GuestMeta = z.infer<typeof guestMetaSchema>;

/**
 * The guest as it travels with the instance (InstanceView's extra `qemu` field, from the source's
 * checkInstanceActive to the destination's check): libvirt carries the domain XML in its migration
 * cookie; ferry carries QEMU's spec the same way.
 */
export const travellingGuestSchema = z.object({
  spec: z.object({
    name: z.string(),
    memoryMiB: z.number(),
    machine: z.string(),
    disks: z.array(z.object({ node: z.string(), path: z.string(), format: z.enum(['raw', 'qcow2']), virtualBytes: z.number() })),
  }),
  cpuModel: z.string(),
  qemuVersion: z.string(),
});
export type TravellingGuest = z.infer<typeof travellingGuestSchema>;

export class QemuHost {
  readonly qemu: QemuHostConfig;
  readonly guestsDir: string;
  readonly disksDir: string;
  readonly imagesDir: string;
  private readonly connections = new Map<string, Promise<QemuGuest>>();
  private version: string | null = null;
  private machines: string[] | null = null;

  constructor(
    readonly host: HostConfig,
    /** Every host of temporal.yaml: which share this one's images directory (shared storage). */
    private readonly peers: readonly HostConfig[],
  ) {
    if (hostDriver(host) !== 'qemu' || !host.qemu) throw new Error(`${host.name} is not a QEMU host`);
    this.qemu = host.qemu;
    this.guestsDir = join(resolve(host.qemu.stateDir), 'guests');
    this.disksDir = join(resolve(host.qemu.stateDir), 'disks');
    this.imagesDir = resolve(host.qemu.imagesDir ?? join(host.qemu.stateDir, 'images'));
  }

  async ensureDirs(): Promise<void> {
    for (const dir of [this.guestsDir, this.disksDir, this.imagesDir]) await mkdir(dir, { recursive: true });
  }

  guestDir(uuid: string): string {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(uuid)) throw new RangeError(`not an instance uuid: ${uuid}`);
    return join(this.guestsDir, uuid);
  }

  /** Whether another host of this pool names the same images directory: its images are shared storage. */
  imagesShared(): boolean {
    return this.peers.some((p) => p.name !== this.host.name && p.pool === this.host.pool && p.qemu && resolve(p.qemu.imagesDir ?? join(p.qemu.stateDir, 'images')) === this.imagesDir);
  }

  /** A disk on this pool's shared storage (rather than this host's own disks). */
  onSharedStorage(path: string): boolean {
    return this.imagesShared() && resolve(path).startsWith(`${this.imagesDir}/`);
  }

  /** Instance uuids with a state directory here. */
  async guestUuids(): Promise<string[]> {
    return (await readdir(this.guestsDir).catch(() => [] as string[])).filter((d) => /^[A-Za-z0-9-]{1,64}$/.test(d));
  }

  async readMeta(uuid: string): Promise<GuestMeta | null> {
    const text = await readFile(join(this.guestDir(uuid), 'meta.json'), 'utf8').catch(() => null);
    return text === null ? null : guestMetaSchema.parse(JSON.parse(text));
  }

  /** Written whole, then renamed: a crash leaves the old or the new file, never half of one. */
  async writeMeta(meta: GuestMeta): Promise<void> {
    const file = join(this.guestDir(meta.uuid), 'meta.json');
    await writeFile(`${file}.tmp`, `${JSON.stringify(meta, null, 2)}\n`);
    await rename(`${file}.tmp`, file);
  }

  async readSpec(uuid: string): Promise<GuestSpecResolved | null> {
    const text = await readFile(join(this.guestDir(uuid), 'guest.json'), 'utf8').catch(() => null);
    return text === null ? null : (JSON.parse(text) as GuestSpecResolved);
  }

  /** Whether a QEMU process runs from the guest's directory. */
  async running(uuid: string): Promise<boolean> {
    return existsSync(this.guestDir(uuid)) && (await pidIfRunning(this.guestDir(uuid))) !== null;
  }

  /**
   * The agent's QMP connection to a guest: one per guest, shared by every activity (a
   * force-complete runs beside the migrateSend that follows the same guest). A closed one (QEMU
   * exited, or the agent restarted) is replaced by attaching again.
   */
  async guest(uuid: string): Promise<QemuGuest> {
    const dir = this.guestDir(uuid);
    const cached = this.connections.get(dir);
    if (cached) {
      const guest = await cached.catch(() => null);
      if (guest && !guest.qmp.closed && (await guest.alive())) return guest;
      guest?.detach();
      if (this.connections.get(dir) === cached) this.connections.delete(dir);
    }
    const attaching = QemuGuest.attach(dir);
    this.connections.set(dir, attaching);
    attaching.catch(() => {
      if (this.connections.get(dir) === attaching) this.connections.delete(dir);
    });
    return attaching;
  }

  /** A guest just started by this agent becomes its connection. */
  adopt(uuid: string, guest: QemuGuest): void {
    this.connections.set(this.guestDir(uuid), Promise.resolve(guest));
  }

  /** Drops the connection (the process is gone or about to be). */
  forget(uuid: string): void {
    const dir = this.guestDir(uuid);
    const cached = this.connections.get(dir);
    this.connections.delete(dir);
    void cached?.then((g) => g.detach(), () => undefined);
  }

  closeAll(): void {
    for (const uuid of [...this.connections.keys()]) void this.connections.get(uuid)?.then((g) => g.detach(), () => undefined);
    this.connections.clear();
  }

  /** The QEMU version this host runs (`qemu-system-x86_64 --version`), or the one temporal.yaml makes it report. */
  async qemuVersion(): Promise<string> {
    if (this.qemu.reportedVersion) return this.qemu.reportedVersion;
    if (this.version === null) {
      const { stdout } = await run(QEMU, ['--version'], { timeout: 30_000 });
      const match = /version (\d+(?:\.\d+)*)/.exec(stdout);
      if (!match?.[1]) throw new Error(`cannot read QEMU's version from: ${stdout.split('\n')[0]}`);
      this.version = match[1];
    }
    return this.version;
  }

  /** The machine types this QEMU offers (`-machine help`), aliases included. */
  async machineTypes(): Promise<string[]> {
    if (this.machines === null) {
      const { stdout } = await run(QEMU, ['-machine', 'help'], { timeout: 30_000 });
      this.machines = stdout
        .split('\n')
        .slice(1)
        .map((line) => line.trim().split(/\s+/)[0] ?? '')
        .filter((name) => name.length > 0);
    }
    return this.machines;
  }

  /** Memory every running QEMU here holds (an incoming destination included), bytes. */
  async memoryUsedBytes(): Promise<number> {
    let used = 0;
    for (const uuid of await this.guestUuids()) {
      if (!(await this.running(uuid))) continue;
      const spec = await this.readSpec(uuid);
      used += (spec?.memoryMiB ?? 0) * 2 ** 20;
    }
    return used;
  }

  /** The guest as it travels with its instance to the destination's checks. */
  async travelling(uuid: string, spec: GuestSpecResolved, meta: GuestMeta): Promise<TravellingGuest> {
    const disks = [];
    for (const disk of spec.disks) disks.push({ ...disk, virtualBytes: await this.diskBytes(disk.path) });
    return { spec: { name: spec.name, memoryMiB: spec.memoryMiB, machine: spec.machine, disks }, cpuModel: meta.cpuModel, qemuVersion: await this.qemuVersion() };
  }

  private readonly sizes = new Map<string, number>();

  /** A disk's virtual size (qemu-img info, once per path: a guest's disk does not change size). */
  async diskBytes(path: string): Promise<number> {
    const known = this.sizes.get(path);
    if (known !== undefined) return known;
    const { virtualBytes } = await diskInfo(path);
    this.sizes.set(path, virtualBytes);
    return virtualBytes;
  }
}
