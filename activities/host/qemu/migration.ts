// The host-side steps of a live migration on QEMU hosts, with the meaning Nova's libvirt driver
// gives them (qemu/README.md maps each one onto QMP). Same names, inputs and results as the Xen
// steps (activities/host/migration.ts), so that liveMigration runs unchanged. Every step is
// idempotent; migrateSend heartbeats and, retried after the agent restarted, finds the migration
// again through QMP and follows it instead of starting another.
import { existsSync } from 'node:fs';
import { readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { z } from 'zod';
import type { Logger } from '../../../lib/logger';
import { freePort } from '../../../lib/ports';
import { createEmptyDisk } from '../../../qemu/disk';
import { downtimeFor, downtimeSteps, migrationDataGiB } from '../../../qemu/downtime-steps';
import {
  cancelMigration,
  continueMigration,
  FINAL_STATUSES,
  followMigration,
  pauseGuest,
  prepareIncoming,
  queryMigration,
  resumeGuest,
  setMigrationParameters,
  startMigration,
  startPostcopy,
  type MigrationProgress,
  type MigrationStatus,
} from '../../../qemu/migration';
import { destroyGuest, QemuGuest } from '../../../qemu/process';
import { cancelMirrors, completeMirrors, exportDisksForIncoming, mirrorDisks, mirrorProgress, stopDiskExports, type NbdAddress } from '../../../qemu/storage';
import { nextAction, observe, startConvergence, type ConvergenceState } from '../../../workflows/convergence';
import type {
  AssertCanMigrateInput,
  CheckDestinationInput,
  DestinationFacts,
  InstancePresence,
  InstanceRef,
  MigrateSendInput,
  MigrateSendResult,
  MigrateToken,
  RollbackAtDestinationInput,
  RollbackSourceInput,
  TransferHeartbeat,
  TransferProgress,
} from '../../types';
import { compareVersions } from '../../conductor/scheduler';
import { progressReporter, type ProgressReporter } from '../migration';
import { travellingGuestSchema, type QemuHost } from './host';
import type { createQemuInventory } from './inventory';

/** Nova's InvalidHypervisorType text (nova/exception.py), followed by the two types. */
export const INVALID_HYPERVISOR_TYPE = 'The supplied hypervisor type of is invalid.';

/** Statuses of a migration under way (not yet settled). */
const UNDER_WAY: readonly MigrationStatus[] = ['setup', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'pre-switchover', 'device', 'wait-unplug', 'cancelling'];
/** From these the guest runs (or is about to run) on the destination: no way back. */
const HANDED_OVER: readonly MigrationStatus[] = ['postcopy-active', 'postcopy-paused', 'postcopy-recover', 'device', 'completed'];
const POLL_MS = 200;
/** A destination that waited this long for its migration stream is ended (ms). */
const STALE_INCOMING_MS = 10 * 60 * 1000;
/** The longest one migration may be followed by one attempt (the workflow's bound is the real one). */
const FOLLOW_BOUND_MS = 24 * 3600 * 1000;

/**
 * What a QEMU destination tells the source beyond Xen's facts, in srRef (a "ref" a QEMU source
 * reads): the NBD server for a block migration, the shared-storage probe file, whether the
 * destination accepts post-copy. networkRef holds the migration URI (tcp:HOST:PORT).
 */
const destinationDataSchema = z.object({
  nbd: z.object({ host: z.string(), port: z.number() }).nullable(),
  probe: z.string(),
  postcopy: z.boolean(),
});
type DestinationData = z.infer<typeof destinationDataSchema>;
const DATA_PREFIX = 'qemu:';

export function destinationData(facts: DestinationFacts): DestinationData {
  if (!facts.srRef.startsWith(DATA_PREFIX)) {
    throw ApplicationFailure.nonRetryable(`${INVALID_HYPERVISOR_TYPE} The destination ${facts.host} is not a QEMU host (hypervisor types: QEMU and xen)`, 'InvalidHypervisorType');
  }
  return destinationDataSchema.parse(JSON.parse(facts.srRef.slice(DATA_PREFIX.length)));
}

export function createQemuMigration(qh: QemuHost, inventory: ReturnType<typeof createQemuInventory>, reportProgress: ProgressReporter, logger: Logger) {
  const name = qh.host.name;

  async function presence(instanceUuid: string): Promise<InstancePresence> {
    const view = await inventory.instanceView(instanceUuid).catch(() => null);
    let migrationTask: string | null = null;
    if (await qh.running(instanceUuid)) {
      const status = await queryMigration((await qh.guest(instanceUuid)).qmp).then((i) => i.status ?? 'none', () => 'none' as const);
      if (UNDER_WAY.includes(status)) migrationTask = `qemu-migration:${status}`;
    }
    return {
      host: name,
      present: view !== null,
      runningHere: view !== null,
      powerState: view?.powerState ?? null,
      residentOn: view ? name : null,
      migrationTask,
      vcpuCap: null,
    };
  }

  /** The probe file Nova's _create_shared_storage_test_file writes, one per instance and destination. */
  const probePath = (uuid: string) => join(qh.imagesDir, `.ferry-shared-storage-probe-${uuid}-${name}`);

  /** Disks a block migration's destination receives into (this host's own disks). */
  const receivedDiskPath = (uuid: string, node: string) => join(qh.disksDir, `${uuid}-${node}.qcow2`);

  /**
   * Nova's pre_live_migration: the destination QEMU started with -incoming defer and the source's
   * spec, an NBD export per disk for a block migration, then migrate-incoming on a free port.
   * Idempotent: a destination already waiting here answers the same address.
   */
  async function prepareDestination(input: CheckDestinationInput): Promise<DestinationFacts> {
    const uuid = input.instance.uuid;
    const travelling = travellingGuestSchema.parse((input.instance as { qemu?: unknown }).qemu);
    const dir = qh.guestDir(uuid);
    const meta = await qh.readMeta(uuid);
    const waiting = meta?.incoming?.uri && (await qh.running(uuid)) ? meta.incoming : null;
    if (!waiting) {
      if (await qh.running(uuid)) throw ApplicationFailure.nonRetryable(`instance ${uuid} already runs on ${name}`, 'MigrationPreCheckError');
      await destroyGuest(dir);
      const disks = [];
      for (const disk of travelling.spec.disks) {
        const path = input.blockMigration ? receivedDiskPath(uuid, disk.node) : disk.path;
        if (input.blockMigration) await createEmptyDisk(path, disk.virtualBytes, disk.format);
        disks.push({ node: disk.node, path, format: disk.format });
      }
      const guest = await QemuGuest.start(dir, { name: travelling.spec.name, memoryMiB: travelling.spec.memoryMiB, machine: travelling.spec.machine, disks, incoming: true });
      qh.adopt(uuid, guest);
      const uri = `tcp:${qh.qemu.listenHost}:${await freePort(qh.qemu.listenHost)}`;
      let nbd: NbdAddress | null = null;
      if (input.blockMigration) {
        nbd = { host: qh.qemu.listenHost, port: await freePort(qh.qemu.listenHost) };
        await exportDisksForIncoming(guest.qmp, nbd, disks.map((d) => d.node));
      }
      // postcopy-ram on the destination only allows it; the source decides (its permit).
      await prepareIncoming(guest.qmp, uri, { postcopy: true });
      await qh.writeMeta({
        uuid,
        cpuModel: travelling.cpuModel,
        incoming: { from: input.sourceHost.name, block: input.blockMigration, startedAt: new Date().toISOString(), uri, nbd: nbd ? `${nbd.host}:${nbd.port}` : null },
      });
    }
    const now = (await qh.readMeta(uuid))?.incoming;
    if (!now?.uri) throw new Error(`the destination of ${uuid} on ${name} lost its incoming address`);
    await writeFile(probePath(uuid), `${uuid}\n`);
    const [nbdHost, nbdPort] = now.nbd ? now.nbd.split(':') : [];
    const data: DestinationData = { nbd: nbdHost && nbdPort ? { host: nbdHost, port: Number(nbdPort) } : null, probe: probePath(uuid), postcopy: true };
    const total = qh.qemu.memoryMiB * 2 ** 20;
    return { host: name, hostUuid: `qemu-${name}`, srRef: `${DATA_PREFIX}${JSON.stringify(data)}`, networkRef: now.uri, memoryFreeBytes: Math.max(0, total - (await qh.memoryUsedBytes())) };
  }

  /** Nova's progress fields as ferry's TransferProgress (the same reporter and display as Xen's). */
  function transferProgress(p: MigrationProgress, pace: { perSecond: number; lastFraction: number; lastAt: number }): TransferProgress {
    const all = p.memory_processed + p.memory_remaining + p.disk_total;
    const done = p.memory_processed + p.disk_processed;
    const fraction = p.status === 'completed' ? 1 : all > 0 ? Math.min(1, done / all) : 0;
    const now = Date.now();
    if (now - pace.lastAt >= 1000) {
      pace.perSecond = Math.max(0, ((fraction - pace.lastFraction) * 1000) / (now - pace.lastAt));
      pace.lastFraction = fraction;
      pace.lastAt = now;
    }
    return {
      fraction,
      memoryTotalBytes: p.memory_total,
      memoryProcessedBytes: p.memory_processed,
      memoryRemainingBytes: p.memory_remaining,
      diskTotalBytes: p.disk_total,
      diskProcessedBytes: p.disk_processed,
      diskRemainingBytes: p.disk_remaining,
      fractionPerSecond: pace.perSecond,
      etaSeconds: pace.perSecond > 0 ? (1 - fraction) / pace.perSecond : null,
      transferPhase: p.status === 'completed' ? 'done' : HANDED_OVER.includes(p.status) || p.status === 'pre-switchover' ? 'stop_and_copy' : 'precopy',
      ...(p.cpuThrottlePercent ? { vcpuCap: 100 - p.cpuThrottlePercent } : {}),
    };
  }

  return {
    /** Nova's check_can_live_migrate_destination, which (as ferry's version 3 asks) also prepares the destination. */
    async checkCanLiveMigrateDestination(input: CheckDestinationInput): Promise<DestinationFacts> {
      await qh.ensureDirs();
      const service = await inventory.hostServiceState();
      if (!service.enabled) throw ApplicationFailure.nonRetryable(`${name} is disabled${service.disabledReason ? `: ${service.disabledReason}` : ' (maintenance)'}`, 'MigrationPreCheckError');
      const parsed = travellingGuestSchema.safeParse((input.instance as { qemu?: unknown }).qemu);
      if (!parsed.success) {
        throw ApplicationFailure.nonRetryable(
          `${INVALID_HYPERVISOR_TYPE} Instance ${input.instance.uuid} runs on ${input.sourceHost.name} (hypervisor type xen); ${name} is QEMU`,
          'InvalidHypervisorType',
        );
      }
      const guest = parsed.data;
      const version = await qh.qemuVersion();
      if (compareVersions(version, guest.qemuVersion) < 0) {
        throw ApplicationFailure.nonRetryable(`Destination ${name} has QEMU ${version}, older than the source's ${guest.qemuVersion}`, 'DestinationHypervisorTooOld');
      }
      if (guest.cpuModel !== qh.qemu.cpuModel) {
        throw ApplicationFailure.nonRetryable(`CPU model of ${name} (${qh.qemu.cpuModel}) is not the instance's (${guest.cpuModel})`, 'InvalidCPUInfo');
      }
      if (!(await qh.machineTypes()).includes(guest.spec.machine)) {
        throw ApplicationFailure.nonRetryable(`${name}'s QEMU has no machine type ${guest.spec.machine}`, 'InvalidCPUInfo');
      }
      const alreadyHere = (await qh.readMeta(input.instance.uuid))?.incoming !== undefined && (await qh.running(input.instance.uuid));
      const free = qh.qemu.memoryMiB * 2 ** 20 - (await qh.memoryUsedBytes()) + (alreadyHere ? guest.spec.memoryMiB * 2 ** 20 : 0);
      if (free < input.instance.memoryBytes) {
        throw ApplicationFailure.nonRetryable(`${name} has ${free} bytes free, the instance needs ${input.instance.memoryBytes}`, 'MigrationPreCheckError');
      }
      if (input.blockMigration && !alreadyHere) {
        const fs = await statfs(qh.disksDir);
        const needed = guest.spec.disks.reduce((sum, d) => sum + d.virtualBytes, 0);
        if (fs.bavail * fs.bsize < needed) throw ApplicationFailure.nonRetryable(`${name} has ${fs.bavail * fs.bsize} bytes of disk free, the block migration needs ${needed}`, 'MigrationPreCheckError');
      }
      return prepareDestination(input);
    },

    /** The destination was prepared by its check: the token only names the driver. */
    async migrateReceive(): Promise<MigrateToken> {
      return { driver: 'qemu' };
    },

    /** Called only when force skipped the check: a QEMU destination needs the instance's spec, which the check carries. */
    async preLiveMigration(): Promise<DestinationFacts> {
      throw ApplicationFailure.nonRetryable(`a QEMU destination (${name}) is prepared by its check; a forced live migration skips it and is not supported`, 'MigrationPreCheckError');
    },

    async logoutMigrateReceive(): Promise<void> {},

    /** Nova's check_can_live_migrate_source: the guest runs here, no migration under way, shared storage probed. */
    async assertCanMigrate(input: AssertCanMigrateInput): Promise<void> {
      const view = await inventory.instanceView(input.instanceUuid);
      if (!view) throw ApplicationFailure.nonRetryable(`instance ${input.instanceUuid} does not run on ${name}`, 'InstanceNotFound');
      const data = destinationData(input.destination);
      const status = (await queryMigration((await qh.guest(input.instanceUuid)).qmp)).status ?? 'none';
      if (UNDER_WAY.includes(status)) throw ApplicationFailure.nonRetryable(`instance ${input.instanceUuid} is already migrating (${status})`, 'MigrationPreCheckError');
      if (!input.blockMigration) {
        // Nova's _check_shared_storage_test_file: the destination's file must be visible here, and the disks on that storage.
        const shared = existsSync(data.probe) && view.qemu.spec.disks.every((d) => qh.onSharedStorage(d.path) && d.path.startsWith(join(data.probe, '..')));
        if (!shared) {
          throw ApplicationFailure.nonRetryable(
            `${name} and ${input.destination.host} do not share the instance's storage: block_migration is needed`,
            'InvalidSharedStorage',
          );
        }
      }
    },

    /**
     * Nova's live_migration and _live_migration_monitor: disks mirrored first (block migration),
     * then QEMU's migration with the policy's capabilities and parameters, followed through
     * query-migrate into Nova's fields; the downtime raised in Nova's steps; the convergence policy
     * applied (force-complete by post-copy when permitted, else by pausing; abort by migrate_cancel).
     */
    async migrateSend(input: MigrateSendInput): Promise<MigrateSendResult> {
      const ctx = Context.current();
      const uuid = input.instanceUuid;
      const started = Date.now();
      if (!(await qh.running(uuid))) {
        throw ApplicationFailure.nonRetryable(`instance ${uuid} does not run on ${name}`, 'InstanceNotFound');
      }
      const guest = await qh.guest(uuid);
      const data = destinationData(input.destination);
      const meta = await qh.readMeta(uuid);
      if (!meta) throw ApplicationFailure.nonRetryable(`instance ${uuid} on ${name} has no meta.json`, 'InstanceNotFound');
      const postcopy = qh.qemu.permitPostCopy && data.postcopy;
      const block = input.blockMigration;
      const spec = guest.spec;
      const nodes = spec.disks.map((d) => d.node);
      const diskBytes: number[] = [];
      for (const d of spec.disks) diskBytes.push(await qh.diskBytes(d.path));
      const steps = downtimeSteps(migrationDataGiB(spec.memoryMiB * 2 ** 20, block ? diskBytes : []), {
        downtimeMs: qh.qemu.downtimeMs,
        steps: qh.qemu.downtimeSteps,
        delaySecondsPerGiB: qh.qemu.downtimeDelaySecondsPerGiB,
      });
      const previous = ctx.info.heartbeatDetails as TransferHeartbeat | undefined;
      const first = await queryMigration(guest.qmp);
      // A guest that arrived here by migration reports that incoming migration as completed: only
      // an outgoing one to this destination, started by an earlier attempt, counts.
      const sentBefore = meta.outgoing?.to === input.destination.host && meta.outgoing.uri === input.destination.networkRef;
      const status = first.status === 'completed' && !sentBefore ? 'none' : (first.status ?? 'none');
      if (status === 'completed') {
        logger.info({ instanceUuid: uuid }, 'the migration already completed (an earlier attempt)');
        return { bytesSent: first.ram?.transferred ?? 0, downtimeMs: first.downtime ?? null, memoryTotalBytes: first.ram?.total ?? 0, diskTotalBytes: 0, transferMs: first['total-time'] ?? 0, alreadyDone: true };
      }
      if (!UNDER_WAY.includes(status)) {
        // An earlier attempt's migration that failed is not started again behind the workflow's back.
        if (previous && (status === 'failed' || status === 'cancelled')) {
          throw ApplicationFailure.nonRetryable(`the migration of ${uuid} ${status} while its agent was away: ${first['error-desc'] ?? ''}`, 'MigrationError');
        }
        await qh.writeMeta({ ...meta, outgoing: { to: input.destination.host, block, uri: input.destination.networkRef, nbd: data.nbd ? `${data.nbd.host}:${data.nbd.port}` : null } });
      } else {
        logger.info({ instanceUuid: uuid, status }, 'found the migration under way (the agent restarted): following it');
      }

      let convergence: ConvergenceState = previous?.convergence ?? startConvergence(started);
      const steering = previous?.steering ?? { vcpuCap: null, paused: false };
      let gaveUp: { why: string; cause: string } | null = null;
      const reporter = progressReporter(input, (p) => reportProgress(input.workflowId, p));
      const pace = { perSecond: 0, lastFraction: 0, lastAt: started };
      let downtime: number | null = null;
      const cancel = new AbortController();
      ctx.cancellationSignal.addEventListener('abort', () => {
        if (ctx.cancellationDetails?.cancelRequested ?? true) cancel.abort();
      });

      const forceComplete = async (why: string) => {
        logger.info({ instanceUuid: uuid, postcopy }, `force-complete: ${why}`);
        const now = (await queryMigration(guest.qmp)).status;
        if (postcopy && now === 'active') await startPostcopy(guest.qmp);
        else if (now === 'active' || now === 'setup') {
          await pauseGuest(guest.qmp);
          steering.paused = true;
        }
      };

      const onProgress = async (p: MigrationProgress) => {
        const now = Date.now();
        const elapsed = (now - convergence.startedAt) / 1000;
        const next = downtimeFor(steps, elapsed, downtime);
        if (next !== null && next !== downtime && p.status === 'active') {
          downtime = next;
          await setMigrationParameters(guest.qmp, { downtimeLimitMs: next });
        }
        const base = transferProgress(p, pace);
        if (input.convergence && p.status === 'active') {
          convergence = observe(convergence, base, now);
          const { action, state } = nextAction(convergence, base, now, input.convergence);
          convergence = state;
          if (action.kind === 'cap') {
            // QEMU's auto-converge throttles the vCPUs itself (cpu-throttle-*); the policy's caps are not applied on top.
            logger.info({ instanceUuid: uuid, cap: action.cap }, `${action.why}: left to QEMU's auto-converge`);
          } else if (action.kind === 'force_complete') {
            await forceComplete(action.why);
          } else if (action.kind === 'abort' && !gaveUp) {
            logger.warn({ instanceUuid: uuid }, action.why);
            gaveUp = { why: action.why, cause: action.cause };
            cancel.abort();
          }
        }
        const progress: TransferProgress = { ...base, ...(steering.paused ? { guestPaused: true } : {}) };
        ctx.heartbeat({ progress, convergence, steering } satisfies TransferHeartbeat);
        await reporter(progress).catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'could not signal progress'));
      };

      let last: MigrationProgress;
      try {
        if (!UNDER_WAY.includes(status)) {
          if (block) {
            if (!data.nbd) throw ApplicationFailure.nonRetryable(`${input.destination.host} exported no disks for a block migration`, 'MigrationPreCheckError');
            // While the disks are mirrored (before QEMU's migration starts): Nova's disk_* fields, heartbeated and reported.
            const beat = setInterval(() => {
              void mirrorProgress(guest.qmp).then(
                async (disk) => {
                  const progress = transferProgress({ ...idle(), disk_total: disk?.totalBytes ?? 0, disk_processed: disk?.processedBytes ?? 0, disk_remaining: disk?.remainingBytes ?? 0 }, pace);
                  ctx.heartbeat({ progress, convergence, steering } satisfies TransferHeartbeat);
                  await reporter(progress);
                },
                () => undefined,
              );
            }, 500);
            try {
              await mirrorDisks(guest.qmp, data.nbd, nodes, {
                timeoutMs: FOLLOW_BOUND_MS,
                signal: cancel.signal,
                ...(qh.qemu.bandwidthMiBps ? { speedBytesPerSecond: qh.qemu.bandwidthMiBps * 2 ** 20 } : {}),
              });
            } finally {
              clearInterval(beat);
            }
          }
          downtime = steps[0]?.downtimeMs ?? null;
          await startMigration(guest.qmp, input.destination.networkRef, {
            ...(qh.qemu.bandwidthMiBps ? { maxBandwidthBytesPerSecond: qh.qemu.bandwidthMiBps * 2 ** 20 } : {}),
            ...(downtime !== null ? { downtimeLimitMs: downtime } : {}),
            autoConverge: qh.qemu.permitAutoConverge && input.convergence?.autoConverge !== false,
            postcopy,
            pauseBeforeSwitchover: block,
          });
        }
        const diskProgress = block ? () => mirrorProgress(guest.qmp) : undefined;
        for (;;) {
          last = await followMigration(guest.qmp, {
            until: [...FINAL_STATUSES, 'pre-switchover'],
            timeoutMs: FOLLOW_BOUND_MS,
            pollMs: POLL_MS,
            signal: cancel.signal,
            onProgress,
            ...(diskProgress ? { diskProgress } : {}),
          });
          if (last.status !== 'pre-switchover') break;
          // The guest is paused at pre-switchover: the mirrors finish (source and copy identical), then QEMU switches.
          await completeMirrors(guest.qmp);
          await continueMigration(guest.qmp);
        }
      } catch (err) {
        if (cancel.signal.aborted) {
          const settled = await cancelMigration(guest.qmp).catch(() => 'failed' as const);
          await cancelMirrors(guest.qmp).catch(() => undefined);
          if (settled === 'completed') last = await followMigration(guest.qmp, { timeoutMs: 10_000 });
          else {
            const policyGaveUp = gaveUp as { why: string; cause: string } | null;
            if (policyGaveUp) throw ApplicationFailure.nonRetryable(policyGaveUp.why, policyGaveUp.cause);
            throw new CancelledFailure(`migration of ${uuid} cancelled on ${name}`);
          }
        } else throw err;
      }
      if (last.status !== 'completed') {
        await cancelMirrors(guest.qmp).catch(() => undefined);
        throw ApplicationFailure.nonRetryable(`migration of ${uuid} to ${input.destination.host} ${last.status}: ${last.error ?? 'no reason given'}`, 'MigrationError');
      }
      await onProgress(last).catch(() => undefined);
      return {
        bytesSent: last.memory_processed + (block ? diskBytes.reduce((a, b) => a + b, 0) : 0),
        downtimeMs: last.downtimeMs,
        memoryTotalBytes: last.memory_total,
        diskTotalBytes: block ? diskBytes.reduce((a, b) => a + b, 0) : 0,
        transferMs: last.totalTimeMs ?? Date.now() - started,
        alreadyDone: false,
      };
    },

    /** Before a rollback: no migration of the guest may still run; answers how the last one ended. */
    async settleMigrationTask({ instanceUuid }: InstanceRef): Promise<{ outcome: 'none' | 'success' | 'failure' | 'cancelled' }> {
      if (!(await qh.running(instanceUuid))) return { outcome: 'none' };
      // Only a migration sent from here counts (a guest that arrived here reports its incoming one).
      if (!(await qh.readMeta(instanceUuid))?.outgoing) return { outcome: 'none' };
      const guest = await qh.guest(instanceUuid);
      const status = await cancelMigration(guest.qmp, 60_000);
      if (status !== 'completed' && !HANDED_OVER.includes(status)) await cancelMirrors(guest.qmp).catch(() => undefined);
      const outcome = status === 'completed' ? 'success' : status === 'failed' ? 'failure' : status === 'cancelled' ? 'cancelled' : status === 'none' ? 'none' : 'failure';
      return { outcome };
    },

    /** Force-complete (Nova's live_migration_force_complete): post-copy when permitted, else the guest paused. */
    async forceCompleteGuest({ instanceUuid }: InstanceRef): Promise<{ paused: boolean }> {
      if (!(await qh.running(instanceUuid))) return { paused: false };
      const guest = await qh.guest(instanceUuid);
      const status = (await queryMigration(guest.qmp)).status;
      if (status !== 'active') return { paused: false };
      if (qh.qemu.permitPostCopy && (await qh.readMeta(instanceUuid))?.outgoing) {
        logger.info({ instanceUuid }, 'force-complete by post-copy (permitted on this host)');
        await startPostcopy(guest.qmp);
        return { paused: false };
      }
      logger.info({ instanceUuid }, 'force-complete by pausing the guest (post-copy not permitted on this host)');
      await pauseGuest(guest.qmp);
      return { paused: true };
    },

    /** QEMU throttles the guest itself (auto-converge): nothing to apply. */
    async capGuestVcpu(): Promise<void> {},

    /** Nova's post_live_migration on the source: its QEMU ended, its directory gone, its disks too after a block migration. */
    async postLiveMigration({ instanceUuid }: InstanceRef): Promise<void> {
      const dir = qh.guestDir(instanceUuid);
      if (!existsSync(dir)) return;
      if (await inventory.instanceView(instanceUuid).catch(() => null)) {
        throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} still runs on the source ${name}`, 'MigrationNotFinished');
      }
      const meta = await qh.readMeta(instanceUuid);
      const spec = await qh.readSpec(instanceUuid);
      qh.forget(instanceUuid);
      await destroyGuest(dir);
      if (meta?.outgoing?.block && spec) for (const disk of spec.disks) await rm(disk.path, { force: true });
    },

    /** Nova's post_live_migration_at_destination: the guest runs here as an ordinary guest of this host. */
    async postLiveMigrationAtDestination({ instanceUuid }: InstanceRef): Promise<InstancePresence> {
      if (!(await qh.running(instanceUuid))) throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} does not run on ${name}`, 'MigrationNotFinished');
      const guest = await qh.guest(instanceUuid);
      // The destination leaves inmigrate a moment after the source says completed.
      const deadline = Date.now() + 30_000;
      let state = await guest.runState();
      while (state === 'inmigrate' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        state = await guest.runState();
      }
      const meta = await qh.readMeta(instanceUuid);
      if (meta?.incoming) {
        await stopDiskExports(guest.qmp).catch(() => undefined);
        // Force-complete paused the source; its run state travelled: resume it, as libvirt's Finish does.
        if (state === 'paused') await resumeGuest(guest.qmp);
        await rm(probePath(instanceUuid), { force: true });
        await writeFile(join(qh.guestDir(instanceUuid), 'guest.json'), `${JSON.stringify({ ...guest.spec, incoming: false }, null, 2)}\n`);
        await qh.writeMeta({ uuid: meta.uuid, cpuModel: meta.cpuModel });
      }
      const found = await presence(instanceUuid);
      if (!found.runningHere) throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} does not run on ${name} (${state})`, 'MigrationNotFinished');
      return found;
    },

    /** Nova's rollback_live_migration_at_destination: the incoming QEMU and its received disks gone, never a guest that switched over. */
    async rollbackLiveMigrationAtDestination(input: RollbackAtDestinationInput): Promise<{ removed: boolean; kept?: string }> {
      const uuid = input.instanceUuid;
      await rm(probePath(uuid), { force: true });
      const dir = qh.guestDir(uuid);
      if (!existsSync(dir)) return { removed: false };
      const meta = await qh.readMeta(uuid);
      if (!meta?.incoming) return (await qh.running(uuid)) ? { removed: false, kept: `instance ${uuid} is an ordinary guest of ${name}` } : { removed: false };
      if (await qh.running(uuid)) {
        const state = await (await qh.guest(uuid)).runState().catch(() => 'unknown');
        if (state !== 'inmigrate') return { removed: false, kept: `its QEMU is ${state}: it switched over` };
      }
      qh.forget(uuid);
      await destroyGuest(dir);
      if (meta.incoming.block) for (const file of await receivedDisks(uuid)) await rm(file, { force: true });
      return { removed: true };
    },

    /** Nova's _rollback_live_migration on the source: mirrors gone, the guest running as before. */
    async rollbackLiveMigration(input: RollbackSourceInput): Promise<InstancePresence> {
      const uuid = input.instanceUuid;
      if (await qh.running(uuid)) {
        const guest = await qh.guest(uuid);
        await cancelMirrors(guest.qmp).catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'cancelling the mirrors failed'));
        if (input.resume && (await guest.runState()) === 'paused') await resumeGuest(guest.qmp);
        const meta = await qh.readMeta(uuid);
        if (meta?.outgoing) await qh.writeMeta({ uuid: meta.uuid, cpuModel: meta.cpuModel });
      }
      return presence(uuid);
    },

    async instancePresence({ instanceUuid }: InstanceRef): Promise<InstancePresence> {
      return presence(instanceUuid);
    },

    /**
     * Ends destinations that waited too long for a stream that never came: the check that started
     * one was for a candidate the migration then did not choose (its source check failed), and no
     * rollback reaches a host that was not chosen. As xapi expires a migrate_receive session.
     */
    async reapStaleIncoming(olderThanMs = STALE_INCOMING_MS): Promise<string[]> {
      const reaped: string[] = [];
      for (const uuid of await qh.guestUuids()) {
        const meta = await qh.readMeta(uuid).catch(() => null);
        if (!meta?.incoming || Date.now() - Date.parse(meta.incoming.startedAt) < olderThanMs) continue;
        if (await qh.running(uuid)) {
          const guest = await qh.guest(uuid).catch(() => null);
          const state = guest ? await guest.runState().catch(() => 'unknown') : 'unknown';
          const stream = guest ? ((await queryMigration(guest.qmp).catch(() => null))?.status ?? 'none') : 'none';
          // Only a destination still waiting: never one that receives or already runs the guest.
          if (state !== 'inmigrate' || (stream !== 'none' && stream !== 'setup')) continue;
        }
        logger.warn({ instanceUuid: uuid, startedAt: meta.incoming.startedAt }, 'ending a destination no migration came to');
        qh.forget(uuid);
        await destroyGuest(qh.guestDir(uuid));
        await rm(probePath(uuid), { force: true });
        if (meta.incoming.block) for (const file of await receivedDisks(uuid)) await rm(file, { force: true });
        reaped.push(uuid);
      }
      return reaped;
    },
  };

  async function receivedDisks(uuid: string): Promise<string[]> {
    return (await readdir(qh.disksDir).catch(() => [] as string[])).filter((f) => f.startsWith(`${uuid}-`)).map((f) => join(qh.disksDir, f));
  }
}

/** A reading with nothing moved yet (the mirrors' heartbeat before QEMU's migration starts). */
function idle(): MigrationProgress {
  return {
    status: 'setup', memory_total: 0, memory_processed: 0, memory_remaining: 0, disk_total: 0, disk_processed: 0, disk_remaining: 0, progressPercent: 0,
    totalTimeMs: null, downtimeMs: null, expectedDowntimeMs: null, setupTimeMs: null, dirtyPagesPerSecond: null, dirtySyncCount: null, mbps: null,
    cpuThrottlePercent: null, precopyBytes: null, downtimeBytes: null, postcopyBytes: null, error: null,
  };
}
