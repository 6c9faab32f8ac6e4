// A source guest and its destination waiting with -incoming defer, on one machine: the two
// QEMU processes of every migration test.
import { join } from 'node:path';
import { freePort } from '../../lib/ports';
import { createEmptyDisk, diskInfo } from '../../qemu/disk';
import { prepareIncoming, type MigrationTuning } from '../../qemu/migration';
import { QemuGuest } from '../../qemu/process';
import { exportDisksForIncoming, type NbdAddress } from '../../qemu/storage';
import { BUSY_GUEST, QemuLab } from './helpers';
import type { GuestProgram } from '../../qemu/guest';

export interface MigrationPair {
  source: QemuGuest;
  destination: QemuGuest;
  /** tcp:127.0.0.1:PORT, where the destination listens for the migration stream. */
  uri: string;
  /** Where the destination exports its disks (block migration only). */
  nbd: NbdAddress | null;
}

export async function startPair(
  lab: QemuLab,
  name: string,
  { program = BUSY_GUEST, tuning = {}, block = false }: { program?: GuestProgram; tuning?: MigrationTuning; block?: boolean } = {},
): Promise<MigrationPair> {
  const source = await lab.startGuest(`${name}-src`, program);
  // Shared storage: the destination opens the same image (QEMU keeps it inactive until the switch-over).
  // Block migration: an empty image of the same size, filled over NBD.
  let disks = source.spec.disks;
  if (block) {
    disks = [];
    for (const disk of source.spec.disks) {
      const path = join(lab.root, `${name}-dst-${disk.node}.qcow2`);
      await createEmptyDisk(path, (await diskInfo(disk.path)).virtualBytes);
      disks.push({ ...disk, path });
    }
  }
  const destination = lab.track(await QemuGuest.start(lab.dir(`${name}-dst`), { ...source.spec, name: `${name}-dst`, disks, incoming: true }));
  const port = await freePort();
  const uri = `tcp:127.0.0.1:${port}`;
  let nbd: NbdAddress | null = null;
  if (block) {
    nbd = { host: '127.0.0.1', port: await freePort() };
    await exportDisksForIncoming(destination.qmp, nbd, disks.map((d) => d.node));
  }
  await prepareIncoming(destination.qmp, uri, tuning);
  return { source, destination, uri, nbd };
}
