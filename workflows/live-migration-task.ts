// LiveMigrationTask: Nova's conductor live migration (nova/conductor/tasks/live_migrate.py) as the
// body of a durable workflow. execute() reads like the conductor's _execute(): check the instance
// and its host, wait for a slot, find a destination, prepare it, send the VM, finish on both hosts.
// A failure after the destination was touched runs Nova's _rollback_live_migration, which never
// destroys or shuts down the copy that runs: when the source copy may be gone, the destination is
// asked first. Every wait is bounded by the policy: a host that does not come back in time ends the
// migration in Nova's error status, and what is left to undo goes to a migrationCleanup workflow.
import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  ParentClosePolicy,
  condition,
  isCancellation,
  log,
  patched,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import type { DestinationFacts, HostSummary, InstancePresence, MigrateSendResult, MigrateToken } from '../activities/types';
import { policyOtherConfigKeys, resolveMigrationPolicy } from '../activities/conductor/migration-policy';
import type { FerryConfig } from '../lib/config';
import { InstanceUuid } from '../lib/search-attributes';
import { CANDIDATES_PER_ASK, CHECK_START_SECONDS, conductor, conductorLocal, hostChecks, hostStepsWithin, hostTransferWithin } from './activities';
import { collectClusterView, type ClusterHost, type ClusterSnapshot } from './cluster';
import type { ConvergencePolicy } from './convergence';
import {
  abortSignal,
  abortUpdate,
  forceCompleteSignal,
  forceCompleteUpdate,
  newMigrationView,
  progressSignal,
  statusQuery,
  type ControlAccepted,
  type InstanceView,
  type LiveMigrationRequest,
  type MigrationStatusView,
  type SlotGrant,
  type TransferProgress,
} from './definitions';
import { MIGRATION_CLEANUP_WORKFLOW, type CleanupStep } from './migration-cleanup';
import { describeFailure, type MigrationOutcome } from './outcome';
import { SlotLease } from './slot-lease';
import { StatusBoard } from './status-board';

type Policy = FerryConfig['migration'];

/** How often the instance is looked for again when the host the index named says it is not there. */
const MAX_RELOCATIONS = 2;

/** Failures of the transfer that are the policy's own abort: the migration ends cancelled, as an abort. */
const POLICY_ABORTS = new Set(['CompletionTimeout', 'ProgressTimeout']);

interface Destination {
  host: HostSummary;
  block: boolean;
  token: MigrateToken | null;
  /** What the destination's own check answered (null when force skipped it). */
  facts: DestinationFacts | null;
}

/** The progress of a transfer that completed, from its result. */
function transferDone(result: MigrateSendResult, last: TransferProgress | null): TransferProgress {
  return {
    fraction: 1,
    memoryTotalBytes: result.memoryTotalBytes,
    memoryProcessedBytes: result.memoryTotalBytes,
    memoryRemainingBytes: 0,
    diskTotalBytes: result.diskTotalBytes,
    diskProcessedBytes: result.diskTotalBytes,
    diskRemainingBytes: 0,
    fractionPerSecond: 0,
    etaSeconds: 0,
    transferPhase: 'done',
    ...(last?.vcpuCap !== undefined ? { vcpuCap: last.vcpuCap } : {}),
    ...(last?.guestPaused !== undefined ? { guestPaused: last.guestPaused } : {}),
  };
}

export class LiveMigrationTask {
  private readonly info = workflowInfo();
  private readonly board: StatusBoard;
  private readonly lease: SlotLease;
  /** The steps an abort interrupts: everything before the point of no return. */
  private readonly abortable = new CancellationScope();
  private policy: Policy | null = null;
  private instance: InstanceView | null = null;
  private source: HostSummary | null = null;
  private dest: Destination | null = null;
  private destTouched = false;
  private sourceTouched = false;
  private transferring = false;
  private pausedByFerry = false;
  private abortReason: string | null = null;
  private transfer: MigrateSendResult | null = null;
  private grant: SlotGrant | null = null;
  /** The host step that last failed for good (not a timeout), for the error message. */
  private failedStep: string | null = null;
  /**
   * Version 3 (patch 'host-inventory'): hosts from the inventory, the conductor's steps as local
   * activities, the destination's check doubling as pre_live_migration, the slot given back as soon
   * as the transfer is over.
   */
  private v3 = false;
  /**
   * Patch 'receive-session-logout' (inside version 3): the session of each host.migrate_receive
   * token is logged out (Nova's check_can_live_migrate_destination_cleanup), a candidate's not chosen
   * at once, the chosen destination's after the transfer or the rollback.
   */
  private logoutSessions = false;
  /** The chosen destination's token, until its session is logged out. */
  private receiveToken: { host: HostSummary; token: MigrateToken } | null = null;
  /** Hosts that did not answer a step within hostTimeout: nothing more is asked of them. */
  private readonly silentHosts = new Set<string>();

  constructor(private readonly input: LiveMigrationRequest) {
    const view = newMigrationView({
      runId: this.info.runId,
      workflowId: this.info.workflowId,
      instanceUuid: input.instanceUuid,
      createdAt: new Date(this.info.startTime.getTime()).toISOString(),
      blockMigration: input.blockMigration === 'auto' ? null : input.blockMigration,
      requestedBy: input.requestedBy,
    });
    this.board = new StatusBoard(view);
    this.lease = new SlotLease(this.info.workflowId, {
      onQueued: () => this.board.enter('queued', 'queued'),
      onGranted: () => this.board.enter('scheduling', 'preparing'),
    });
  }

  /** Signals, updates and the query; the slot lease's signals. */
  installHandlers(): void {
    setHandler(statusQuery, () => this.board.view);
    setHandler(abortSignal, (reason) => {
      this.requestAbort(reason);
    });
    setHandler(abortUpdate, (reason) => this.requestAbort(reason), { validator: (_reason: string) => this.validateAbort() });
    setHandler(forceCompleteSignal, () => {
      this.requestForceComplete();
    });
    setHandler(forceCompleteUpdate, () => this.requestForceComplete(), { validator: () => this.validateForceComplete() });
    setHandler(progressSignal, (p) => {
      // The agent reports its own steering; an operator's force-complete is the workflow's.
      if (this.transferring) this.board.progress(this.pausedByFerry ? { ...p, guestPaused: true } : p);
    });
    this.lease.install();
  }

  async execute(): Promise<MigrationOutcome> {
    try {
      return await this.migrateAndFinish();
    } finally {
      // Every way out gives the slot back (compensation may have done so earlier).
      await CancellationScope.nonCancellable(() => this.lease.release());
    }
  }

  // ---- the conductor's story ----------------------------------------------------------------

  private async migrateAndFinish(): Promise<MigrationOutcome> {
    try {
      await this.abortable.run(async () => {
        this.v3 = patched('host-inventory');
        this.logoutSessions = this.v3 && patched('receive-session-logout');
        if (this.v3) this.lease.callThrough(conductorLocal);
        const dest = this.v3 ? await this.scheduleFromInventory() : await this.scheduleFromClusterView();
        const { facts, token } = await this.prepareDestination(dest);
        this.transfer = await this.migrateSend(this.source as HostSummary, dest, this.instance as InstanceView, facts, token);
        // Version 3's agent does not signal 'done': the result has the final figures.
        if (this.v3) this.board.progress(transferDone(this.transfer, this.board.view.progress));
      });
    } catch (err) {
      return this.rollback(err);
    }
    // The transfer is over: from version 3 on, its slot goes back while the hosts finish up, and the
    // destination's migrate_receive session is logged out alongside.
    const released = this.v3 ? this.lease.release({ alongside: true }) : Promise.resolve();
    const loggedOut = this.logoutChosenSession();
    await this.settle(() => this.postLiveMigration());
    await released;
    await loggedOut;
    return this.outcome();
  }

  /**
   * Runs post-migration or compensation to its end: past the point of no return, or while undoing,
   * a step that fails for good must not leave the migration looking as if it still ran. It ends in
   * Nova's error status with the step's failure.
   */
  private async settle(steps: () => Promise<void>): Promise<void> {
    try {
      await CancellationScope.nonCancellable(steps);
    } catch (err) {
      const failure = describeFailure(err);
      log.error('a step of post-migration or rollback failed for good', { error: failure.message });
      const step = this.failedStep ? `waiting for ${this.failedStep}` : 'a step';
      this.finish('error', this.errorWith(failure.type, `${step} failed: ${failure.message}`));
    }
  }

  /**
   * From the host inventory (patch 'host-inventory'): the policy, where the instance is and the
   * requested host in one conductor step; the source's own agent then confirms the instance. An
   * index that lagged a move (the agent says the VM is not there) is asked again, for another host.
   */
  private async scheduleFromInventory(): Promise<Destination> {
    // One operation per instance: not while a resize or cold migration of it runs or waits for
    // confirm (Nova's task_state / vm_state resized check). Runs from before the patch did not ask.
    if (patched('one-operation-per-instance')) {
      const cold = await conductorLocal.runningColdMigration({ instanceUuid: this.input.instanceUuid });
      if (cold) {
        throw ApplicationFailure.nonRetryable(
          `Instance ${this.input.instanceUuid} is being resized or cold-migrated (workflow ${cold}): confirm or revert it first`,
          'InstanceInvalidState',
        );
      }
    }
    const ask = (notOn: string[]) =>
      conductorLocal.planLiveMigration.executeWithOptions({ summary: `where is ${this.input.instanceUuid}?` }, [
        { instanceUuid: this.input.instanceUuid, requestedHost: this.input.host ?? null, notOn },
      ]);
    const notOn: string[] = [];
    let plan = await ask(notOn);
    this.policy = plan.policy;
    let instance: InstanceView;
    for (;;) {
      try {
        instance = await this.checkInstanceActive(plan.source);
        break;
      } catch (err) {
        this.refuseSilentHost(err, `instance ${this.input.instanceUuid} is on ${plan.source.name}, which is down`);
        if (describeFailure(err).type !== 'InstanceNotFound' || notOn.length >= MAX_RELOCATIONS) throw err;
        notOn.push(plan.source.name);
        plan = await ask(notOn);
      }
    }
    const source = plan.source;
    const requested = plan.requested ? this.checkRequested(source, plan.requested) : null;
    await this.waitForSlot(source, instance, requested);
    const policy = this.policy;
    return this.findDestination(source, instance, requested, async (excluded) => {
      const scheduled = await conductorLocal.scheduleDestinations.executeWithOptions({ summary: `${instance.name} (${instance.memoryBytes} bytes) from ${source.name}` }, [
        {
          instance,
          source,
          excluded,
          blockMigration: this.defaultBlock(instance),
          reservedBytes: this.grant?.reservedBytes ?? {},
          limit: policy.maxRetries >= 0 ? policy.maxRetries + 1 : CANDIDATES_PER_ASK,
        },
      ]);
      const rejected = scheduled.rejected.filter((r) => !this.board.view.attempts.some((a) => a.host === r.host));
      this.board.view.attempts.push(...rejected);
      if (scheduled.rejectedMore > 0) this.board.view.attempts.push({ host: `${scheduled.rejectedMore} more hosts`, reason: 'filtered out by the scheduler (not listed)' });
      return { candidates: scheduled.candidates, more: scheduled.moreCandidates > 0 };
    });
  }

  /** Runs from before the host inventory: every host described, the whole view through history. */
  private async scheduleFromClusterView(): Promise<Destination> {
    this.policy = await conductor.migrationPolicy();
    const cluster = await collectClusterView();
    const source = this.checkHostIsUp(cluster);
    const instance = await this.checkInstanceActive(source);
    const requested = this.input.host ? this.checkRequestedHost(cluster, source, this.input.host) : null;
    await this.waitForSlot(source, instance, requested);
    return this.findDestination(source, instance, requested, async () => {
      const scheduled = await conductor.findDestination.executeWithOptions({ summary: `${instance.name} (${instance.memoryBytes} bytes) from ${source.name}` }, [
        {
          hosts: cluster.hosts,
          instance,
          sourceHost: source.name,
          excluded: [],
          blockMigration: this.defaultBlock(instance),
          reservedBytes: this.grant?.reservedBytes ?? {},
        },
      ]);
      this.board.view.attempts.push(...scheduled.rejected);
      return { candidates: scheduled.candidates.map((name) => cluster.hosts.find((h) => h.name === name) as ClusterHost), more: false };
    });
  }

  /** A check no agent took in time: the host is down (Nova's ComputeServiceUnavailable), said as `what`. */
  private refuseSilentHost(err: unknown, what: string): void {
    if (isCancellation(err) || describeFailure(err).type !== 'TimeoutFailure') return;
    throw ApplicationFailure.nonRetryable(`${what}: its agent did not take a check within ${CHECK_START_SECONDS} s`, 'ComputeServiceUnavailable');
  }

  private defaultBlock(instance: InstanceView): boolean {
    return this.input.blockMigration === 'auto' ? instance.storage === 'local' : this.input.blockMigration;
  }

  /** Nova's _check_host_is_up for the instance's host: it must be among the hosts that are up. */
  private checkHostIsUp(cluster: ClusterSnapshot): ClusterHost {
    const uuid = this.input.instanceUuid;
    const host = cluster.hosts.find((h) => h.instances.some((i) => i.uuid === uuid));
    if (host) return host;
    const down = cluster.hosts.filter((h) => !h.up);
    if (down.length > 0) {
      throw ApplicationFailure.nonRetryable(
        `instance ${uuid} is on no host that is up; down: ${down.map((h) => `${h.name} (${h.downReason})`).join(', ')}`,
        'ComputeServiceUnavailable',
      );
    }
    throw ApplicationFailure.nonRetryable(`instance ${uuid} could not be found on any host`, 'InstanceNotFound');
  }

  /**
   * Nova's _check_instance_is_active, asked of the host the instance is on. Its agent's read of the
   * VM also answers its tags and the other_config keys the policies name: the migration policy is
   * chosen from that read, never from the inventory's cached copy (KubeVirt matches it once, when
   * the migration starts, and keeps it).
   */
  private async checkInstanceActive(source: HostSummary): Promise<InstanceView> {
    const policy = this.policy as Policy;
    const { labels, ...instance } = await hostChecks(source.queue).checkInstanceActive.executeWithOptions({ summary: `${this.input.instanceUuid} on ${source.name}` }, [
      { instanceUuid: this.input.instanceUuid, labels: { otherConfigKeys: policyOtherConfigKeys(policy.policies) } },
    ]);
    this.source = source;
    this.instance = instance;
    this.board.source(source.name, instance.memoryBytes);
    // Runs from before policies recorded no labels: no policy, migration.* and the options as before.
    // The next memo (the status change to queued or scheduling, just after) carries it.
    this.board.view.policy = resolveMigrationPolicy(policy, labels, this.input.options);
    if (this.input.blockMigration === false && instance.storage === 'local') {
      throw ApplicationFailure.nonRetryable(
        `instance ${instance.uuid} has disks on local storage: block_migration false needs shared storage`,
        'InvalidSharedStorage',
      );
    }
    return instance;
  }

  private checkRequestedHost(cluster: ClusterSnapshot, source: ClusterHost, name: string): ClusterHost {
    const host = cluster.hosts.find((h) => h.name === name);
    if (!host) throw ApplicationFailure.nonRetryable(`requested host ${name} is not a host of this cluster`, 'ComputeHostNotFound');
    return this.checkRequested(source, host);
  }

  /** The requested host is not the instance's (as its agent just confirmed) and is up. */
  private checkRequested<H extends HostSummary>(source: HostSummary, host: H): H {
    if (host.name === source.name) {
      // Nova's UnableToMigrateToSelf text: below 2.34 the API answers it as is.
      throw ApplicationFailure.nonRetryable(`Unable to migrate instance (${this.input.instanceUuid}) to current host (${host.name}).`, 'UnableToMigrateToSelf');
    }
    if (!host.up) throw ApplicationFailure.nonRetryable(`requested host ${host.name} is down: ${host.downReason}`, 'ComputeServiceUnavailable');
    return host;
  }

  /** The concurrency limits (status queued): for a requested host, its inbound slot too. */
  private async waitForSlot(source: HostSummary, instance: InstanceView, requested: HostSummary | null): Promise<void> {
    // The lease's hooks show queued, then scheduling.
    this.grant = await this.lease.acquire({
      sourceHost: source.name,
      destHost: requested?.name ?? null,
      memoryBytes: instance.memoryBytes,
      limits: (this.policy as Policy).limits,
    });
  }

  /** Block migration for one candidate: explicit, or "auto" decided from the storage and the pools. */
  private needsBlock(instance: InstanceView, source: HostSummary, candidate: HostSummary): boolean {
    if (this.input.blockMigration !== 'auto') return this.input.blockMigration;
    return !(instance.storage !== 'local' && candidate.pool === source.pool);
  }

  /**
   * Nova's _find_destination: schedule, then check each candidate until one passes. `schedule`
   * answers the best candidates not yet tried; with `more`, it can be asked again for the next ones.
   */
  private async findDestination(
    source: HostSummary,
    instance: InstanceView,
    requested: HostSummary | null,
    schedule: (excluded: string[]) => Promise<{ candidates: HostSummary[]; more: boolean }>,
  ): Promise<Destination> {
    const policy = this.policy as Policy;
    const attempts = this.board.view.attempts;
    const tried: string[] = [];
    let page = requested ? { candidates: [requested], more: false } : await schedule([]);
    for (;;) {
      for (const candidate of page.candidates) {
        if (policy.maxRetries >= 0 && tried.length > policy.maxRetries) {
          attempts.push({ host: candidate.name, reason: `not tried: migrate_max_retries (${policy.maxRetries}) exhausted` });
          continue;
        }
        tried.push(candidate.name);
        if (!requested) {
          const refused = await this.lease.reserveDestination(candidate, instance.memoryBytes);
          if (refused) {
            attempts.push({ host: candidate.name, reason: refused });
            continue;
          }
        }
        try {
          const block = this.needsBlock(instance, source, candidate);
          const checked = this.input.force ? null : await this.checkCandidate(source, candidate, instance, block);
          const dest = { host: candidate, block, token: checked?.token ?? null, facts: checked?.facts ?? null };
          this.dest = dest;
          this.board.destination(candidate.name, block);
          return dest;
        } catch (err) {
          if (isCancellation(err)) throw err;
          if (requested && this.v3) this.refuseSilentHost(err, `requested host ${candidate.name} is down`);
          attempts.push({ host: candidate.name, reason: describeFailure(err).message });
          if (!requested) await this.lease.releaseDestination();
        }
      }
      if (!page.more || (policy.maxRetries >= 0 && tried.length > policy.maxRetries)) break;
      page = await schedule(tried);
    }
    const reasons = attempts.map((a) => `${a.host}: ${a.reason}`).join('; ');
    throw ApplicationFailure.nonRetryable(`No valid host was found. ${reasons || 'no other host in the cluster'}`, 'NoValidHost');
  }

  /** Nova's check_can_live_migrate_destination and _source; answers the token the source will use. */
  private async checkCandidate(
    source: HostSummary,
    candidate: HostSummary,
    instance: InstanceView,
    block: boolean,
  ): Promise<{ token: MigrateToken | null; facts: DestinationFacts }> {
    const facts = await hostChecks(candidate.queue).checkCanLiveMigrateDestination.executeWithOptions({ summary: `free memory and storage on ${candidate.name}` }, [
      { instance, sourceHost: { name: source.name, pool: source.pool }, blockMigration: block },
    ]);
    const samePool = candidate.pool === source.pool;
    const token =
      block || !samePool
        ? await hostChecks(candidate.queue).migrateReceive.executeWithOptions({ summary: `token from ${candidate.name} for the source check` }, [])
        : null;
    if (token) this.receiveToken = { host: candidate, token };
    try {
      await hostChecks(source.queue).assertCanMigrate.executeWithOptions({ summary: `checkCanLiveMigrateSource: VM.assert_can_migrate to ${candidate.name}` }, [
        { instanceUuid: instance.uuid, destination: facts, blockMigration: block, token, samePool },
      ]);
    } catch (err) {
      // Not chosen: its session goes at once.
      await this.logoutChosenSession();
      throw err;
    }
    return { token, facts };
  }

  /** migrateReceive and preLiveMigration on the destination. */
  private async prepareDestination(dest: Destination): Promise<{ facts: DestinationFacts; token: MigrateToken | null }> {
    this.board.enter('preparing');
    this.destTouched = true; // before the do-step: a receive that timed out may still have left something
    const on = this.hostSteps(dest.host);
    const samePool = dest.host.pool === (this.source as HostSummary).pool;
    const token =
      dest.token ?? (dest.block || !samePool ? await on.migrateReceive.executeWithOptions({ summary: `token from ${dest.host.name}` }, []) : null);
    if (token) this.receiveToken = { host: dest.host, token };
    // From version 3 on, the destination's check a moment ago answered the same facts (its SR and
    // network): pre_live_migration is asked only when force skipped the check.
    const facts =
      this.v3 && dest.facts ? dest.facts : await on.preLiveMigration.executeWithOptions({ summary: `networks and storage on ${dest.host.name}` }, []);
    return { facts, token };
  }

  /** The transfer; the agent follows the xapi task and applies the convergence policy itself. */
  private async migrateSend(source: HostSummary, dest: Destination, instance: InstanceView, facts: DestinationFacts, token: MigrateToken | null): Promise<MigrateSendResult> {
    this.board.enter('precopy', 'running');
    this.sourceTouched = true;
    this.transferring = true;
    const convergence = this.convergencePolicy(instance, dest.block);
    // The transfer may take as long as the completion timeout allows, plus a host's absence.
    const bound = (convergence.completionSeconds > 0 ? convergence.completionSeconds : 24 * 3600) + this.hostTimeout();
    try {
      return await hostTransferWithin(source.queue, bound).migrateSend.executeWithOptions(
        { summary: `${instance.name} ${source.name} → ${dest.host.name} (${dest.block ? 'migrate_send with storage' : 'pool_migrate, shared storage'})` },
        [
          {
            instanceUuid: instance.uuid,
            destination: facts,
            blockMigration: dest.block,
            token,
            samePool: dest.host.pool === source.pool,
            workflowId: this.info.workflowId,
            convergence,
            ...(this.v3 ? { quietStart: true } : {}),
          },
        ],
      );
    } finally {
      this.transferring = false;
    }
  }

  /** The applied policy's settings (the request's options, else the VM group's policy, else migration.*) for this transfer. */
  private convergencePolicy(instance: InstanceView, block: boolean): ConvergencePolicy {
    const settings = (this.board.view.policy ?? resolveMigrationPolicy(this.policy as Policy, undefined, this.input.options)).settings;
    const gib = (instance.memoryBytes + (block ? instance.diskBytes : 0)) / 2 ** 30;
    return {
      completionSeconds: settings.completionTimeoutPerGiB * gib,
      timeoutAction: settings.timeoutAction,
      progressTimeoutSeconds: settings.progressTimeout,
      autoConverge: settings.autoConverge.enabled,
      capSteps: settings.autoConverge.capSteps,
      stepSeconds: settings.autoConverge.stepSeconds,
      forceCompleteAfterLastStep: settings.autoConverge.forceCompleteAfterLastStep,
    };
  }

  /** Nova's post_live_migration_at_destination, then post_live_migration on the source. */
  private async postLiveMigration(): Promise<void> {
    const source = this.source as HostSummary;
    const dest = (this.dest as Destination).host;
    this.board.enter('post_migration');
    const confirmed = await this.onHost(dest, 'confirm the VM runs there', () =>
      this.hostSteps(dest).postLiveMigrationAtDestination.executeWithOptions({ summary: `${this.input.instanceUuid} runs on ${dest.name}` }, [
        { instanceUuid: this.input.instanceUuid },
      ]),
    );
    if (confirmed === 'timed out') {
      // xapi said the transfer succeeded, but the destination never confirmed: say what is known.
      this.finish('error', { type: 'ComputeServiceUnavailable', message: `the transfer completed but ${dest.name} did not confirm within ${this.hostTimeout()} s that the VM runs there` });
      await this.leaveCleanup(source, [{ activity: 'postLiveMigration', args: { instanceUuid: this.input.instanceUuid } }]);
      return;
    }
    const cleaned = await this.onHost(source, 'clean up the source', () =>
      this.hostSteps(source).postLiveMigration.executeWithOptions({ summary: `clean up ${source.name}` }, [{ instanceUuid: this.input.instanceUuid }]),
    );
    if (cleaned === 'timed out') await this.leaveCleanup(source, [{ activity: 'postLiveMigration', args: { instanceUuid: this.input.instanceUuid } }]);
    this.finish('completed', null);
  }

  // ---- compensation: Nova's _rollback_live_migration ---------------------------------------

  private async rollback(err: unknown): Promise<MigrationOutcome> {
    this.transferring = false;
    const failure = describeFailure(err);
    if (POLICY_ABORTS.has(failure.type)) this.abortReason = failure.message;
    // An abort may surface as the transfer's TASK_CANCELLED failure rather than a cancellation.
    const cancelled = isCancellation(err) || this.abortable.consideredCancelled || POLICY_ABORTS.has(failure.type);
    this.board.failed(cancelled ? { type: 'Aborted', message: this.abortReason ?? 'cancelled' } : failure);
    await this.settle(() => this.compensate(cancelled));
    // The transfer is settled (compensation ended any task still running): the session can go.
    await this.logoutChosenSession();
    if (this.board.status === 'completed') return this.outcome();
    // A Temporal cancel request (CLI, web UI): the run ends Canceled, after compensation.
    if (cancelled && this.abortReason === null) throw isCancellation(err) ? err : new CancelledFailure('migration cancelled');
    if (cancelled) return this.outcome();
    const known = this.board.view.error ?? failure;
    throw ApplicationFailure.nonRetryable(known.message, known.type);
  }

  private async compensate(cancelled: boolean): Promise<void> {
    const source = this.source;
    const dest = this.dest?.host ?? null;
    const ended = cancelled ? 'cancelled' : 'failed';
    if (!source || !dest || !(this.destTouched || this.sourceTouched)) {
      this.finish(ended, this.board.view.error);
      return;
    }
    this.board.enter('rolling_back');
    const uuid = this.input.instanceUuid;
    // A transfer whose activity gave up may still run in xapi: end it before deciding anything.
    if (this.sourceTouched) {
      await this.onHost(source, 'end the migration task', () =>
        hostStepsWithin(source.queue, this.hostTimeout(), { heartbeat: true }).settleMigrationTask.executeWithOptions(
          { summary: `make sure no migration task of ${uuid} still runs` },
          [{ instanceUuid: uuid }],
        ),
      );
    }
    const onSource = await this.presence(source);
    const handedOver = this.board.view.progress?.transferPhase === 'stop_and_copy' || this.board.view.progress?.transferPhase === 'done';
    if (onSource?.runningHere !== true || handedOver) {
      const onDest = await this.presence(dest);
      if (onDest?.runningHere && onSource?.runningHere) {
        this.finish('error', this.errorWith('InstanceOnTwoHosts', `${uuid} runs on both ${source.name} and ${dest.name}: nothing was touched, an operator must decide`));
        return;
      }
      if (onDest?.runningHere) {
        log.warn('the VM runs on the destination although the transfer failed: completing instead of rolling back');
        this.board.failed(null);
        await this.postLiveMigration();
        return;
      }
      if (onSource?.runningHere !== true) {
        const sourceSays = onSource === null ? `${source.name} did not answer within ${this.hostTimeout()} s` : `it no longer runs on the source ${source.name} (${onSource.powerState ?? 'unknown to its pool'})`;
        const destSays = onDest === null ? `${dest.name} did not answer either` : `it does not run on ${dest.name} either`;
        // Nobody answering is not the same as nobody running it: say which is known.
        const type = onSource === null && onDest === null ? 'InstanceStateUnknown' : 'InstanceNotRunning';
        this.finish('error', this.errorWith(type, `${sourceSays} and ${destSays}: nothing was resumed or destroyed`));
        // The source's record stays the VM's; what the destination's pool kept goes, now or when it returns.
        const pending: CleanupStep[] = [];
        if (onSource === null) pending.push({ activity: 'rollbackLiveMigration', args: { instanceUuid: uuid, resume: false, vcpuCap: null } });
        if (pending.length > 0) await this.leaveCleanup(source, pending);
        await this.rollbackAtDestination(source, dest);
        return;
      }
    }
    // The source copy runs: put it back as it was, then the VM is safe and the slot can go.
    const restored = await this.onHost(source, 'resume the VM as it was', () =>
      this.hostSteps(source).rollbackLiveMigration.executeWithOptions({ summary: `keep the VM running on ${source.name}` }, [
        { instanceUuid: uuid, resume: this.pausedByFerry, vcpuCap: this.instance?.vcpuCap ?? null },
      ]),
    );
    if (restored === 'timed out') {
      await this.leaveCleanup(source, [{ activity: 'rollbackLiveMigration', args: { instanceUuid: uuid, resume: this.pausedByFerry, vcpuCap: this.instance?.vcpuCap ?? null } }]);
    }
    await this.lease.release();
    const leftover = await this.rollbackAtDestination(source, dest);
    if (restored === 'timed out' || leftover) {
      const silent = [...(restored === 'timed out' ? [source.name] : []), ...(leftover ? [dest.name] : [])];
      const pending = this.board.view.cleanups.map((c) => `${c.steps.join(', ')} on ${c.host} (${c.workflowId})`).join('; ');
      this.finish(
        'error',
        this.errorWith('ComputeServiceUnavailable', `the VM runs on ${source.name}; ${silent.join(' and ')} did not answer within ${this.hostTimeout()} s: cleanup pending: ${pending}`),
      );
      return;
    }
    this.finish(ended, this.board.view.error);
  }

  /** Removes what arrived on the destination; true when that had to be left to a cleanup workflow. */
  private async rollbackAtDestination(source: HostSummary, dest: HostSummary): Promise<boolean> {
    const args = { instanceUuid: this.input.instanceUuid, sourcePool: source.pool };
    const done = await this.onHost(dest, 'remove what arrived', () =>
      this.hostSteps(dest).rollbackLiveMigrationAtDestination.executeWithOptions({ summary: `remove what arrived on ${dest.name}` }, [args]),
    );
    if (done !== 'timed out') return false;
    await this.leaveCleanup(dest, [{ activity: 'rollbackLiveMigrationAtDestination', args }]);
    return true;
  }

  /** Where the VM stands as this host's pool sees it; null when the host does not answer in time. */
  private async presence(host: HostSummary): Promise<InstancePresence | null> {
    const answer = await this.onHost(host, 'say where the VM runs', () =>
      this.hostSteps(host).instancePresence.executeWithOptions({ summary: `does ${this.input.instanceUuid} run on ${host.name}?` }, [
        { instanceUuid: this.input.instanceUuid },
      ]),
    );
    return answer === 'timed out' ? null : answer;
  }

  // ---- bounded waits on hosts ----------------------------------------------------------------

  private hostTimeout(): number {
    return this.policy?.hostTimeout ?? 300;
  }

  private hostSteps(host: HostSummary) {
    return hostStepsWithin(host.queue, this.hostTimeout());
  }

  /**
   * Runs one step on a host, showing what it waits for; a host (or its agent) that does not
   * answer within the policy's hostTimeout gives 'timed out' instead of waiting forever. Any other
   * failure of the step is thrown.
   */
  private async onHost<T>(host: HostSummary, what: string, step: () => Promise<T>): Promise<T | 'timed out'> {
    this.board.waiting(`${host.name} to ${what}`);
    try {
      return await step();
    } catch (err) {
      if (!isTimeout(err)) {
        this.failedStep = `${host.name} to ${what}`;
        throw err;
      }
      log.warn('a host did not answer in time', { host: host.name, what });
      this.silentHosts.add(host.name);
      return 'timed out';
    } finally {
      this.board.waiting(null);
    }
  }

  /**
   * Nova's check_can_live_migrate_destination_cleanup: logs out the session of the destination's
   * migrate_receive token, if any (patch 'receive-session-logout'). A check's bounds: a host that
   * does not answer (or already did not answer a step within hostTimeout) keeps the session until
   * xapi expires it, and the migration goes on.
   */
  private async logoutChosenSession(): Promise<void> {
    const held = this.receiveToken;
    this.receiveToken = null;
    const sessionId = held?.token.session_id;
    if (!held || !sessionId || !this.logoutSessions) return;
    if (this.silentHosts.has(held.host.name)) {
      log.warn('the migrate_receive session is left to xapi to expire: its host did not answer', { host: held.host.name });
      return;
    }
    await CancellationScope.nonCancellable(async () => {
      try {
        await hostChecks(held.host.queue).logoutMigrateReceive.executeWithOptions({ summary: `log out ${held.host.name}'s migrate_receive session` }, [{ sessionId }]);
      } catch (err) {
        log.warn('a migrate_receive session could not be logged out: xapi expires it', { host: held.host.name, error: describeFailure(err).message });
      }
    });
  }

  /** Hands steps a host could not do in time to a migrationCleanup workflow that waits for it. */
  private async leaveCleanup(host: HostSummary, steps: CleanupStep[]): Promise<void> {
    const workflowId = `migration-cleanup-${this.info.runId}-${host.name}`;
    await startChild(MIGRATION_CLEANUP_WORKFLOW, {
      workflowId,
      args: [{ migrationWorkflowId: this.info.workflowId, instanceUuid: this.input.instanceUuid, host: host.name, queue: host.queue, steps }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: [{ key: InstanceUuid, value: this.input.instanceUuid }],
      staticSummary: `cleanup of ${this.input.instanceUuid} on ${host.name}: ${steps.map((s) => s.activity).join(', ')}`,
    });
    this.board.cleanup({ workflowId, host: host.name, steps: steps.map((s) => s.activity) });
  }

  // ---- abort and force-complete ----------------------------------------------------------------

  private requestAbort(reason?: string): ControlAccepted {
    if (this.board.view.abortable && this.abortReason === null) {
      this.abortReason = reason || 'aborted by an operator';
      log.info('abort requested', { reason: this.abortReason });
      this.abortable.cancel();
    }
    return this.accepted();
  }

  private validateAbort(): void {
    const refusal = this.board.notAbortableReason();
    if (this.abortReason !== null) throw new Error(`abort already requested (${this.abortReason})${refusal ? `: ${refusal}` : ''}`);
    if (refusal) throw new Error(`cannot abort: ${refusal}`);
  }

  private requestForceComplete(): ControlAccepted {
    const view = this.board.view;
    if (!view.forceCompleteRequested) {
      view.forceCompleteRequested = true;
      // The agent applies the policy; an operator's force-complete pauses the domain as soon as
      // the transfer runs. It fails alone: the transfer goes on, bounded by its own policy.
      void CancellationScope.nonCancellable(() => this.forceComplete()).catch((err: unknown) => {
        log.warn('force-complete failed; the transfer goes on under its policy', { error: describeFailure(err).message });
      });
    }
    return this.accepted();
  }

  private async forceComplete(): Promise<void> {
    // Wait until the agent reported the xapi task (its first progress): paused before the task
    // exists, the guest would stay paused for the whole transfer.
    const running = () => this.transferring && this.board.view.progress !== null;
    await condition(() => running() || ['done', 'rolling_back', 'post_migration'].includes(this.board.phase));
    const source = this.source;
    if (!running() || !source) return;
    const paused = await this.hostSteps(source).forceCompleteGuest.executeWithOptions({ summary: `force-complete: pause ${this.input.instanceUuid}'s domain` }, [
      { instanceUuid: this.input.instanceUuid },
    ]);
    this.pausedByFerry = this.pausedByFerry || paused.paused;
    if (this.board.view.progress) this.board.progress({ ...this.board.view.progress, guestPaused: this.pausedByFerry });
  }

  private validateForceComplete(): void {
    const phase = this.board.phase;
    if (this.board.view.forceCompleteRequested) throw new Error('force-complete already requested');
    if (!['validating', 'queued', 'scheduling', 'preparing', 'precopy'].includes(phase)) {
      throw new Error(`cannot force-complete in phase ${phase}: ${this.board.notAbortableReason() ?? 'not transferring'}`);
    }
  }

  private accepted(): ControlAccepted {
    return { accepted: true, status: this.board.status, phase: this.board.phase };
  }

  // ---- endings ---------------------------------------------------------------------------------

  private errorWith(type: string, detail: string): { type: string; message: string } {
    const before = this.board.view.error?.message;
    return { type, message: before ? `${before}; ${detail}` : detail };
  }

  private finish(status: 'completed' | 'cancelled' | 'failed' | 'error', error: { type: string; message: string } | null): void {
    this.board.failed(error);
    this.board.enter('done', status);
  }

  private outcome(): MigrationOutcome {
    const v: MigrationStatusView = this.board.view;
    return {
      status: v.status,
      sourceHost: v.source_compute,
      destHost: v.dest_compute,
      bytesSent: this.transfer?.bytesSent ?? 0,
      downtimeMs: this.transfer?.downtimeMs ?? null,
      transferMs: this.transfer?.transferMs ?? 0,
      message: v.error?.message ?? null,
    };
  }
}

/**
 * A step that ran out of its schedule-to-close bound: the host or its agent did not answer in time.
 * Temporal reports either the timeout itself or, when attempts kept failing (connection refused),
 * the last attempt's failure with the retry state TIMEOUT.
 */
function isTimeout(err: unknown): boolean {
  let e = err as { name?: string; cause?: unknown; retryState?: unknown } | undefined;
  while (e) {
    if (e.name === 'TimeoutFailure' || e.retryState === 'TIMEOUT') return true;
    e = e.cause as typeof e;
  }
  return false;
}
