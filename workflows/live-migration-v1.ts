// The first version of liveMigration, frozen: runs started before the patch 'xapi-fidelity' (see
// live-migration.ts) replay and finish with this code. Do not change it; it reads task figures
// only the old simulator published, and its rollback trusted a per-host database.
import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { MigrateSendResult, MigrateToken, DestinationFacts, InstancePresence } from '../activities/types';
import type { FerryConfig } from '../lib/config';
import { DestHost, InstanceUuid, MigrationStatus, SourceHost } from '../lib/search-attributes';
import { conductor, hostChecks, hostSettle, hostSteps, hostTransfer } from './activities';
import { collectClusterView, type ClusterHost, type ClusterSnapshot } from './cluster';
import {
  abortSignal,
  abortUpdate,
  destinationReservedSignal,
  forceCompleteSignal,
  forceCompleteUpdate,
  LiveMigrationInputSchema,
  MIGRATION_SLOTS_WORKFLOW_ID,
  newMigrationView,
  progressSignal,
  releaseDestinationSignal,
  releaseSlotSignal,
  reserveDestinationSignal,
  slotGrantedSignal,
  statusQuery,
  type ControlAccepted,
  type HostAttempt,
  type InstanceView,
  type LiveMigrationInput,
  type LiveMigrationRequest,
  type MigrationPhase,
  type MigrationStatusView,
  type NovaMigrationStatus,
  type ReservationAnswer,
  type SlotGrant,
} from './definitions';
import { describeFailure, type MigrationOutcome } from './outcome';

/** The progress signal as the agents of version 1 sent it (figures from task.other_config). */
interface LegacyTransferProgress {
  memoryTotalBytes: number;
  memoryProcessedBytes: number;
  memoryRemainingBytes: number;
  diskTotalBytes: number;
  diskProcessedBytes: number;
  diskRemainingBytes: number;
  iteration: number;
  dirtyRateBytesPerSecond: number;
  bandwidthBytesPerSecond: number;
  bytesSent: number;
  fraction: number;
  transferPhase: 'precopy' | 'stop_and_copy' | 'done';
  vcpuCap?: number;
}

type Policy = FerryConfig['migration'];


/** Phases after which an abort can no longer be honoured: the VM is (about to be) on the destination. */
const NOT_ABORTABLE: Partial<Record<MigrationPhase, string>> = {
  stop_and_copy: 'the VM is paused for stop-and-copy: past the point of no return',
  post_migration: 'the VM already runs on the destination',
  rolling_back: 'the migration is already rolling back',
  done: 'the migration has ended',
};

export async function liveMigrationV1(rawInput: LiveMigrationInput): Promise<MigrationOutcome> {
  const parsed = LiveMigrationInputSchema.safeParse(rawInput);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
    throw ApplicationFailure.nonRetryable(`invalid liveMigration input: ${problems}`, 'InvalidInput');
  }
  const input: LiveMigrationRequest = parsed.data;
  const info = workflowInfo();
  const createdAt = new Date(info.startTime.getTime()).toISOString();

  // ---- state visible through the status query ----
  const view: MigrationStatusView = newMigrationView({
    runId: info.runId,
    workflowId: info.workflowId,
    instanceUuid: input.instanceUuid,
    createdAt,
    blockMigration: input.blockMigration === 'auto' ? null : input.blockMigration,
    requestedBy: input.requestedBy,
  });
  let abortReason: string | null = null;
  let grant: SlotGrant | null = null;
  let reservation: ReservationAnswer | null = null;
  let lastProgressAt = Date.now();
  let transferring = false;
  let appliedCap: number | null = null;

  const touch = () => {
    view.updated_at = new Date(Date.now()).toISOString();
    const reason = NOT_ABORTABLE[view.phase] ?? null;
    view.abortable = reason === null;
    view.notAbortableReason = reason;
  };
  const enter = (phase: MigrationPhase, status?: NovaMigrationStatus) => {
    view.phase = phase;
    if (status && status !== view.status) {
      view.status = status;
      upsertSearchAttributes([{ key: MigrationStatus, value: status }]);
      // The memo is what the web UI's list shows without opening the run.
      upsertMemo({
        status,
        instance: view.server_uuid,
        source: view.source_compute,
        destination: view.dest_compute,
        error: view.error?.message ?? null,
      });
    }
    touch();
    setCurrentDetails(describeForUi(view));
  };

  upsertSearchAttributes([
    { key: InstanceUuid, value: input.instanceUuid },
    { key: MigrationStatus, value: 'accepted' },
  ]);

  // ---- signals, updates, query ----
  const mainScope = new CancellationScope();
  const requestAbort = (reason?: string) => {
    if (!view.abortable || abortReason !== null) return;
    abortReason = reason || 'aborted by an operator';
    log.info('abort requested', { reason: abortReason });
    mainScope.cancel();
  };
  const validateAbort = () => {
    if (abortReason !== null) throw new Error(`abort already requested: ${abortReason}`);
    if (!view.abortable) throw new Error(`cannot abort: ${view.notAbortableReason ?? 'not abortable now'}`);
  };
  const validateForceComplete = () => {
    if (view.forceCompleteRequested) throw new Error('force-complete already requested');
    if (view.phase !== 'precopy' && view.phase !== 'preparing' && view.phase !== 'scheduling' && view.phase !== 'queued' && view.phase !== 'validating') {
      throw new Error(`cannot force-complete in phase ${view.phase}: ${NOT_ABORTABLE[view.phase] ?? 'not transferring'}`);
    }
  };
  const accepted = (): ControlAccepted => ({ accepted: true, status: view.status, phase: view.phase });

  setHandler(statusQuery, () => view);
  setHandler(abortSignal, (reason) => requestAbort(reason));
  setHandler(
    abortUpdate,
    (reason) => {
      requestAbort(reason);
      return accepted();
    },
    { validator: (_reason: string) => validateAbort() },
  );
  setHandler(forceCompleteSignal, () => {
    view.forceCompleteRequested = true;
  });
  setHandler(
    forceCompleteUpdate,
    () => {
      view.forceCompleteRequested = true;
      return accepted();
    },
    { validator: validateForceComplete },
  );
  setHandler(slotGrantedSignal, (g) => {
    grant = g;
  });
  setHandler(destinationReservedSignal, (answer) => {
    reservation = answer;
  });
  setHandler(progressSignal, (signalled) => {
    const p = signalled as unknown as LegacyTransferProgress;
    if (!transferring) return;
    if (p.bytesSent > ((view.progress as unknown as LegacyTransferProgress | null)?.bytesSent ?? 0)) lastProgressAt = Date.now();
    // The agent knows the cap the VM started with; the cap auto-converge applied is the workflow's.
    view.progress = (appliedCap !== null ? { ...p, vcpuCap: appliedCap } : p) as unknown as MigrationStatusView['progress'];
    view.memory_total_bytes = p.memoryTotalBytes;
    view.memory_processed_bytes = p.memoryProcessedBytes;
    view.memory_remaining_bytes = p.memoryRemainingBytes;
    view.disk_total_bytes = p.diskTotalBytes;
    view.disk_processed_bytes = p.diskProcessedBytes;
    view.disk_remaining_bytes = p.diskRemainingBytes;
    if (p.transferPhase === 'stop_and_copy' && view.phase === 'precopy') enter('stop_and_copy');
    else touch();
  });

  // ---- the saga: undo steps registered before their do-step starts ----
  let source: ClusterHost | null = null;
  let dest: ClusterHost | null = null;
  let destTouched = false;
  let sourceTouched = false;
  let slotRequested = false;
  let pausedByFerry = false;
  let originalCap: number | null = null;
  let transfer: MigrateSendResult | null = null;

  const slots = getExternalWorkflowHandle(MIGRATION_SLOTS_WORKFLOW_ID);

  try {
    return await migrateAndFinish();
  } finally {
    // Every way out gives the slot back, after compensation or post-migration ran.
    await CancellationScope.nonCancellable(() => releaseSlot());
  }

  // ---------------------------------------------------------------------------------------------

  /** Steps 1 to 6, and compensation when something fails before the transfer finished. */
  async function migrateAndFinish(): Promise<MigrationOutcome> {
    try {
      await mainScope.run(async () => {
        const policy = await conductor.migrationPolicy();

        // 1. checkInstanceActive, 2. source host up
        const cluster = await collectClusterView();
        source = locateSource(cluster, input.instanceUuid);
        const instance = await hostChecks(source.queue).checkInstanceActive.executeWithOptions(
          { summary: `${input.instanceUuid} on ${source.name}` },
          [{ instanceUuid: input.instanceUuid }],
        );
        originalCap = instance.vcpuCap;
        view.source_compute = source.name;
        view.source_node = source.name;
        view.memory_total_bytes = instance.memoryBytes;
        upsertSearchAttributes([{ key: SourceHost, value: source.name }]);
        if (input.blockMigration === false && instance.storage === 'local') {
          throw ApplicationFailure.nonRetryable(
            `instance ${input.instanceUuid} has disks on local storage: block_migration false needs shared storage`,
            'InvalidSharedStorage',
          );
        }
        const requested = input.host ? validateRequestedHost(cluster, source, input.host) : null;

        // Concurrency limits: wait for a slot in the entity workflow (status queued).
        enter('queued', 'queued');
        slotRequested = true;
        await conductor.requestMigrationSlot({
          workflowId: info.workflowId,
          sourceHost: source.name,
          memoryBytes: instance.memoryBytes,
          limits: policy.limits,
        });
        await condition(() => grant !== null);

        // 3. findDestination loop
        enter('scheduling', 'preparing');
        const chosen = await findDestination(cluster, source, instance, requested, policy);
        dest = chosen.host;
        view.dest_compute = dest.name;
        view.dest_host = dest.name;
        view.dest_node = dest.name;
        view.block_migration = chosen.block;
        upsertSearchAttributes([{ key: DestHost, value: dest.name }]);

        // 4. migrateReceive and preLiveMigration on the destination
        enter('preparing');
        destTouched = true; // registered before the do-step: a timed-out receive may still have left something
        const samePool = dest.pool === source.pool;
        const token: MigrateToken | null =
          chosen.token ??
          (chosen.block || !samePool
            ? await hostSteps(dest.queue).migrateReceive.executeWithOptions({ summary: `token from ${dest.name}` }, [])
            : null);
        const facts = await hostSteps(dest.queue).preLiveMigration.executeWithOptions(
          { summary: `networks and storage on ${dest.name}` },
          [],
        );

        // 5. migrateSend on the source, with the convergence policy watching it
        enter('precopy', 'running');
        sourceTouched = true;
        transferring = true;
        lastProgressAt = Date.now();
        transfer = await transferWithPolicy(source, dest, instance, facts, token, chosen.block, samePool, policy);
        transferring = false;
      });
    } catch (err) {
      // Nothing has moved yet (the transfer is the scope's last step): compensate.
      transferring = false;
      // An abort may surface as the transfer's TASK_CANCELLED failure rather than a cancellation.
      const cancelled = isCancellation(err) || mainScope.consideredCancelled;
      const failure = describeFailure(err);
      await CancellationScope.nonCancellable(() => compensate(cancelled, failure));
      if (view.status !== 'completed') {
        // A Temporal cancel request (CLI, web UI): the run ends Canceled, after compensation.
        if (cancelled && abortReason === null) throw isCancellation(err) ? err : new CancelledFailure('migration cancelled');
        if (cancelled) return outcome(null);
        throw ApplicationFailure.nonRetryable(failure.message, failure.type);
      }
    }

    // 6. postLiveMigration on both hosts: past the point of no return nothing may interrupt these.
    await CancellationScope.nonCancellable(async () => {
      try {
        if (view.status !== 'completed') await finishOnDestination();
      } catch (err) {
        // Past the point of no return there is nothing to roll back: say so, as Nova's error status.
        view.error = describeFailure(err);
        enter('done', 'error');
        throw ApplicationFailure.nonRetryable(`after the transfer: ${view.error.message}`, view.error.type);
      }
    });
    return outcome(transfer);
  }

  function outcome(result: MigrateSendResult | null): MigrationOutcome {
    return {
      status: view.status,
      sourceHost: view.source_compute,
      destHost: view.dest_compute,
      bytesSent: result?.bytesSent ?? (view.progress as unknown as LegacyTransferProgress | null)?.bytesSent ?? 0,
      downtimeMs: result?.downtimeMs ?? null,
      transferMs: result?.transferMs ?? 0,
      message: view.error?.message ?? null,
    };
  }

  function locateSource(cluster: ClusterSnapshot, instanceUuid: string): ClusterHost {
    const host = cluster.hosts.find((h) => h.instances.some((i) => i.uuid === instanceUuid));
    if (host) return host;
    const down = cluster.hosts.filter((h) => !h.up);
    if (down.length > 0) {
      throw ApplicationFailure.nonRetryable(
        `instance ${instanceUuid} is on no host that is up; down: ${down.map((h) => `${h.name} (${h.downReason})`).join(', ')}`,
        'ComputeServiceUnavailable',
      );
    }
    throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} could not be found on any host`, 'InstanceNotFound');
  }

  function validateRequestedHost(cluster: ClusterSnapshot, src: ClusterHost, name: string): ClusterHost {
    const host = cluster.hosts.find((h) => h.name === name);
    if (!host) throw ApplicationFailure.nonRetryable(`requested host ${name} is not a host of this cluster`, 'ComputeHostNotFound');
    if (host.name === src.name) {
      throw ApplicationFailure.nonRetryable(`requested host ${name} is the instance's current host`, 'UnableToMigrateToSelf');
    }
    if (!host.up) {
      throw ApplicationFailure.nonRetryable(`requested host ${name} is down: ${host.downReason}`, 'ComputeServiceUnavailable');
    }
    return host;
  }

  /** Block migration for one candidate: explicit, or "auto" decided from the storage and the pools. */
  function needsBlock(instance: InstanceView, src: ClusterHost, candidate: ClusterHost): boolean {
    if (input.blockMigration !== 'auto') return input.blockMigration;
    return !(instance.storage !== 'local' && candidate.pool === src.pool);
  }

  /**
   * Reserves the candidate in the slots entity. A requested host that is only busy (its inbound
   * limit reached) is waited for, queued, as Nova's compute queues its live migrations.
   */
  async function reserveDestination(candidate: ClusterHost, instance: InstanceView, waitWhileBusy: boolean): Promise<string | null> {
    for (;;) {
      reservation = null;
      await slots.signal(reserveDestinationSignal, {
        workflowId: info.workflowId,
        destHost: candidate.name,
        memoryBytes: instance.memoryBytes,
        memoryFreeBytes: candidate.memoryFreeBytes,
      });
      await condition(() => reservation !== null && reservation.destHost === candidate.name);
      const answer = reservation as ReservationAnswer | null;
      if (answer?.ok) {
        if (view.phase === 'queued') enter('scheduling', 'preparing');
        return null;
      }
      if (!(waitWhileBusy && answer?.busy)) return answer?.reason ?? 'reservation refused';
      if (view.phase !== 'queued') enter('queued', 'queued');
      await sleep('2s');
    }
  }

  async function findDestination(
    cluster: ClusterSnapshot,
    src: ClusterHost,
    instance: InstanceView,
    requested: ClusterHost | null,
    policy: Policy,
  ): Promise<{ host: ClusterHost; block: boolean; token: MigrateToken | null }> {
    const attempts: HostAttempt[] = view.attempts;
    let candidates: ClusterHost[];
    if (requested) {
      candidates = [requested];
    } else {
      const scheduled = await conductor.findDestination.executeWithOptions(
        { summary: `${instance.name} (${instance.memoryBytes} bytes) from ${src.name}` },
        [
          {
            hosts: cluster.hosts,
            instance,
            sourceHost: src.name,
            excluded: [],
            blockMigration: input.blockMigration === 'auto' ? instance.storage === 'local' : input.blockMigration,
            reservedBytes: (grant as SlotGrant | null)?.reservedBytes ?? {},
          },
        ],
      );
      attempts.push(...scheduled.rejected);
      candidates = scheduled.candidates.map((name) => cluster.hosts.find((h) => h.name === name) as ClusterHost);
    }
    let tries = 0;
    for (const candidate of candidates) {
      if (policy.maxRetries >= 0 && tries > policy.maxRetries) {
        attempts.push({ host: candidate.name, reason: `not tried: migrate_max_retries (${policy.maxRetries}) exhausted` });
        continue;
      }
      tries++;
      const block = needsBlock(instance, src, candidate);
      const refused = await reserveDestination(candidate, instance, requested !== null);
      if (refused) {
        attempts.push({ host: candidate.name, reason: refused });
        continue;
      }
      try {
        let token: MigrateToken | null = null;
        if (!input.force) {
          const checked = await hostChecks(candidate.queue).checkCanLiveMigrateDestination.executeWithOptions(
            { summary: `free memory and storage on ${candidate.name}` },
            [{ instance, sourceHost: { name: src.name, pool: src.pool }, blockMigration: block }],
          );
          // The check already answers with the destination's SR and network. Runs started before
          // this change asked preLiveMigration for them a second time: they replay that way.
          const facts = patched('destination-check-returns-facts')
            ? checked
            : await hostChecks(candidate.queue).preLiveMigration.executeWithOptions(
                { summary: `destination SR and network of ${candidate.name}` },
                [],
              );
          const samePool = candidate.pool === src.pool;
          if (block || !samePool) {
            token = await hostChecks(candidate.queue).migrateReceive.executeWithOptions(
              { summary: `token from ${candidate.name} for the source check` },
              [],
            );
          }
          await hostChecks(src.queue).assertCanMigrate.executeWithOptions(
            { summary: `checkCanLiveMigrateSource: VM.assert_can_migrate to ${candidate.name}` },
            [{ instanceUuid: instance.uuid, destination: facts, blockMigration: block, token, samePool }],
          );
        }
        return { host: candidate, block, token };
      } catch (err) {
        if (isCancellation(err)) throw err;
        attempts.push({ host: candidate.name, reason: describeFailure(err).message });
        await slots.signal(releaseDestinationSignal, { workflowId: info.workflowId });
      }
    }
    const reasons = attempts.map((a) => `${a.host}: ${a.reason}`).join('; ');
    throw ApplicationFailure.nonRetryable(`No valid host was found. ${reasons || 'no other host in the cluster'}`, 'NoValidHost');
  }

  /**
   * migrateSend, while watching the transfer: completion and progress timeouts, auto-converge
   * (vCPU cap steps) and force-complete (pause the guest so pre-copy converges).
   */
  async function transferWithPolicy(
    src: ClusterHost,
    dst: ClusterHost,
    instance: InstanceView,
    facts: DestinationFacts,
    token: MigrateToken | null,
    block: boolean,
    samePool: boolean,
    policy: Policy,
  ): Promise<MigrateSendResult> {
    const options = input.options;
    const startedAt = Date.now();
    const gib = (instance.memoryBytes + (block ? instance.diskBytes : 0)) / 2 ** 30;
    const completionSeconds = (options.completionTimeoutPerGiB ?? policy.completionTimeoutPerGiB) * gib;
    const timeoutAction = options.timeoutAction ?? policy.timeoutAction;
    const progressTimeout = options.progressTimeout ?? policy.progressTimeout;
    const autoConverge = options.autoConverge ?? policy.autoConverge.enabled;
    const steps = policy.autoConverge.capSteps;
    let nextStep = 0;
    let lastStepAt = startedAt;
    let done = false;
    let forced = false;

    const send = hostTransfer(src.queue)
      .migrateSend.executeWithOptions(
        { summary: `${instance.name} ${src.name} → ${dst.name} (${block ? 'migrate_send with storage' : 'pool_migrate, shared storage'})` },
        [{ instanceUuid: instance.uuid, destination: facts, blockMigration: block, token, samePool, workflowId: info.workflowId }],
      )
      .finally(() => {
        done = true;
      });

    const forceComplete = async (why: string) => {
      if (forced) return;
      forced = true;
      pausedByFerry = instance.powerState === 'Running';
      log.info('force-completing', { why });
      await hostSteps(src.queue).forceCompleteGuest.executeWithOptions({ summary: `force-complete: pause ${instance.name} (${why})` }, [
        { instanceUuid: instance.uuid },
      ]);
    };

    const watch = async () => {
      while (!done) {
        const now = Date.now();
        const wakeAt = Math.min(
          completionSeconds > 0 ? startedAt + completionSeconds * 1000 : Infinity,
          progressTimeout > 0 ? lastProgressAt + progressTimeout * 1000 : Infinity,
          autoConverge && nextStep <= steps.length ? lastStepAt + policy.autoConverge.stepSeconds * 1000 : Infinity,
        );
        const waitMs = Math.max(100, Math.min(wakeAt - now, 60_000));
        await condition(() => done || (view.forceCompleteRequested && !forced), waitMs);
        if (done) return;
        if (view.forceCompleteRequested && !forced) {
          await forceComplete('requested by an operator');
          continue;
        }
        const t = Date.now();
        if (completionSeconds > 0 && t >= startedAt + completionSeconds * 1000) {
          const why = `completion timeout: ${Math.round(completionSeconds)} s for ${gib.toFixed(2)} GiB`;
          if (timeoutAction === 'force_complete') await forceComplete(why);
          else requestAbort(why);
          if (forced || abortReason) return;
        }
        if (progressTimeout > 0 && t >= lastProgressAt + progressTimeout * 1000) {
          requestAbort(`progress timeout: no data moved for ${progressTimeout} s`);
          return;
        }
        if (autoConverge && !forced && t >= lastStepAt + policy.autoConverge.stepSeconds * 1000 && notConverging(view.progress)) {
          lastStepAt = t;
          if (nextStep < steps.length) {
            const cap = steps[nextStep++] as number;
            appliedCap = cap;
            await hostSteps(src.queue).capGuestVcpu.executeWithOptions({ summary: `auto-converge: cap ${instance.name} to ${cap}% vCPU` }, [
              { instanceUuid: instance.uuid, vcpuCap: cap },
            ]);
          } else if (policy.autoConverge.forceCompleteAfterLastStep) {
            nextStep++;
            await forceComplete('auto-converge: the last vCPU cap did not make pre-copy converge');
          }
        }
      }
    };

    // The transfer's own promise decides the outcome: on abort it settles only once the XenAPI task
    // really ended (cancelled, or completed past the point of no return), so compensation never
    // races a transfer still in flight.
    const watching = watch().catch((err: unknown) => {
      if (!isCancellation(err)) log.warn('convergence watch failed', { error: String(err) });
    });
    const result = await send;
    await watching;
    return result;
  }

  /** Pre-copy is not converging when the guest dirties memory nearly as fast as the link sends it. */
  function notConverging(shown: MigrationStatusView['progress']): boolean {
    const p = shown as unknown as LegacyTransferProgress | null;
    if (!p || p.transferPhase !== 'precopy' || p.iteration < 2) return false;
    return p.dirtyRateBytesPerSecond >= 0.8 * Math.max(1, p.bandwidthBytesPerSecond);
  }

  async function finishOnDestination(): Promise<void> {
    const dst = dest as ClusterHost | null;
    const src = source as ClusterHost | null;
    if (!dst || !src) return;
    enter('post_migration');
    await hostSteps(dst.queue).postLiveMigrationAtDestination.executeWithOptions(
      { summary: `resume on ${dst.name}` },
      // Version 1 asked the destination to unpause and restore the cap; the domain there is a fresh one.
      [{ instanceUuid: input.instanceUuid, resume: pausedByFerry, vcpuCap: originalCap } as { instanceUuid: string }],
    );
    await hostSteps(src.queue).postLiveMigration.executeWithOptions({ summary: `clean up ${src.name}` }, [
      { instanceUuid: input.instanceUuid },
    ]);
    enter('done', 'completed');
  }

  /**
   * Nova's _rollback_live_migration. Where the VM really is decides: still on the source, undo on
   * both hosts; already running on the destination (the transfer finished as it failed), finish
   * the migration instead. Retried until it succeeds; never cancelled.
   */
  async function compensate(cancelled: boolean, failure: { type: string; message: string }): Promise<void> {
    const src = source as ClusterHost | null;
    const dst = dest as ClusterHost | null;
    view.error = { type: cancelled ? 'Aborted' : failure.type, message: cancelled ? (abortReason ?? 'cancelled') : failure.message };
    if (src && dst && (destTouched || sourceTouched)) {
      enter('rolling_back');
      // A transfer whose activity gave up may still run in xapi: end it before undoing anything.
      if (sourceTouched && patched('settle-task-before-rollback')) {
        await hostSettle(src.queue).settleMigrationTask.executeWithOptions(
          { summary: `make sure no migration task of ${input.instanceUuid} still runs on ${src.name}` },
          [{ instanceUuid: input.instanceUuid }],
        );
      }
      let onSource: InstancePresence = await hostSteps(src.queue).instancePresence.executeWithOptions(
        { summary: `is ${input.instanceUuid} still on the source ${src.name}?` },
        [{ instanceUuid: input.instanceUuid }],
      );
      if (!onSource.present) {
        const onDest = await hostSteps(dst.queue).instancePresence.executeWithOptions(
          { summary: `did ${input.instanceUuid} arrive on ${dst.name}?` },
          [{ instanceUuid: input.instanceUuid }],
        );
        if (onDest.present) {
          log.warn('the transfer finished although the step failed: completing instead of rolling back');
          view.error = null;
          await finishOnDestination();
          return;
        }
      }
      if (sourceTouched) {
        onSource = await hostSteps(src.queue).rollbackLiveMigration.executeWithOptions(
          { summary: `keep the VM running on ${src.name}` },
          [{ instanceUuid: input.instanceUuid, resume: pausedByFerry, vcpuCap: originalCap }],
        );
      }
      await hostSteps(dst.queue).rollbackLiveMigrationAtDestination.executeWithOptions(
        { summary: `remove what arrived on ${dst.name}` },
        [{ instanceUuid: input.instanceUuid }],
      );
      if (onSource.powerState === 'Halted') {
        view.error = { type: 'InstanceHalted', message: `${view.error.message}; the instance is halted on ${src.name} (its host crashed)` };
        enter('done', 'error');
        return;
      }
    }
    enter('done', cancelled ? 'cancelled' : 'failed');
  }

  async function releaseSlot(): Promise<void> {
    if (!slotRequested) return;
    await slots.signal(releaseSlotSignal, { workflowId: info.workflowId });
  }
}

function describeForUi(v: MigrationStatusView): string {
  const lines = [
    `**${v.status}** · phase \`${v.phase}\``,
    `instance \`${v.server_uuid}\`: ${v.source_compute ?? '?'} → ${v.dest_compute ?? '?'}`,
  ];
  const legacy = v.progress as unknown as LegacyTransferProgress | null;
  if (legacy) lines.push(`sent ${(legacy.bytesSent / 2 ** 20).toFixed(1)} MiB, iteration ${legacy.iteration}`);
  if (v.attempts.length) lines.push(`hosts tried: ${v.attempts.map((a) => `${a.host} (${a.reason})`).join('; ')}`);
  if (v.error) lines.push(`error: ${v.error.message}`);
  return lines.join('\n\n');
}
