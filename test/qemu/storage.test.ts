// Block migration over NBD between two real QEMU processes: the destination exports an empty disk
// of the same size, the source mirrors its disk into it, the migration pauses before the
// switch-over while the mirror finishes, and qemu-img compare finds both disks identical. An abort
// while the mirror runs leaves the source as it was.
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { disksIdentical } from '../../qemu/disk';
import { cancelMigration, continueMigration, followMigration, startMigration, type MigrationProgress } from '../../qemu/migration';
import { blockJobs, cancelMirrors, completeMirrors, mirrorDisks, mirrorProgress, stopDiskExports } from '../../qemu/storage';
import type { QmpClient } from '../../qemu/qmp';
import { QemuLab, readSerial, waitForPasses } from './helpers';
import { startPair } from './pair';

const MiB = 1024 * 1024;

/**
 * Writes `bytes` of `pattern` at `offset` through a guest device's own block backend (HMP's
 * qemu-io -d), the path a guest's write takes: above the mirror's filter node.
 */
async function writeThroughQemu(qmp: QmpClient, deviceId: string, pattern: number, offset: number, bytes: number): Promise<void> {
  const out = await qmp.execute('human-monitor-command', { 'command-line': `qemu-io -d ${deviceId} "write -P ${pattern} ${offset} ${bytes}"` });
  // Its report goes to QEMU's stdout; the monitor answers only errors.
  if (typeof out !== 'string' || out.trim() !== '') throw new Error(`qemu-io write failed: ${String(out)}`);
}
const TUNING = { maxBandwidthBytesPerSecond: 4096 * MiB, downtimeLimitMs: 300, pauseBeforeSwitchover: true };

describe('QEMU block migration over NBD', () => {
  const lab = new QemuLab();
  afterEach(() => lab.stopGuests());
  afterAll(() => lab.cleanup());

  it('mirrors the disk, switches over after the mirror finished, and leaves identical disks', async () => {
    const pair = await startPair(lab, 'block', { block: true });
    if (!pair.nbd) throw new Error('no NBD export');
    await waitForPasses(pair.source, 5);
    const sourceDisk = pair.source.spec.disks[0]!.path;
    const destinationDisk = pair.destination.spec.disks[0]!.path;
    expect(await disksIdentical(sourceDisk, destinationDisk)).toBe(false);
    const pristine = join(lab.root, 'block-pristine.qcow2');
    await copyFile(sourceDisk, pristine);

    await mirrorDisks(pair.source.qmp, pair.nbd, ['disk0'], { timeoutMs: 60_000 });
    const mirrored = await mirrorProgress(pair.source.qmp);
    expect(mirrored).toMatchObject({ totalBytes: 16 * MiB, remainingBytes: 0 });
    // A write while the mirror is ready (the guest itself never writes its disk): the mirror
    // must carry it to the destination too.
    await writeThroughQemu(pair.source.qmp, 'disk0-dev', 0x5a, 8 * MiB, MiB);

    await startMigration(pair.source.qmp, pair.uri, TUNING);
    const readings: MigrationProgress[] = [];
    const paused = await followMigration(pair.source.qmp, {
      until: ['pre-switchover', 'completed', 'failed', 'cancelled'],
      timeoutMs: 60_000,
      diskProgress: () => mirrorProgress(pair.source.qmp),
      onProgress: (p) => void readings.push(p),
    });
    expect(paused.status).toBe('pre-switchover');
    expect(await pair.source.runState()).not.toBe('running');
    // The mirror's work: the disk, plus the 1 MiB written while it followed the writes. A mirror in
    // the background copy mode carries a write over a moment later, so the last reading may still
    // count it as remaining; with the guest paused, the rest drains (block-job-complete would wait for it).
    let drained = await mirrorProgress(pair.source.qmp);
    for (const deadline = Date.now() + 10_000; drained?.remainingBytes !== 0 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 50));
      drained = await mirrorProgress(pair.source.qmp);
    }
    expect(paused.disk_total).toBe(17 * MiB);
    expect(drained).toMatchObject({ totalBytes: 17 * MiB, remainingBytes: 0 });

    await completeMirrors(pair.source.qmp);
    expect(await blockJobs(pair.source.qmp)).toEqual([]);
    await continueMigration(pair.source.qmp);
    const done = await followMigration(pair.source.qmp, { timeoutMs: 60_000 });
    expect(done.status).toBe('completed');
    await stopDiskExports(pair.destination.qmp);
    await stopDiskExports(pair.destination.qmp); // idempotent

    expect(await pair.destination.runState()).toBe('running');
    expect(await waitForPasses(pair.destination, 10)).toMatchObject({ starts: 0, unexpected: 0 });
    await pair.source.stop();
    expect(await disksIdentical(sourceDisk, destinationDisk)).toBe(true);
    // The write made while mirroring is on the destination.
    expect(await disksIdentical(pristine, destinationDisk)).toBe(false);
  });

  it('aborts while the mirror runs: mirror and target gone, the source runs on, its disk untouched', async () => {
    const pair = await startPair(lab, 'blockabort', { block: true });
    if (!pair.nbd) throw new Error('no NBD export');
    await waitForPasses(pair.source, 5);
    const pristine = join(lab.root, 'blockabort-pristine.qcow2');
    await copyFile(pair.source.spec.disks[0]!.path, pristine);
    await mirrorDisks(pair.source.qmp, pair.nbd, ['disk0'], { timeoutMs: 60_000 });
    // Slow pre-copy that will not converge: the abort comes during it, the mirror still running.
    await startMigration(pair.source.qmp, pair.uri, { ...TUNING, maxBandwidthBytesPerSecond: 4 * MiB, downtimeLimitMs: 1 });
    await followMigration(pair.source.qmp, { until: ['active'], timeoutMs: 30_000 });
    expect(await cancelMigration(pair.source.qmp)).toBe('cancelled');
    await cancelMirrors(pair.source.qmp);
    await cancelMirrors(pair.source.qmp); // idempotent
    expect(await blockJobs(pair.source.qmp)).toEqual([]);
    expect(await pair.destination.waitForExit(10_000)).toBe(true);

    expect(await pair.source.runState()).toBe('running');
    const serial = await readSerial(pair.source);
    await waitForPasses(pair.source, serial.passes + 10);
    const nodes = (await pair.source.qmp.execute('query-named-block-nodes', { flat: true })) as Array<{ 'node-name': string }>;
    expect(nodes.map((n) => n['node-name']).filter((n) => n.startsWith('nbd-target-'))).toEqual([]);
    expect(await disksIdentical(pair.source.spec.disks[0]!.path, pristine)).toBe(true);
  });
});
