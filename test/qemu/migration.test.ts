// Live migration between two real QEMU processes (TCG) over QMP: completion, abort, and
// force-complete by post-copy and by pause. The guest dirties 32 MiB as fast as it can; its serial
// output and pass counter prove it went on running on the destination instead of starting again.
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { REGION_START } from '../../qemu/guest';
import {
  cancelMigration,
  followMigration,
  pauseGuest,
  queryMigration,
  resumeGuest,
  startMigration,
  startPostcopy,
  type MigrationProgress,
} from '../../qemu/migration';
import { pidIfRunning, QemuGuest } from '../../qemu/process';
import { BUSY_GUEST, passCounter, QemuLab, readSerial, waitForPasses } from './helpers';
import { startPair } from './pair';

const MiB = 1024 * 1024;
/** Far above what the guest dirties over a sync: pre-copy converges. */
const FAST = { maxBandwidthBytesPerSecond: 4096 * MiB, downtimeLimitMs: 300 };
/** Far below it: pre-copy never converges, the migration runs until told otherwise. */
const SLOW = { maxBandwidthBytesPerSecond: 4 * MiB, downtimeLimitMs: 1 };

describe('QEMU live migration', () => {
  const lab = new QemuLab();
  afterEach(() => lab.stopGuests());
  afterAll(() => lab.cleanup());

  it('completes: the destination keeps counting where the source was, the source stops', async () => {
    const pair = await startPair(lab, 'done', { tuning: FAST });
    const before = await waitForPasses(pair.source, 10);
    const counterBefore = await passCounter(pair.source);
    const seen: MigrationProgress[] = [];
    await startMigration(pair.source.qmp, pair.uri, FAST);
    const result = await followMigration(pair.source.qmp, { timeoutMs: 60_000, onProgress: (p) => void seen.push(p) });

    expect(result.status).toBe('completed');
    // Guest RAM plus QEMU's other RAM blocks (ROMs).
    expect(result.memory_total).toBeGreaterThanOrEqual(64 * MiB);
    expect(result.memory_remaining).toBe(0);
    expect(result.memory_processed).toBeGreaterThan(BUSY_GUEST.regionMiB * MiB);
    expect(result.downtimeMs).not.toBeNull();
    expect(result.totalTimeMs).not.toBeNull();
    expect(result.progressPercent).toBe(100);
    expect(await pair.source.runState()).toBe('postmigrate');
    expect(await pair.destination.runState()).toBe('running');

    // The destination never booted: no BIOS, no 'A', only passes, and its counter went on from the source's.
    const after = await waitForPasses(pair.destination, 10);
    expect(after).toMatchObject({ starts: 0, unexpected: 0 });
    expect(await passCounter(pair.destination)).toBeGreaterThan(counterBefore);
    expect((await readSerial(pair.source)).starts).toBe(before.starts);

    // postLiveMigration: the source process ends.
    await pair.source.stop();
    expect(await pidIfRunning(pair.source.stateDir)).toBeNull();
    await waitForPasses(pair.destination, after.passes + 10);
  });

  it('aborts with migrate_cancel: the source runs on, the destination process exits', async () => {
    const pair = await startPair(lab, 'abort');
    await waitForPasses(pair.source, 5);
    await startMigration(pair.source.qmp, pair.uri, SLOW);
    const running = await followMigration(pair.source.qmp, {
      until: ['completed', 'failed', 'cancelled'],
      timeoutMs: 30_000,
      // Stop following (an abort arrives) once bytes are on the wire.
      onProgress: (p) => {
        if (p.status === 'active' && p.memory_processed > 0) throw new StopFollowing(p);
      },
    }).catch((err: unknown) => {
      if (err instanceof StopFollowing) return err.progress;
      throw err;
    });
    expect(running.status).toBe('active');

    expect(await cancelMigration(pair.source.qmp)).toBe('cancelled');
    expect(await pair.destination.waitForExit(10_000)).toBe(true);
    expect(await pair.source.runState()).toBe('running');
    const serial = await readSerial(pair.source);
    await waitForPasses(pair.source, serial.passes + 10);
    // Cancelling again is a no-op.
    expect(await cancelMigration(pair.source.qmp)).toBe('cancelled');
  });

  it('force-completes by post-copy: the destination runs at once and pulls what it lacks', async () => {
    const tuning = { ...SLOW, postcopy: true };
    const pair = await startPair(lab, 'postcopy', { tuning });
    await waitForPasses(pair.source, 5);
    const counterBefore = await passCounter(pair.source);
    await startMigration(pair.source.qmp, pair.uri, tuning);
    await followMigration(pair.source.qmp, { until: ['active'], timeoutMs: 30_000 });
    await startPostcopy(pair.source.qmp);
    // Post-copy pages travel on demand: let it go at full speed now.
    const result = await followMigration(pair.source.qmp, {
      timeoutMs: 60_000,
      onProgress: async (p) => {
        if (p.status === 'postcopy-active') await pair.source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4096 * MiB });
      },
    });
    expect(result.status).toBe('completed');
    expect(result.postcopyBytes).toBeGreaterThan(0);
    expect(await pair.destination.runState()).toBe('running');
    const serial = await waitForPasses(pair.destination, 10);
    expect(serial).toMatchObject({ starts: 0, unexpected: 0 });
    expect(await passCounter(pair.destination)).toBeGreaterThan(counterBefore);
  });

  it('force-completes by pausing: memory identical on both sides, the destination resumes on cont', async () => {
    const tuning = { maxBandwidthBytesPerSecond: 64 * MiB, downtimeLimitMs: 1 };
    const pair = await startPair(lab, 'pause', { tuning });
    await waitForPasses(pair.source, 5);
    await startMigration(pair.source.qmp, pair.uri, tuning);
    await followMigration(pair.source.qmp, { until: ['active'], timeoutMs: 30_000 });
    await pauseGuest(pair.source.qmp);
    const result = await followMigration(pair.source.qmp, { timeoutMs: 60_000 });
    expect(result.status).toBe('completed');
    // The source was paused when it switched over, so the destination stays paused.
    expect(await pair.destination.runState()).toBe('paused');
    const region = BUSY_GUEST.regionMiB * MiB;
    const source = await pair.source.saveMemory(REGION_START, region, join(lab.root, 'pause-src.mem'));
    const destination = await pair.destination.saveMemory(REGION_START, region, join(lab.root, 'pause-dst.mem'));
    expect(destination.equals(source)).toBe(true);
    // Not all zero: the guest did write the region.
    expect(source.some((byte) => byte !== 0)).toBe(true);
    const counter = await passCounter(pair.destination);

    await resumeGuest(pair.destination.qmp);
    expect(await pair.destination.runState()).toBe('running');
    await waitForPasses(pair.destination, 5);
    expect(await passCounter(pair.destination)).toBeGreaterThan(counter);
    expect((await readSerial(pair.destination)).starts).toBe(0);
  });

  it('fails when the destination QEMU dies mid-way, and the source runs on', async () => {
    const pair = await startPair(lab, 'dstkill');
    await waitForPasses(pair.source, 5);
    await startMigration(pair.source.qmp, pair.uri, SLOW);
    await followMigration(pair.source.qmp, { until: ['active'], timeoutMs: 30_000 });
    process.kill(pair.destination.pid, 'SIGKILL');
    expect(await pair.destination.waitForExit(10_000)).toBe(true);
    const result = await followMigration(pair.source.qmp, { timeoutMs: 30_000 });
    expect(result.status).toBe('failed');
    expect(await pair.source.runState()).toBe('running');
    const serial = await readSerial(pair.source);
    await waitForPasses(pair.source, serial.passes + 10);
  });

  it('is found again from a new QMP connection mid-way (agent restart) and followed to the end', async () => {
    const pair = await startPair(lab, 'restart');
    await waitForPasses(pair.source, 5);
    await startMigration(pair.source.qmp, pair.uri, SLOW);
    const early = await followMigration(pair.source.qmp, { until: ['active'], timeoutMs: 30_000 });
    // The agent goes away: its connection closes, QEMU and the migration go on.
    pair.source.detach();
    const found = lab.track(await QemuGuest.attach(pair.source.stateDir));
    const resumed = await queryMigration(found.qmp);
    expect(resumed.status).toBe('active');
    expect(resumed.ram?.transferred ?? 0).toBeGreaterThanOrEqual(early.memory_processed);
    // The restarted agent applies the policy again (here: more bandwidth) and follows to the end.
    await found.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4096 * MiB, 'downtime-limit': 300 });
    const result = await followMigration(found.qmp, { timeoutMs: 60_000 });
    expect(result.status).toBe('completed');
    expect(await pair.destination.runState()).toBe('running');
    expect(await waitForPasses(pair.destination, 5)).toMatchObject({ starts: 0 });
  });
});

class StopFollowing extends Error {
  constructor(readonly progress: MigrationProgress) {
    super('stop following');
  }
}
