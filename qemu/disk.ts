// Disk images through qemu-img (Debian's qemu-utils): the guest's boot disk, the empty disk a block
// migration's destination receives into, and the comparison that proves a copy identical.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { z } from 'zod';
import { buildGuestBootSector, type GuestProgram } from './guest';

const run = promisify(execFile);
const QEMU_IMG = process.env.FERRY_QEMU_IMG ?? 'qemu-img';
const QEMU_IMG_TIMEOUT_MS = 120_000;
const MiB = 1024 * 1024;

export type DiskFormat = 'raw' | 'qcow2';

/**
 * A qcow2 boot disk of `sizeMiB`: the guest's boot sector, then `dataMiB` of random bytes from
 * the second MiB on, so that a block migration moves real data whose copy can be compared.
 */
export async function createGuestDisk(path: string, program: GuestProgram, { sizeMiB = 16, dataMiB = 4 } = {}): Promise<void> {
  if (dataMiB + 1 > sizeMiB) throw new RangeError(`a ${sizeMiB} MiB disk cannot hold ${dataMiB} MiB of data after its first MiB`);
  const raw = `${path}.raw`;
  const file = await open(raw, 'w');
  try {
    await file.write(buildGuestBootSector(program), 0, 512, 0);
    for (let mib = 0; mib < dataMiB; mib++) await file.write(randomBytes(MiB), 0, MiB, (1 + mib) * MiB);
    await file.truncate(sizeMiB * MiB);
  } finally {
    await file.close();
  }
  try {
    await run(QEMU_IMG, ['convert', '-f', 'raw', '-O', 'qcow2', raw, path], { timeout: QEMU_IMG_TIMEOUT_MS });
  } finally {
    await rm(raw, { force: true });
  }
}

/** An empty image of `virtualBytes` (what a block migration's destination exports over NBD). */
export async function createEmptyDisk(path: string, virtualBytes: number, format: DiskFormat = 'qcow2'): Promise<void> {
  await run(QEMU_IMG, ['create', '-q', '-f', format, path, String(virtualBytes)], { timeout: QEMU_IMG_TIMEOUT_MS });
}

const infoSchema = z.object({ 'virtual-size': z.number(), format: z.string(), 'actual-size': z.number().optional() });

/** qemu-img info: virtual size and format (-U: the image may be open in a running QEMU). */
export async function diskInfo(path: string): Promise<{ virtualBytes: number; format: string; actualBytes: number | null }> {
  const { stdout } = await run(QEMU_IMG, ['info', '-U', '--output=json', path], { timeout: QEMU_IMG_TIMEOUT_MS });
  const info = infoSchema.parse(JSON.parse(stdout));
  return { virtualBytes: info['virtual-size'], format: info.format, actualBytes: info['actual-size'] ?? null };
}

/**
 * qemu-img compare: true when both images hold the same guest-visible bytes (exit 0), false when
 * they differ (exit 1); any other exit is an error. -U lets it read images a QEMU still holds.
 */
export async function disksIdentical(a: string, b: string): Promise<boolean> {
  try {
    await run(QEMU_IMG, ['compare', '-U', a, b], { timeout: QEMU_IMG_TIMEOUT_MS });
    return true;
  } catch (err) {
    if (typeof err === 'object' && err !== null && 'code' in err && err.code === 1) return false;
    throw err;
  }
}
