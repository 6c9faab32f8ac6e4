// Live migration between two QEMU processes over QMP, with the meaning libvirt and Nova's libvirt
// driver give it: capabilities set on both sides before the stream starts, the policy as migration
// parameters (bandwidth, allowed downtime, auto-converge's throttle), query-migrate read into Nova's
// memory_* fields (nova/virt/libvirt/migration.py save_stats, from libvirt's job info: ram.total,
// ram.transferred, ram.remaining), abort with migrate_cancel, and force-complete by post-copy or
// by pausing the guest (Nova's live_migration_force_complete).
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { QmpClient } from './qmp';

/** QEMU's MigrationStatus (qapi/migration.json). */
export const MIGRATION_STATUSES = [
  'none', 'setup', 'cancelling', 'cancelled', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover',
  'completed', 'failed', 'colo', 'pre-switchover', 'device', 'wait-unplug',
] as const;
export type MigrationStatus = (typeof MIGRATION_STATUSES)[number];
/** Statuses a migration does not leave by itself. */
export const FINAL_STATUSES: readonly MigrationStatus[] = ['completed', 'failed', 'cancelled'];

/** The policy's knobs, as libvirt sets them (virDomainMigrateSetMaxSpeed, ...SetMaxDowntime, VIR_MIGRATE_* flags). */
export interface MigrationTuning {
  /** Bytes per second the stream may use (QEMU's default is 128 MiB/s; Nova's live_migration_bandwidth). */
  maxBandwidthBytesPerSecond?: number;
  /** Longest pause QEMU may plan for the switch-over, ms (QEMU's default is 300; Nova raises it in downtime steps). */
  downtimeLimitMs?: number;
  /** Throttle the guest's vCPUs when pre-copy does not converge (Nova's live_migration_permit_auto_converge). */
  autoConverge?: boolean;
  cpuThrottleInitial?: number;
  cpuThrottleIncrement?: number;
  /** Allow a switch to post-copy later (Nova's live_migration_permit_post_copy): set on both sides. */
  postcopy?: boolean;
  /** Stop at pre-switchover so that disk mirrors finish before the guest moves (block migration). */
  pauseBeforeSwitchover?: boolean;
}

/** The capabilities a tuning needs; the destination needs postcopy-ram too. */
export function migrationCapabilities(tuning: MigrationTuning): Record<string, boolean> {
  return {
    events: true,
    'auto-converge': tuning.autoConverge === true,
    'postcopy-ram': tuning.postcopy === true,
    'pause-before-switchover': tuning.pauseBeforeSwitchover === true,
  };
}

export async function setMigrationCapabilities(qmp: QmpClient, capabilities: Record<string, boolean>): Promise<void> {
  await qmp.execute('migrate-set-capabilities', {
    capabilities: Object.entries(capabilities).map(([capability, state]) => ({ capability, state })),
  });
}

/** migrate-set-parameters for what the tuning names (also while migrating: the downtime steps). */
export async function setMigrationParameters(qmp: QmpClient, tuning: MigrationTuning): Promise<void> {
  const parameters: Record<string, number> = {};
  if (tuning.maxBandwidthBytesPerSecond !== undefined) parameters['max-bandwidth'] = Math.round(tuning.maxBandwidthBytesPerSecond);
  if (tuning.downtimeLimitMs !== undefined) parameters['downtime-limit'] = Math.round(tuning.downtimeLimitMs);
  if (tuning.cpuThrottleInitial !== undefined) parameters['cpu-throttle-initial'] = tuning.cpuThrottleInitial;
  if (tuning.cpuThrottleIncrement !== undefined) parameters['cpu-throttle-increment'] = tuning.cpuThrottleIncrement;
  if (Object.keys(parameters).length > 0) await qmp.execute('migrate-set-parameters', parameters);
}

/**
 * The destination's half (libvirt's Prepare phase): capabilities that must match the source's
 * (events; postcopy-ram when post-copy is permitted), then listen on `uri` (tcp:HOST:PORT). The
 * destination was started with -incoming defer.
 */
export async function prepareIncoming(destination: QmpClient, uri: string, tuning: Pick<MigrationTuning, 'postcopy'>): Promise<void> {
  await setMigrationCapabilities(destination, { events: true, 'postcopy-ram': tuning.postcopy === true });
  await destination.execute('migrate-incoming', { uri });
}

/** The source's half (libvirt's Perform phase): capabilities, parameters, then the stream to `uri`. */
export async function startMigration(source: QmpClient, uri: string, tuning: MigrationTuning): Promise<void> {
  await setMigrationCapabilities(source, migrationCapabilities(tuning));
  await setMigrationParameters(source, tuning);
  await source.execute('migrate', { uri });
}

const ramSchema = z.object({
  transferred: z.number(),
  remaining: z.number(),
  total: z.number(),
  duplicate: z.number().optional(),
  normal: z.number().optional(),
  'dirty-pages-rate': z.number().optional(),
  mbps: z.number().optional(),
  'dirty-sync-count': z.number().optional(),
  'postcopy-requests': z.number().optional(),
  'page-size': z.number().optional(),
  'precopy-bytes': z.number().optional(),
  'downtime-bytes': z.number().optional(),
  'postcopy-bytes': z.number().optional(),
});
export const migrationInfoSchema = z.object({
  status: z.enum(MIGRATION_STATUSES).optional(),
  ram: ramSchema.optional(),
  'total-time': z.number().optional(),
  'expected-downtime': z.number().optional(),
  downtime: z.number().optional(),
  'setup-time': z.number().optional(),
  'cpu-throttle-percentage': z.number().optional(),
  'error-desc': z.string().optional(),
});
export type MigrationInfo = z.infer<typeof migrationInfoSchema>;

export async function queryMigration(qmp: QmpClient): Promise<MigrationInfo> {
  return qmp.query('query-migrate', migrationInfoSchema);
}

/** A disk mirror's figures (query-block-jobs: len and offset), for Nova's disk_* fields. */
export interface DiskProgress {
  totalBytes: number;
  processedBytes: number;
  remainingBytes: number;
}

/**
 * A migration's progress with Nova's fields (libvirt's job info as Nova saves it), plus what QEMU
 * says beside them. memory_* come from query-migrate's ram; disk_* from the mirrors, when any.
 */
export interface MigrationProgress {
  status: MigrationStatus;
  memory_total: number;
  memory_processed: number;
  memory_remaining: number;
  disk_total: number;
  disk_processed: number;
  disk_remaining: number;
  /** Nova's instance.progress: 100 - memory_remaining * 100 / memory_total (nova/virt/libvirt/driver.py _live_migration_monitor). */
  progressPercent: number;
  totalTimeMs: number | null;
  /** Measured downtime, once completed (7.2 fills it in a moment after). */
  downtimeMs: number | null;
  expectedDowntimeMs: number | null;
  setupTimeMs: number | null;
  dirtyPagesPerSecond: number | null;
  dirtySyncCount: number | null;
  mbps: number | null;
  cpuThrottlePercent: number | null;
  precopyBytes: number | null;
  downtimeBytes: number | null;
  postcopyBytes: number | null;
  error: string | null;
}

export function migrationProgress(info: MigrationInfo, disk: DiskProgress | null = null): MigrationProgress {
  const ram = info.ram;
  const memoryTotal = ram?.total ?? 0;
  const memoryRemaining = ram?.remaining ?? 0;
  return {
    status: info.status ?? 'none',
    memory_total: memoryTotal,
    memory_processed: ram?.transferred ?? 0,
    memory_remaining: memoryRemaining,
    disk_total: disk?.totalBytes ?? 0,
    disk_processed: disk?.processedBytes ?? 0,
    disk_remaining: disk?.remainingBytes ?? 0,
    progressPercent: info.status === 'completed' ? 100 : memoryTotal > 0 ? Math.round(100 - (memoryRemaining * 100) / memoryTotal) : 0,
    totalTimeMs: info['total-time'] ?? null,
    downtimeMs: info.downtime ?? null,
    expectedDowntimeMs: info['expected-downtime'] ?? null,
    setupTimeMs: info['setup-time'] ?? null,
    dirtyPagesPerSecond: ram?.['dirty-pages-rate'] ?? null,
    dirtySyncCount: ram?.['dirty-sync-count'] ?? null,
    mbps: ram?.mbps ?? null,
    cpuThrottlePercent: info['cpu-throttle-percentage'] ?? null,
    precopyBytes: ram?.['precopy-bytes'] ?? null,
    downtimeBytes: ram?.['downtime-bytes'] ?? null,
    postcopyBytes: ram?.['postcopy-bytes'] ?? null,
    error: info['error-desc'] ?? null,
  };
}

export class MigrationTimeoutError extends Error {
  constructor(readonly last: MigrationProgress | null, wanted: readonly string[], timeoutMs: number) {
    super(`migration not ${wanted.join(' or ')} within ${timeoutMs} ms (last status ${last?.status ?? 'unknown'})`);
    this.name = 'MigrationTimeoutError';
  }
}

export interface FollowOptions {
  /** Return once the status is one of these (default: a final status). */
  until?: readonly MigrationStatus[];
  timeoutMs: number;
  /** How often to read query-migrate, ms. */
  pollMs?: number;
  signal?: AbortSignal;
  /** Called with every reading (the agent heartbeats and applies its policy here). */
  onProgress?: (progress: MigrationProgress) => void | Promise<void>;
  /** The disk mirrors' figures, read beside each query-migrate (block migration). */
  diskProgress?: () => Promise<DiskProgress | null>;
}

/**
 * Follows a migration by reading query-migrate until its status is one of `until`. Polling (not
 * the MIGRATION events) so that a new QMP connection after an agent restart picks up a migration
 * in any state. A completed migration is read again until QEMU has filled in its times.
 */
export async function followMigration(qmp: QmpClient, options: FollowOptions): Promise<MigrationProgress> {
  const until = options.until ?? FINAL_STATUSES;
  const pollMs = options.pollMs ?? 100;
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    options.signal?.throwIfAborted();
    const disk = options.diskProgress ? await options.diskProgress() : null;
    const progress = migrationProgress(await queryMigration(qmp), disk);
    await options.onProgress?.(progress);
    if (until.includes(progress.status)) return progress.status === 'completed' ? completedFigures(qmp, progress) : progress;
    if (Date.now() > deadline) throw new MigrationTimeoutError(progress, until, options.timeoutMs);
    await sleep(pollMs, undefined, { signal: options.signal });
  }
}

/**
 * QEMU 7.2 sets total-time and downtime a moment after reporting completed (absent or 0 before):
 * read again, briefly.
 */
async function completedFigures(qmp: QmpClient, first: MigrationProgress): Promise<MigrationProgress> {
  let progress = first;
  for (let attempt = 0; attempt < 40 && (!progress.downtimeMs || !progress.totalTimeMs); attempt++) {
    await sleep(25);
    progress = migrationProgress(await queryMigration(qmp));
  }
  return { ...progress, disk_total: first.disk_total, disk_processed: first.disk_processed, disk_remaining: first.disk_remaining };
}

/**
 * Abort (Nova's live_migration_abort, libvirt's virDomainAbortJob): migrate_cancel, then wait until
 * QEMU settled the migration. Answers the final status: cancelled (the source runs on), or completed
 * when the cancel came after the point of no return.
 */
export async function cancelMigration(source: QmpClient, timeoutMs = 10_000): Promise<MigrationStatus> {
  const before = await queryMigration(source);
  if (before.status === undefined || before.status === 'none' || FINAL_STATUSES.includes(before.status)) return before.status ?? 'none';
  await source.execute('migrate_cancel');
  const settled = await followMigration(source, { until: [...FINAL_STATUSES, 'postcopy-active', 'postcopy-paused'], timeoutMs, pollMs: 20 });
  return settled.status;
}

/**
 * Force-complete by post-copy (Nova's trigger_postcopy_switch): the guest runs on the destination
 * from now on and pulls the pages it still lacks. Needs postcopy-ram set on both sides before the
 * migration started. From here an abort is no longer possible.
 */
export async function startPostcopy(source: QmpClient): Promise<void> {
  await source.execute('migrate-start-postcopy');
}

/** Force-complete by pausing the guest (Nova's fallback, virDomainSuspend): nothing more is dirtied. */
export async function pauseGuest(qmp: QmpClient): Promise<void> {
  await qmp.execute('stop');
}

/** Runs a paused guest: the destination after a paused migration, or the source after a rollback. */
export async function resumeGuest(qmp: QmpClient): Promise<void> {
  await qmp.execute('cont');
}

/** After pre-switchover (pause-before-switchover), once the mirrors finished: serialise the devices and switch. */
export async function continueMigration(source: QmpClient): Promise<void> {
  await source.execute('migrate-continue', { state: 'pre-switchover' });
}
