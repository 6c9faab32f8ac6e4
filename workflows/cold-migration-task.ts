// ColdMigrationTask: Nova's resize and cold migrate (the "XenServer Migrations" blueprint; Nova's
// compute manager prep_resize, resize_instance, finish_resize, confirm_resize, revert_resize and the
// xenapi driver's migrate_disk_and_power_off, finish_migration, confirm_migration,
// finish_revert_migration) as the body of a durable workflow. execute() reads like the blueprint's
// sequence: check, schedule, prepare the destination, snapshot, send the base while the VM runs,
// shut down, send the leaf, finish on the destination, then wait for the user to confirm or revert.
//
// Nova kept this state in a database row that a compute restart could strand in RESIZE_MIGRATING;
// here a crash of any ferry process resumes the step it was at. A failure before the destination
// VM started rolls back (nothing left on the destination, the snapshot gone, the source VM running
// again if it ran). Undo is registered before each do-step (destTouched, sourceTouched) and runs in
// a non-cancellable scope; a step that cannot be undone within hostTimeout is said, never swallowed.
import { ApplicationFailure, CancellationScope, ParentClosePolicy, condition, isCancellation, log, proxyActivities, setHandler, startChild, uuid4, workflowInfo } from '@temporalio/workflow';
import type { HostActivities } from '../activities/host';
import type {
  FinishMigrationResult,
  PowerOffResult,
  ResizeChain,
  ResizeDestination,
  ResizeSource,
  TransferVhdResult,
} from '../activities/host/cold-migration';
import type { HostSummary } from '../activities/types';
import type { FerryConfig } from '../lib/config';
import { InstanceUuid } from '../lib/search-attributes';
import { CANDIDATES_PER_ASK, conductorLocal, hostChecks, hostStepsWithin } from './activities';
import { ColdMigrationBoard } from './cold-migration-board';
import { COLD_MIGRATION_CLEANUP_WORKFLOW, type ColdCleanupStep } from './cold-migration-cleanup';
import { checkFlavor } from './cold-migration-flavor';
import {
  coldMigrationStatusQuery,
  confirmResizeUpdate,
  newColdMigrationView,
  revertResizeUpdate,
  type ColdMigrationRequest,
  type ColdMigrationStatus,
  type ColdMigrationView,
  type InstanceSize,
} from './cold-migration-definitions';
import type { InstanceView, SlotGrant } from './definitions';
import { describeFailure } from './outcome';
import { SlotLease } from './slot-lease';

type Policy = FerryConfig['migration'];

/** The slowest transfer a VHD may take, as a rate (bytes per second), on top of hostTimeout: a bound, not a forecast. */
const SLOWEST_TRANSFER_BPS = 2 ** 20;

/** What a coldMigration run returns. */
export interface ColdMigrationOutcome {
  status: ColdMigrationStatus;
  sourceHost: string | null;
  destHost: string | null;
  destInstanceUuid: string | null;
  diskBytesSent: number;
  downtimeMs: number | null;
  message: string | null;
  /** Each VHD's transfer: its place in the chain, its size, whether a retry followed the task an earlier attempt started, and what the plugin reported rsync sent. */
  transfers: Array<{ seqNum: number; bytes: number; followed: boolean; plugin: Record<string, unknown> }>;
}

/** Without an auto-confirm window, how long a wait for confirm or revert lasts before it looks again. */
const DECISION_WAIT = '1 day';

/** The statuses before `finished`: confirm and revert have nothing to act on yet. */
const NOT_FINISHED: ReadonlySet<ColdMigrationStatus> = new Set(['pre-migrating', 'migrating', 'post-migrating']);

export class ColdMigrationTask {
  private readonly info = workflowInfo();
  private readonly board: ColdMigrationBoard;
  private readonly lease: SlotLease;
  /** The migration's id on the hosts (what it marks on the snapshot, the destination VM, its disks). */
  private readonly migrationId = this.info.runId;
  private policy: Policy | null = null;
  private source: HostSummary | null = null;
  private dest: HostSummary | null = null;
  private instance: ResizeSource | null = null;
  private newSize: InstanceSize | null = null;
  private prepared: ResizeDestination | null = null;
  private chain: ResizeChain | null = null;
  /** Fresh uuids of the imported chain, chosen once so that a retried import names the same. */
  private uuidStack: string[] = [];
  private powerOff: PowerOffResult | null = null;
  private finished: FinishMigrationResult | null = null;
  /** Something may have arrived on the destination (staged VHDs, imported disks, the VM). */
  private destTouched = false;
  /** The source was changed (snapshot, shutdown). */
  private sourceTouched = false;
  private decision: 'confirm' | 'revert' | null = null;
  private readonly transfers: ColdMigrationOutcome['transfers'] = [];
  /** The slot, with the memory other migrations hold on each host (the scheduler counts it as used). */
  private grant: SlotGrant | null = null;

  constructor(private readonly input: ColdMigrationRequest) {
    this.board = new ColdMigrationBoard(
      newColdMigrationView({
        workflowId: this.info.workflowId,
        runId: this.info.runId,
        instanceUuid: input.instanceUuid,
        flavor: input.flavor,
        createdAt: new Date(this.info.startTime.getTime()).toISOString(),
        requestedBy: input.requestedBy,
      }),
    );
    this.lease = new SlotLease(this.info.workflowId, {
      onQueued: () => this.board.enter('scheduling'),
      onGranted: () => this.board.enter('scheduling'),
    });
    // As live migrations from version 3 on: the entity asked through local activities, with updates that answer at once.
    this.lease.callThrough(conductorLocal);
  }

  installHandlers(): void {
    setHandler(coldMigrationStatusQuery, () => this.board.view);
    setHandler(confirmResizeUpdate, () => this.decide('confirm'), { validator: () => this.validateDecision('confirm') });
    setHandler(revertResizeUpdate, () => this.decide('revert'), { validator: () => this.validateDecision('revert') });
    this.lease.install();
  }

  async execute(): Promise<ColdMigrationOutcome> {
    try {
      try {
        await this.checkAndSchedule();
        await this.migrateDiskAndPowerOff();
        await this.finishMigration();
      } catch (err) {
        return await this.rollback(err);
      }
      // The VM runs on the destination: the transfer's slot goes back while the user decides.
      await CancellationScope.nonCancellable(() => this.lease.release());
      const decision = await this.verifyResize();
      await CancellationScope.nonCancellable(() => (decision === 'confirm' ? this.confirmResize() : this.revertResize()));
      return this.outcome();
    } finally {
      await CancellationScope.nonCancellable(() => this.lease.release());
    }
  }

  // ---- the blueprint's story ------------------------------------------------------------------

  /** Nova's resize API checks and the conductor's scheduling, then prep_resize on the destination. */
  private async checkAndSchedule(): Promise<void> {
    const uuid = this.input.instanceUuid;
    const live = await conductorLocal.runningLiveMigration({ instanceUuid: uuid });
    if (live) throw ApplicationFailure.nonRetryable(`instance ${uuid} is being live-migrated (workflow ${live}): one operation per instance at a time`, 'InstanceBusy');
    const plan = await conductorLocal.planLiveMigration.executeWithOptions({ summary: `where is ${uuid}?` }, [{ instanceUuid: uuid, requestedHost: this.input.host }]);
    this.policy = plan.policy;
    const source = plan.source;
    this.source = source;
    const instance = await this.hostSteps(source).checkInstanceForResize.executeWithOptions({ summary: `${uuid} on ${source.name}: running or halted?` }, [{ instanceUuid: uuid }]);
    this.instance = instance;
    const { oldSize, newSize } = checkFlavor(this.input.flavor, instance);
    this.newSize = newSize;
    this.board.source(source.name, oldSize, newSize);
    const requested = plan.requested;
    if (requested) {
      // Nova's allow_resize_to_same_host defaults to false: never the source.
      if (requested.name === source.name) {
        throw ApplicationFailure.nonRetryable(`Unable to migrate instance (${uuid}) to current host (${requested.name}).`, 'UnableToMigrateToSelf');
      }
      if (!requested.up) throw ApplicationFailure.nonRetryable(`requested host ${requested.name} is down: ${requested.downReason}`, 'ComputeServiceUnavailable');
    }
    this.board.enter('scheduling');
    this.grant = await this.lease.acquire({ sourceHost: source.name, destHost: requested?.name ?? null, memoryBytes: newSize.ramMiB * 2 ** 20, limits: (this.policy as Policy).limits });
    await this.findDestination(source, instance, newSize, requested);
  }

  /** Schedule candidates with room for the new size; the first whose prep_resize passes is the destination. */
  private async findDestination(source: HostSummary, instance: ResizeSource, size: InstanceSize, requested: HostSummary | null): Promise<void> {
    const memoryBytes = size.ramMiB * 2 ** 20;
    const attempts: string[] = [];
    const tried: string[] = [];
    const view: InstanceView = {
      uuid: instance.instanceUuid,
      name: instance.name,
      powerState: instance.powerState,
      host: source.name,
      memoryBytes,
      vcpus: size.vcpus,
      vcpuCap: null,
      diskBytes: size.diskBytes,
      // The disks always move: any pool will do.
      storage: 'local',
    };
    let page: { candidates: HostSummary[]; more: boolean } = requested ? { candidates: [requested], more: false } : await this.schedule(view, source, tried, attempts);
    for (;;) {
      for (const candidate of page.candidates) {
        tried.push(candidate.name);
        if (!requested) {
          const refused = await this.lease.reserveDestination(candidate, memoryBytes);
          if (refused) {
            attempts.push(`${candidate.name}: ${refused}`);
            continue;
          }
        }
        try {
          this.board.enter('prepResize');
          this.prepared = await hostChecks(candidate.queue).prepResize.executeWithOptions({ summary: `prep_resize on ${candidate.name}: ${memoryBytes} bytes of memory, ${size.diskBytes} bytes of disk` }, [
            { instanceUuid: instance.instanceUuid, memoryBytes, diskBytes: size.diskBytes },
          ]);
          this.dest = candidate;
          this.board.destination(candidate.name);
          return;
        } catch (err) {
          if (isCancellation(err)) throw err;
          attempts.push(`${candidate.name}: ${describeFailure(err).message}`);
          if (!requested) await this.lease.releaseDestination();
        }
      }
      if (!page.more) break;
      page = await this.schedule(view, source, tried, attempts);
    }
    throw ApplicationFailure.nonRetryable(`No valid host was found. ${attempts.join('; ') || 'no other host in the cluster'}`, 'NoValidHost');
  }

  private async schedule(instance: InstanceView, source: HostSummary, excluded: string[], attempts: string[]): Promise<{ candidates: HostSummary[]; more: boolean }> {
    const scheduled = await conductorLocal.scheduleDestinations.executeWithOptions({ summary: `${instance.name} (${instance.memoryBytes} bytes) from ${source.name}` }, [
      { instance, source, excluded, blockMigration: true, reservedBytes: this.grant?.reservedBytes ?? {}, limit: CANDIDATES_PER_ASK },
    ]);
    for (const r of scheduled.rejected) if (!attempts.some((a) => a.startsWith(`${r.host}:`))) attempts.push(`${r.host}: ${r.reason}`);
    return { candidates: scheduled.candidates, more: scheduled.moreCandidates > 0 };
  }

  /**
   * Nova's migrate_disk_and_power_off (_migrate_disk_resizing_up): snapshot, send the snapshot's
   * immutable base while the VM runs, shut the VM down, send the leaf it wrote since.
   */
  private async migrateDiskAndPowerOff(): Promise<void> {
    const source = this.source as HostSummary;
    const uuid = this.input.instanceUuid;
    this.board.enter('snapshot', 'migrating');
    this.sourceTouched = true; // before the do-step: a snapshot that timed out may still have been taken
    const chain = await this.hostSteps(source).snapshotForResize.executeWithOptions({ summary: `VM.snapshot of ${uuid}` }, [{ instanceUuid: uuid, migrationId: this.migrationId }]);
    this.chain = chain;
    this.uuidStack = [chain.leafVdiUuid, ...chain.baseVdiUuids].map(() => uuid4());
    this.board.disk(0, chain.baseBytes);
    this.board.enter('transferBase');
    this.destTouched = true; // staged VHDs may arrive from the first byte on
    let sent = 0;
    for (const [i, vdiUuid] of chain.baseVdiUuids.entries()) {
      const done = await this.transferVhd(vdiUuid, i + 1, `base ${i + 1} of ${chain.baseVdiUuids.length}`);
      sent += done.bytes;
      this.board.disk(sent, null);
    }
    this.board.enter('shutdown');
    this.powerOff = await this.hostShutdown(source).powerOffForResize.executeWithOptions({ summary: `shut ${uuid} down (clean, hard after ${this.input.cleanShutdownTimeoutSeconds} s)` }, [
      { instanceUuid: uuid, cleanShutdownTimeoutSeconds: this.input.cleanShutdownTimeoutSeconds },
    ]);
    this.board.enter('transferLeaf');
    const leaf = await this.transferVhd(chain.leafVdiUuid, 0, 'the leaf');
    sent += leaf.bytes;
    this.board.disk(sent, sent);
  }

  /** One VHD to the destination's staging area (Nova's _migrate_vhd), followed to its end. */
  private async transferVhd(vdiUuid: string, seqNum: number, what: string): Promise<TransferVhdResult> {
    const source = this.source as HostSummary;
    const dest = this.prepared as ResizeDestination;
    const done = await this.hostTransfer(source).transferVhd.executeWithOptions({ summary: `rsync ${what} (${vdiUuid}) ${source.name} → ${dest.host}` }, [
      { instanceUuid: this.input.instanceUuid, vdiUuid, destAddress: dest.address, srPath: (this.chain as ResizeChain).srPath, seqNum },
    ]);
    this.transfers.push({ seqNum, bytes: done.bytes, followed: done.followed, plugin: done.plugin });
    return done;
  }

  /** Nova's finish_migration: the disks into the SR, the VM with its new size, started. */
  private async finishMigration(): Promise<void> {
    const dest = this.dest as HostSummary;
    const instance = this.instance as ResizeSource;
    const size = this.newSize as InstanceSize;
    this.board.enter('finishMigration', 'post-migrating');
    const powerOn = instance.powerState === 'Running';
    const finished = await this.hostSteps(dest).finishMigration.executeWithOptions({ summary: `finish_migration of ${instance.name} on ${dest.name}` }, [
      {
        instanceUuid: instance.instanceUuid,
        migrationId: this.migrationId,
        name: instance.name,
        srPath: (this.prepared as ResizeDestination).srPath,
        uuidStack: this.uuidStack,
        vcpus: size.vcpus,
        memoryBytes: size.ramMiB * 2 ** 20,
        diskBytes: size.diskBytes,
        vifs: instance.vifs,
        ...(instance.boot ? { boot: instance.boot } : {}),
        powerOn,
      },
    ]);
    this.finished = finished;
    const from = this.powerOff?.shutdownStartedAtMs ?? null;
    const downtime = powerOn && from !== null && finished.startedAtMs !== null ? Math.max(0, finished.startedAtMs - from) : null;
    this.board.started(finished.destInstanceUuid, downtime);
    if (this.newSize) this.newSize = { ...this.newSize, diskBytes: finished.diskBytes };
  }

  /** VERIFY_RESIZE: the user confirms or reverts; the auto-confirm (a durable timer) confirms when the window ends. */
  private async verifyResize(): Promise<'confirm' | 'revert'> {
    this.board.enter('verifyResize', 'finished');
    const window = this.input.autoConfirmSeconds || (this.policy?.resizeConfirmWindowSeconds ?? 0);
    try {
      if (window > 0) {
        this.board.autoConfirmAt(new Date(Date.now() + window * 1000).toISOString());
        if (!(await condition(() => this.decision !== null, window * 1000))) {
          log.info('the resize confirm window ended: confirming', { seconds: window });
          this.decide('confirm');
        }
      } else {
        // Nova's VERIFY_RESIZE waits for the user without end; here every wait has a bound, so it
        // looks again each day (a timer a day in the history while nobody decides).
        while (!(await condition(() => this.decision !== null, DECISION_WAIT))) log.info('still waiting for confirm or revert');
      }
    } catch (err) {
      // A Temporal cancel request while the user decides: the safe way back is a revert.
      if (!isCancellation(err)) throw err;
      this.decide('revert');
    }
    this.board.autoConfirmAt(null);
    return this.decision as 'confirm' | 'revert';
  }

  /** Nova's confirm_resize: the source VM, its disks and the snapshot go. */
  private async confirmResize(): Promise<void> {
    const source = this.source as HostSummary;
    const args = { instanceUuid: this.input.instanceUuid, migrationId: this.migrationId };
    const done = await this.onHost(source, () =>
      this.hostSteps(source).confirmMigration.executeWithOptions({ summary: `destroy the old ${this.input.instanceUuid} on ${source.name}` }, [args]),
    );
    if (done === 'timed out') {
      const cleanup = await this.leaveCleanup(source, [{ activity: 'confirmMigration', args }]);
      this.end('error', { type: 'ComputeServiceUnavailable', message: `confirmed, but ${source.name} did not destroy the old VM within ${this.hostTimeout()} s: left to ${cleanup}` });
      return;
    }
    this.end('confirmed', null);
  }

  /** Nova's revert_resize (destination) and finish_revert_resize (source). */
  private async revertResize(): Promise<void> {
    const left = await this.undo();
    if (left.length > 0) {
      this.end('error', { type: 'ComputeServiceUnavailable', message: `revert: ${left.join(' and ')} did not answer within ${this.hostTimeout()} s` });
      return;
    }
    this.end('reverted', null);
  }

  // ---- rollback ---------------------------------------------------------------------------------

  private async rollback(err: unknown): Promise<ColdMigrationOutcome> {
    const failure = isCancellation(err) ? { type: 'Cancelled', message: 'cancelled' } : describeFailure(err);
    this.board.failed(failure);
    const left = await CancellationScope.nonCancellable(async () => {
      this.board.enter('rollback');
      const hosts = await this.undo();
      await this.lease.release();
      return hosts;
    });
    const message = left.length > 0 ? `${failure.message}; rollback: ${left.join(' and ')} did not answer within ${this.hostTimeout()} s` : failure.message;
    this.end('error', { type: failure.type, message });
    if (isCancellation(err)) throw err;
    throw ApplicationFailure.nonRetryable(message, failure.type);
  }

  /**
   * Undoes what was done, destination first (nothing of the copy may stay), then the source: the
   * snapshot goes and the VM runs again if it ran. Answers the steps a host did not do in time.
   */
  private async undo(): Promise<string[]> {
    const left: string[] = [];
    const dest = this.dest;
    const source = this.source;
    if (dest && this.destTouched) {
      const args = { migrationId: this.migrationId, uuidStack: this.uuidStack };
      const done = await this.onHost(dest, () => this.hostSteps(dest).revertMigrationAtDestination.executeWithOptions({ summary: `remove the copy on ${dest.name}` }, [args]));
      if (done === 'timed out') left.push(`${dest.name} (remove the copy: left to ${await this.leaveCleanup(dest, [{ activity: 'revertMigrationAtDestination', args }])})`);
    }
    if (source && this.sourceTouched) {
      const args = { instanceUuid: this.input.instanceUuid, migrationId: this.migrationId, powerOn: this.instance?.powerState === 'Running' };
      const done = await this.onHost(source, () =>
        this.hostSteps(source).finishRevertMigration.executeWithOptions({ summary: `${this.input.instanceUuid} back as it was on ${source.name}` }, [args]),
      );
      if (done === 'timed out') left.push(`${source.name} (restore the VM: left to ${await this.leaveCleanup(source, [{ activity: 'finishRevertMigration', args }])})`);
    }
    return left;
  }

  /** Hands steps a host could not do in time to a coldMigrationCleanup workflow that waits for it; answers its id. */
  private async leaveCleanup(host: HostSummary, steps: ColdCleanupStep[]): Promise<string> {
    const workflowId = `cold-migration-cleanup-${this.info.runId}-${host.name}`;
    await startChild(COLD_MIGRATION_CLEANUP_WORKFLOW, {
      workflowId,
      args: [{ migrationWorkflowId: this.info.workflowId, instanceUuid: this.input.instanceUuid, host: host.name, queue: host.queue, steps }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: [{ key: InstanceUuid, value: this.input.instanceUuid }],
      staticSummary: `cleanup of ${this.input.instanceUuid} on ${host.name}: ${steps.map((s) => s.activity).join(', ')}`,
    });
    this.board.cleanup({ workflowId, host: host.name, steps: steps.map((s) => s.activity) });
    return workflowId;
  }

  // ---- confirm and revert -------------------------------------------------------------------------

  private decide(decision: 'confirm' | 'revert'): ColdMigrationView {
    if (this.decision === null) {
      this.decision = decision;
      this.board.enter(decision === 'confirm' ? 'confirmResize' : 'revertResize', decision === 'confirm' ? 'confirming' : 'reverting');
    }
    return this.board.view;
  }

  /** Refuses, with why, a confirm or revert the migration's status does not allow; a repeat is accepted. */
  private validateDecision(asked: 'confirm' | 'revert'): void {
    const status = this.board.status;
    if (this.decision === asked) return;
    if (this.decision !== null) {
      throw new Error(asked === 'revert' ? 'cannot revert: the resize was already confirmed' : 'cannot confirm: the resize was already reverted');
    }
    if (status === 'error') throw new Error(`cannot ${asked}: the migration failed (${this.board.view.error?.message ?? 'error'})`);
    if (NOT_FINISHED.has(status)) throw new Error(`cannot ${asked}: the migration is ${status}, not finished yet`);
  }

  // ---- bounded waits on hosts -----------------------------------------------------------------------

  private hostTimeout(): number {
    return this.policy?.hostTimeout ?? 300;
  }

  private hostSteps(host: HostSummary) {
    return hostStepsWithin(host.queue, this.hostTimeout());
  }

  /** The shutdown: the clean timeout, then a hard shutdown, plus a host's absence. */
  private hostShutdown(host: HostSummary) {
    return proxyActivities<HostActivities>({
      taskQueue: host.queue,
      scheduleToCloseTimeout: `${this.input.cleanShutdownTimeoutSeconds + this.hostTimeout()}s`,
      startToCloseTimeout: `${this.input.cleanShutdownTimeoutSeconds + 60}s`,
      heartbeatTimeout: '30s',
      retry: { initialInterval: '1s', maximumInterval: '10s' },
    });
  }

  /**
   * A VHD's transfer: heartbeats (its task and bytes); a retry after an agent restart follows the
   * task. Bounded by hostTimeout plus the disk at 1 MiB/s.
   */
  private hostTransfer(host: HostSummary) {
    const disk = this.newSize?.diskBytes ?? 0;
    return proxyActivities<HostActivities>({
      taskQueue: host.queue,
      scheduleToCloseTimeout: `${Math.ceil(this.hostTimeout() + disk / SLOWEST_TRANSFER_BPS)}s`,
      // The agent heartbeats after each event.from (1 s); a killed agent's attempt is retried after this.
      heartbeatTimeout: '15s',
      cancellationType: 'WAIT_CANCELLATION_COMPLETED',
      retry: { initialInterval: '1s', maximumInterval: '10s', nonRetryableErrorTypes: ['TASK_CANCELLED'] },
    });
  }

  /** Runs an undo or confirm step; a host that does not answer within hostTimeout gives 'timed out'. */
  private async onHost<T>(host: HostSummary, step: () => Promise<T>): Promise<T | 'timed out'> {
    try {
      return await step();
    } catch (err) {
      if (!isTimeout(err)) throw err;
      log.warn('a host did not answer in time', { host: host.name });
      return 'timed out';
    }
  }

  // ---- endings ----------------------------------------------------------------------------------------

  private end(status: 'confirmed' | 'reverted' | 'error', error: { type: string; message: string } | null): void {
    if (error) this.board.failed(error);
    this.board.enter('done', status);
  }

  private outcome(): ColdMigrationOutcome {
    const v = this.board.view;
    return {
      status: v.status,
      sourceHost: v.sourceHost,
      destHost: v.destHost,
      destInstanceUuid: v.destInstanceUuid,
      diskBytesSent: v.diskProcessedBytes,
      downtimeMs: v.downtimeMs,
      message: v.error?.message ?? null,
      transfers: this.transfers,
    };
  }
}

/** A step that ran out of its schedule-to-close bound (as live-migration-task.ts reads it). */
function isTimeout(err: unknown): boolean {
  let e = err as { name?: string; cause?: unknown; retryState?: unknown } | undefined;
  while (e) {
    if (e.name === 'TimeoutFailure' || e.retryState === 'TIMEOUT') return true;
    e = e.cause as typeof e;
  }
  return false;
}
