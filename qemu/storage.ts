// Storage migration over NBD, as libvirt does it for Nova's block migration (VIR_MIGRATE_NON_SHARED_DISK
// with QEMU's NBD server): the destination exports its empty disks, the source mirrors each disk
// into its export while the guest runs, the migration stops at pre-switchover, the mirrors finish
// (block-job-cancel on a ready mirror completes it: source and copy are identical and the guest
// is paused), and the migration continues. Aborting cancels the mirrors and drops their targets.
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { DiskProgress } from './migration';
import { QmpCommandError, type QmpClient } from './qmp';

export interface NbdAddress {
  host: string;
  port: number;
}

const MIRROR_PREFIX = 'mirror-';
const TARGET_PREFIX = 'nbd-target-';

const blockJobSchema = z.array(
  z.object({
    device: z.string(),
    type: z.string(),
    len: z.number(),
    offset: z.number(),
    ready: z.boolean(),
    status: z.string().optional(),
    busy: z.boolean().optional(),
    paused: z.boolean().optional(),
    error: z.string().optional(),
  }),
);
export type BlockJob = z.infer<typeof blockJobSchema>[number];

/** Whether a QMP error says the object was not there (for idempotent clean-up). */
function isAbsent(err: unknown): boolean {
  return err instanceof QmpCommandError && (err.errorClass === 'DeviceNotFound' || /not found|no such|does not exist|not running|not started/i.test(err.desc));
}

/**
 * On the destination (started with -incoming defer): an NBD server on `address` and a writable
 * export per disk, named after its node. Idempotent: a server or export already there is kept.
 */
export async function exportDisksForIncoming(destination: QmpClient, address: NbdAddress, nodes: readonly string[]): Promise<void> {
  try {
    await destination.execute('nbd-server-start', { addr: { type: 'inet', data: { host: address.host, port: String(address.port) } } });
  } catch (err) {
    if (!(err instanceof QmpCommandError && /already running/i.test(err.desc))) throw err;
  }
  const exports = await destination.query('query-block-exports', z.array(z.object({ id: z.string() })));
  for (const node of nodes) {
    if (exports.some((e) => e.id === node)) continue;
    await destination.execute('block-export-add', { type: 'nbd', id: node, 'node-name': node, name: node, writable: true });
  }
}

/** On the destination: the exports and the NBD server gone (after the switch-over, or in a rollback). Idempotent. */
export async function stopDiskExports(destination: QmpClient): Promise<void> {
  const exports = await destination.query('query-block-exports', z.array(z.object({ id: z.string() })));
  for (const { id } of exports) {
    await destination.execute('block-export-del', { id, mode: 'hard' }).catch((err: unknown) => {
      if (!isAbsent(err)) throw err;
    });
  }
  await destination.execute('nbd-server-stop').catch((err: unknown) => {
    if (!isAbsent(err)) throw err;
  });
}

export async function blockJobs(source: QmpClient): Promise<BlockJob[]> {
  return source.query('query-block-jobs', blockJobSchema);
}

/**
 * The mirrors' figures summed, for Nova's disk_* fields; null when no mirror runs. A job's len is
 * its work, not the disk's size: it grows by what the guest writes while mirroring (libvirt's
 * disk_total is the same figure).
 */
export async function mirrorProgress(source: QmpClient): Promise<DiskProgress | null> {
  const mirrors = (await blockJobs(source)).filter((job) => job.device.startsWith(MIRROR_PREFIX));
  if (mirrors.length === 0) return null;
  const totalBytes = mirrors.reduce((sum, job) => sum + job.len, 0);
  const processedBytes = mirrors.reduce((sum, job) => sum + job.offset, 0);
  return { totalBytes, processedBytes, remainingBytes: totalBytes - processedBytes };
}

/**
 * On the source: a mirror of each disk into the destination's export (blockdev-add driver=nbd,
 * blockdev-mirror sync=full), then wait until every mirror is ready (the copy caught up and now
 * follows each write). Idempotent: a target or mirror already there is kept.
 */
export async function mirrorDisks(
  source: QmpClient,
  address: NbdAddress,
  nodes: readonly string[],
  { timeoutMs = 120_000, signal, speedBytesPerSecond }: { timeoutMs?: number; signal?: AbortSignal; speedBytesPerSecond?: number } = {},
): Promise<void> {
  const jobs = await blockJobs(source);
  for (const node of nodes) {
    const jobId = `${MIRROR_PREFIX}${node}`;
    if (jobs.some((job) => job.device === jobId)) continue;
    const target = `${TARGET_PREFIX}${node}`;
    try {
      await source.execute('blockdev-add', {
        driver: 'nbd',
        'node-name': target,
        server: { type: 'inet', host: address.host, port: String(address.port) },
        export: node,
      });
    } catch (err) {
      if (!(err instanceof QmpCommandError && /duplicate|already/i.test(err.desc))) throw err;
    }
    // libvirt gives the mirrors the migration's bandwidth too (qemuMigrationSrcNBDStorageCopy's mirror speed).
    await source.execute('blockdev-mirror', { 'job-id': jobId, device: node, target, sync: 'full', ...(speedBytesPerSecond ? { speed: Math.round(speedBytesPerSecond) } : {}) });
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    const mirrors = (await blockJobs(source)).filter((job) => nodes.some((node) => job.device === `${MIRROR_PREFIX}${node}`));
    const failed = mirrors.find((job) => job.error !== undefined);
    if (failed) throw new Error(`disk mirror ${failed.device} failed: ${failed.error}`);
    if (mirrors.length < nodes.length) throw new Error(`disk mirrors ended before they were ready: ${nodes.length - mirrors.length} of ${nodes.length} gone`);
    if (mirrors.every((job) => job.ready)) return;
    if (Date.now() > deadline) throw new Error(`disk mirrors not ready within ${timeoutMs} ms`);
    await sleep(50, undefined, { signal });
  }
}

/** Waits (bounded) until no mirror job is left, then removes the NBD targets. */
async function dropMirrors(source: QmpClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await blockJobs(source)).some((job) => job.device.startsWith(MIRROR_PREFIX))) {
    if (Date.now() > deadline) throw new Error(`disk mirrors still running ${timeoutMs} ms after they were told to end`);
    await sleep(20);
  }
  const nodes = await source.query('query-named-block-nodes', z.array(z.object({ 'node-name': z.string() })), { flat: true });
  for (const { 'node-name': name } of nodes) {
    if (!name.startsWith(TARGET_PREFIX)) continue;
    await source.execute('blockdev-del', { 'node-name': name }).catch((err: unknown) => {
      if (!isAbsent(err)) throw err;
    });
  }
}

/**
 * At pre-switchover (the guest paused): complete every ready mirror (block-job-cancel without
 * force keeps the copy consistent and ends the job), wait for them to go, drop the targets.
 */
export async function completeMirrors(source: QmpClient, timeoutMs = 30_000): Promise<void> {
  for (const job of await blockJobs(source)) {
    if (!job.device.startsWith(MIRROR_PREFIX)) continue;
    if (!job.ready) throw new Error(`disk mirror ${job.device} is not ready at the switch-over`);
    await source.execute('block-job-cancel', { device: job.device });
  }
  await dropMirrors(source, timeoutMs);
}

/** Abort: every mirror cancelled at once (force: a ready one too), its target dropped. Idempotent. */
export async function cancelMirrors(source: QmpClient, timeoutMs = 30_000): Promise<void> {
  for (const job of await blockJobs(source)) {
    if (!job.device.startsWith(MIRROR_PREFIX)) continue;
    await source.execute('block-job-cancel', { device: job.device, force: true }).catch((err: unknown) => {
      if (!isAbsent(err)) throw err;
    });
  }
  await dropMirrors(source, timeoutMs);
}
