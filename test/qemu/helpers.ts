// Shared pieces of the QEMU tests: a short state root (unix socket paths are limited to 107
// bytes), a counting guest, and bounded waits on its serial log.
import { mkdtempSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGuestDisk } from '../../qemu/disk';
import { guestMemoryMiB, parseGuestCounters, parseGuestSerial, PASS_COUNTER_ADDRESS, type GuestCounters, type GuestProgram, type GuestSerial } from '../../qemu/guest';
import { destroyGuest, QemuGuest, type GuestSpec } from '../../qemu/process';

/** A small guest that dirties 32 MiB as fast as the vCPU goes. */
export const BUSY_GUEST: GuestProgram = { regionMiB: 32, delayLoops: 0 };

export class QemuLab {
  readonly root = mkdtempSync(join(tmpdir(), 'fq-'));
  private readonly dirs = new Set<string>();
  private readonly guests = new Set<QemuGuest>();

  dir(name: string): string {
    const dir = join(this.root, name);
    this.dirs.add(dir);
    return dir;
  }

  /** Starts a guest running `program` from a fresh boot disk in its state directory. */
  async startGuest(name: string, program: GuestProgram = BUSY_GUEST, extra: Partial<GuestSpec> = {}): Promise<QemuGuest> {
    const dir = this.dir(name);
    const disk = join(this.root, `${name}.qcow2`);
    await createGuestDisk(disk, program);
    return this.track(await QemuGuest.start(dir, { name, memoryMiB: Math.max(64, guestMemoryMiB(program)), disks: [{ node: 'disk0', path: disk, format: 'qcow2' }], ...extra }));
  }

  /** Ends `guest` at clean-up. */
  track(guest: QemuGuest): QemuGuest {
    this.guests.add(guest);
    this.dirs.add(guest.stateDir);
    return guest;
  }

  /** Every guest started here ended (through its own QMP connection while it has one). */
  async stopGuests(): Promise<void> {
    for (const guest of this.guests) if (!guest.qmp.closed) await guest.stop().catch(() => undefined);
    this.guests.clear();
    for (const dir of this.dirs) await destroyGuest(dir).catch(() => undefined);
    this.dirs.clear();
  }

  /** Every guest ended, the root removed. */
  async cleanup(): Promise<void> {
    await this.stopGuests();
    await rm(this.root, { recursive: true, force: true });
  }
}

export async function readSerial(guest: QemuGuest): Promise<GuestSerial> {
  return parseGuestSerial(await readFile(guest.files.serial, 'latin1').catch(() => ''));
}

/** Waits (bounded) until the guest's serial log shows at least `passes` passes. */
export async function waitForPasses(guest: QemuGuest, passes: number, timeoutMs = 30_000): Promise<GuestSerial> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const serial = await readSerial(guest);
    if (serial.passes >= passes) return serial;
    if (Date.now() > deadline) throw new Error(`${guest.spec.name} wrote ${serial.passes} passes in ${timeoutMs} ms, wanted ${passes}`);
    await sleep(50);
  }
}

/** The guest's counters (passes and page writes, from physical 0x500), read through QMP. */
export async function guestCounters(guest: QemuGuest): Promise<GuestCounters> {
  return parseGuestCounters(await guest.saveMemory(PASS_COUNTER_ADDRESS, 8, join(guest.stateDir, 'counters.bin')));
}

/** The guest's pass counter. */
export async function passCounter(guest: QemuGuest): Promise<number> {
  return (await guestCounters(guest)).passes;
}
