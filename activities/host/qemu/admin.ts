// The QEMU hosts' admin module (what the Xen simulator's admin API is to Xen hosts): creates a
// guest on a QEMU host for tests and the demo, reads its serial port, and removes every guest of a
// host. It works on the host's state directory directly (same machine); the agent finds a guest
// created here at its next report, as it finds one that survived its restart.
import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostConfig } from '../../../lib/config';
import { createGuestDisk } from '../../../qemu/disk';
import { guestMemoryMiB, parseGuestSerial, type GuestSerial } from '../../../qemu/guest';
import { destroyGuest, QemuGuest } from '../../../qemu/process';
import { QemuHost } from './host';

export interface CreateQemuGuestOptions {
  uuid?: string;
  name: string;
  /** Guest RAM, MiB (at least the region plus 2). */
  memoryMiB?: number;
  /** The region the guest dirties, MiB. */
  regionMiB?: number;
  /** Busy-wait iterations per page written: 0 dirties as fast as the vCPU goes (the dirty rate). */
  delayLoops?: number;
  diskMiB?: number;
  /** MiB of random data written to the disk after its first MiB (default 4): what a block migration's mirror moves. */
  diskDataMiB?: number;
  /** Put the disk on this host's own disks instead of the pool's shared images directory. */
  localDisk?: boolean;
}

export async function createQemuGuest(host: HostConfig, peers: readonly HostConfig[], opts: CreateQemuGuestOptions): Promise<{ uuid: string; stateDir: string; diskPath: string }> {
  const qh = new QemuHost(host, peers);
  await qh.ensureDirs();
  const uuid = opts.uuid ?? randomUUID();
  const program = { regionMiB: opts.regionMiB ?? 16, delayLoops: opts.delayLoops ?? 0 };
  const diskPath = join(opts.localDisk ? qh.disksDir : qh.imagesDir, `${uuid}-disk0.qcow2`);
  await createGuestDisk(diskPath, program, { sizeMiB: opts.diskMiB ?? 16, dataMiB: opts.diskDataMiB ?? Math.min(4, (opts.diskMiB ?? 16) - 1) });
  const stateDir = qh.guestDir(uuid);
  const guest = await QemuGuest.start(stateDir, {
    name: opts.name,
    memoryMiB: Math.max(opts.memoryMiB ?? 64, guestMemoryMiB(program)),
    disks: [{ node: 'disk0', path: diskPath, format: 'qcow2' }],
  });
  await qh.writeMeta({ uuid, cpuModel: qh.qemu.cpuModel });
  // The agent is the guest's one QMP client.
  guest.detach();
  return { uuid, stateDir, diskPath };
}

/** What the guest wrote on its serial port on this host (its 'B's: passes; 'A's: boots). */
export async function readQemuGuestSerial(host: HostConfig, uuid: string): Promise<GuestSerial> {
  const qh = new QemuHost(host, [host]);
  return parseGuestSerial(await readFile(join(qh.guestDir(uuid), 'serial.log'), 'latin1').catch(() => ''));
}

/** Every guest of the host ended and its state removed (a stack's stop). */
export async function destroyQemuGuests(host: HostConfig): Promise<void> {
  const qh = new QemuHost(host, [host]);
  for (const uuid of await qh.guestUuids()) await destroyGuest(qh.guestDir(uuid)).catch(() => undefined);
  await rm(qh.disksDir, { recursive: true, force: true });
}
