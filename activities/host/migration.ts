// Host-side steps of a live migration, named after Nova's compute manager and xenapi driver.
// Every step is idempotent: run twice (a retry after a worker crash), it changes nothing more.
// Only what a real xapi offers is read: records, VM.current_operations, task.progress and whether
// the task is still cancellable. What XenAPI cannot do to a migrating domain goes through ferry's
// dom0 plugin (dom0-plugin.ts).
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { HostConfig } from '../../lib/config';
import type { Logger } from '../../lib/logger';
import type { XenApiClient } from '../../xenapi/client';
import { XenApiCode, isXenApiError } from '../../xenapi/errors';
import { NULL_REF } from '../../xenapi/records';
import { waitForTask, type TaskProgress } from '../../xenapi/task';
import type {
  AssertCanMigrateInput,
  CheckDestinationInput,
  DestinationFacts,
  GuestSteering,
  InstancePresence,
  InstanceRef,
  LogoutMigrateReceiveInput,
  MigrateSendInput,
  MigrateSendResult,
  MigrateToken,
  RollbackAtDestinationInput,
  RollbackSourceInput,
  TransferHeartbeat,
  TransferProgress,
} from '../types';
import { nextAction, observe, startConvergence, type ConvergenceState } from '../../workflows/convergence';
import { dom0Plugin } from './dom0-plugin';
import { serviceStateOf } from './service';
import { findVm, migrationTaskOf, ownsHalted, runsHere, thisHost, vcpuCap, vmDisks, xenFailure, type FoundVm, type ThisHost } from './xen';

/** Sends the migration's progress to its workflow (a signal), so the status query and the policy see it. */
export type ProgressReporter = (workflowId: string, progress: TransferProgress) => Promise<void>;

const REPORT_EVERY_MS = 1000;
/** Version 2 signals progress to the workflow only at these steps of the fraction (and on changes of phase or steering). */
const SIGNAL_STEP = 0.1;
/** A transfer younger than this (ms) signals only its hand-over. */
const QUIET_START_MS = 500;

/**
 * When a migrateSend tells its workflow about progress. Version 2 of the workflow keeps its history
 * bounded: a signal per 10 % of progress, and on a change of phase or steering; the live figures
 * are in the activity's heartbeat. Version 1 watched the transfer itself and wanted one a second.
 */
export function progressReporter(input: MigrateSendInput, send: (p: TransferProgress) => Promise<void>) {
  let last: TransferProgress | null = null;
  let lastAt = 0;
  const startedAt = Date.now();
  return async (p: TransferProgress): Promise<void> => {
    const now = Date.now();
    const changed =
      last === null ||
      p.transferPhase !== last.transferPhase ||
      p.vcpuCap !== last.vcpuCap ||
      p.guestPaused !== last.guestPaused ||
      Math.floor(p.fraction / SIGNAL_STEP) > Math.floor(last.fraction / SIGNAL_STEP);
    // Version 3 (quietStart): nothing while a transfer is young (a short one would only wake its
    // workflow for nothing), except the hand-over, which compensation must know of; never 'done'
    // (the activity's result says it a moment later).
    const quiet = input.quietStart === true && ((now - startedAt < QUIET_START_MS && p.transferPhase !== 'stop_and_copy') || p.transferPhase === 'done');
    const due = input.convergence ? changed && !quiet : changed || now - lastAt >= REPORT_EVERY_MS;
    if (!due) return;
    last = p;
    lastAt = now;
    await send(p);
  };
}

export function createMigrationActivities(host: HostConfig, xenapi: XenApiClient, reportProgress: ProgressReporter, logger: Logger) {
  const here = () => thisHost(xenapi, host);

  /** The network of this host's management PIF: where VIFs land and migrate_receive listens. */
  async function managementNetwork(self: ThisHost): Promise<string> {
    const pifs = await xenapi.getAllRecordsWhere('PIF', `field "host" = "${self.ref}" and field "management" = "true"`);
    const pif = Object.values(pifs)[0];
    if (!pif) throw ApplicationFailure.nonRetryable(`${host.name} has no management PIF`, 'MigrationPreCheckError');
    return pif.network;
  }

  /**
   * The network whose PIF here receives migrations: temporal.yaml's migrationNetwork (by name_label,
   * the one with a PIF on this host), else the management network. xapi takes the receiving address
   * from this host's PIF on it (migrate_receive's URLs, pool_migrate's `network` option).
   */
  async function migrationNetwork(self: ThisHost): Promise<{ ref: string; configured: boolean }> {
    const label = host.migrationNetwork;
    if (!label) return { ref: await managementNetwork(self), configured: false };
    const named = await xenapi.call<string[]>('network.get_by_name_label', label);
    const pifs = await xenapi.getAllRecordsWhere('PIF', `field "host" = "${self.ref}"`);
    const here = named.filter((ref) => Object.values(pifs).some((pif) => pif.network === ref));
    if (here.length !== 1) {
      const why = named.length === 0 ? `the pool of ${host.name} has no network named "${label}"` : here.length === 0 ? `${host.name} has no PIF on the network "${label}"` : `${host.name} has PIFs on ${here.length} networks named "${label}"`;
      throw ApplicationFailure.nonRetryable(`migration network: ${why} (temporal.yaml migrationNetwork)`, 'MigrationPreCheckError');
    }
    return { ref: here[0] as string, configured: true };
  }

  /**
   * Where a moved VM's disks and VIFs land here: the pool's default SR (Nova's xenapi driver finds
   * its SR with sr_matching_filter "default-sr:true") and the management network.
   */
  async function destinationFacts(): Promise<DestinationFacts> {
    const self = await here();
    const metrics = await xenapi.getRecord('host_metrics', self.record.metrics);
    if (!metrics.live) throw ApplicationFailure.nonRetryable(`${host.name} is not live in its pool (host_metrics.live is false)`, 'HostNotLive');
    const pool = Object.values(await xenapi.getAllRecords('pool'))[0];
    if (!pool || pool.default_SR === NULL_REF) {
      throw ApplicationFailure.nonRetryable(`the pool of ${host.name} has no default SR to receive disks`, 'MigrationPreCheckError');
    }
    const migration = await migrationNetwork(self);
    return {
      host: host.name,
      hostUuid: self.record.uuid,
      srRef: pool.default_SR,
      networkRef: await managementNetwork(self),
      memoryFreeBytes: Number(metrics.memory_free),
      ...(migration.configured ? { migrationNetworkRef: migration.ref } : {}),
    };
  }

  /** vdi_map and vif_map in the source's refs, pointing at the destination's SR and network. */
  async function migrationMaps(vm: FoundVm, input: AssertCanMigrateInput) {
    const vdiMap: Record<string, string> = {};
    const vifMap: Record<string, string> = {};
    if (input.blockMigration) {
      // Refs of the destination's pool, as xapi expects in a cross-pool vdi_map.
      for (const disk of await vmDisks(xenapi, vm.record)) vdiMap[disk.vdiRef] = input.destination.srRef;
    }
    for (const vifRef of vm.record.VIFs) vifMap[vifRef] = input.destination.networkRef;
    return { vdiMap, vifMap };
  }

  async function sourceVm(self: ThisHost, instanceUuid: string): Promise<FoundVm> {
    const vm = await findVm(xenapi, instanceUuid);
    if (!vm || !runsHere(vm, self)) throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} does not run on ${host.name}`, 'InstanceNotFound');
    return vm;
  }

  /** A migration task of the VM that xapi still runs (pending or cancelling), if any. */
  async function runningMigrationTask(vm: FoundVm | null): Promise<string | null> {
    const taskRef = vm ? migrationTaskOf(vm.record) : null;
    if (!taskRef) return null;
    const task = await xenapi.getRecord('task', taskRef).catch(() => null);
    return task && (task.status === 'pending' || task.status === 'cancelling') ? taskRef : null;
  }

  async function presence(instanceUuid: string): Promise<InstancePresence> {
    const self = await here();
    const vm = await findVm(xenapi, instanceUuid);
    const running = runsHere(vm, self);
    let residentOn: string | null = null;
    if (vm && vm.record.resident_on !== NULL_REF) {
      residentOn = (await xenapi.getRecord('host', vm.record.resident_on).catch(() => null))?.name_label ?? vm.record.resident_on;
    }
    return {
      host: host.name,
      present: running || (vm !== null && ownsHalted(vm.record, self)),
      runningHere: running,
      powerState: vm?.record.power_state ?? null,
      residentOn,
      migrationTask: vm ? migrationTaskOf(vm.record) : null,
      vcpuCap: vm ? vcpuCap(vm.record) : null,
    };
  }

  /** Destroys a halted VM record, its VBDs and VIFs, and its disks unless they are on shared storage. */
  async function destroyHaltedVm(vm: FoundVm): Promise<void> {
    if (vm.record.power_state !== 'Halted' || vm.record.resident_on !== NULL_REF) {
      throw ApplicationFailure.nonRetryable(`refusing to destroy ${vm.record.uuid}: it is ${vm.record.power_state}, not halted`, 'InstanceRunning');
    }
    for (const vbdRef of vm.record.VBDs) {
      const vbd = await xenapi.getRecord('VBD', vbdRef).catch(() => null);
      if (!vbd) continue;
      const vdi = vbd.VDI !== NULL_REF ? await xenapi.getRecord('VDI', vbd.VDI).catch(() => null) : null;
      const sr = vdi ? await xenapi.getRecord('SR', vdi.SR).catch(() => null) : null;
      await xenapi.call('VBD.destroy', vbdRef).catch(() => undefined);
      // Disks on a shared SR belong to the pool (the running copy may use them); local ones go.
      if (vdi && sr && !sr.shared) await xenapi.call('VDI.destroy', vbd.VDI).catch(() => undefined);
    }
    for (const vifRef of vm.record.VIFs) await xenapi.call('VIF.destroy', vifRef).catch(() => undefined);
    await xenapi.call('VM.destroy', vm.ref);
  }

  /** What the transfer has moved so far, estimated from task.progress and the sizes that move. */
  function transferProgress(p: TaskProgress, totals: Totals, pace: Pace): TransferProgress {
    const fraction = Math.min(1, Math.max(0, p.progress));
    const all = totals.memoryBytes + totals.diskBytes;
    const done = fraction * all;
    // xapi's storage migration copies disks first, then memory.
    const diskDone = Math.min(totals.diskBytes, done);
    const memDone = done - diskDone;
    return {
      fraction,
      memoryTotalBytes: totals.memoryBytes,
      memoryProcessedBytes: Math.round(memDone),
      memoryRemainingBytes: Math.round(totals.memoryBytes - memDone),
      diskTotalBytes: totals.diskBytes,
      diskProcessedBytes: Math.round(diskDone),
      diskRemainingBytes: Math.round(totals.diskBytes - diskDone),
      fractionPerSecond: pace.perSecond,
      etaSeconds: pace.perSecond > 0 ? (1 - fraction) / pace.perSecond : null,
      transferPhase: p.status === 'success' ? 'done' : p.cancellable ? 'precopy' : 'stop_and_copy',
    };
  }

  return {
    /** Nova's check_can_live_migrate_destination: free memory, SR visibility, enabled. */
    async checkCanLiveMigrateDestination(input: CheckDestinationInput): Promise<DestinationFacts> {
      const self = await here();
      if (!self.record.enabled) {
        const reason = serviceStateOf(host.name, self.record).disabledReason;
        throw ApplicationFailure.nonRetryable(`${host.name} is disabled${reason ? `: ${reason}` : ' (maintenance)'}`, 'MigrationPreCheckError');
      }
      const facts = await destinationFacts();
      if (facts.memoryFreeBytes < input.instance.memoryBytes) {
        throw ApplicationFailure.nonRetryable(
          `${host.name} has ${facts.memoryFreeBytes} bytes free, the instance needs ${input.instance.memoryBytes}`,
          XenApiCode.HOST_NOT_ENOUGH_FREE_MEMORY,
        );
      }
      if (!input.blockMigration && input.sourceHost.pool !== host.pool) {
        throw ApplicationFailure.nonRetryable(
          `${host.name} is in pool ${host.pool}, the instance's shared SR is in ${input.sourceHost.pool}: block migration needed`,
          'InvalidSharedStorage',
        );
      }
      return facts;
    },

    /** Nova's check_can_live_migrate_source: VM.assert_can_migrate with the real maps. */
    async assertCanMigrate(input: AssertCanMigrateInput): Promise<void> {
      const vm = await sourceVm(await here(), input.instanceUuid);
      try {
        if (input.token) {
          const { vdiMap, vifMap } = await migrationMaps(vm, input);
          await xenapi.call('VM.assert_can_migrate', vm.ref, input.token, true, vdiMap, vifMap, {});
        } else {
          // Shared storage in one pool: the destination must be a member of this host's pool.
          await xenapi.getByUuid('host', input.destination.hostUuid);
        }
      } catch (err) {
        throw xenFailure(err, `assert_can_migrate ${input.instanceUuid} to ${input.destination.host}`);
      }
    },

    /** host.migrate_receive on the destination, on its migration network: the token the source sends to. */
    async migrateReceive(): Promise<MigrateToken> {
      try {
        const self = await here();
        return await xenapi.call<MigrateToken>('host.migrate_receive', self.ref, (await migrationNetwork(self)).ref, {});
      } catch (err) {
        throw xenFailure(err, `migrate_receive on ${host.name}`);
      }
    },

    /**
     * Nova's check_can_live_migrate_destination_cleanup: logs out the session of a
     * host.migrate_receive token. xapi (xapi_host.ml) mints a new session of the pool, with the
     * caller's rights, for each token, and nothing ends it but its holder or xapi's expiry; the token
     * of a candidate not chosen is logged out at once, the chosen one's after the transfer (or the
     * rollback). Idempotent: a session already gone (SESSION_INVALID) is what was asked for.
     */
    async logoutMigrateReceive(input: LogoutMigrateReceiveInput): Promise<void> {
      try {
        // Sessions are pool-wide: logged out on the pool master, where the agent's session leads.
        if (!xenapi.sessionRef) await xenapi.login();
        await xenapi.rawCall('session.logout', [input.sessionId]);
      } catch (err) {
        if (isXenApiError(err, XenApiCode.SESSION_INVALID)) return;
        // Never the error's parameters: xapi names the session in them.
        if (isXenApiError(err)) throw ApplicationFailure.create({ message: `session.logout on ${host.name} failed with ${err.code}`, type: err.code });
        throw err;
      }
    },

    /** Nova's pre_live_migration: the destination's SR and network are there and attached. */
    async preLiveMigration(): Promise<DestinationFacts> {
      try {
        return await destinationFacts();
      } catch (err) {
        throw xenFailure(err, `pre_live_migration on ${host.name}`);
      }
    },

    /**
     * Async.VM.migrate_send (or pool_migrate) on the source: follows the task, heartbeats its
     * progress, applies the convergence policy (caps and force-complete through the dom0 plugin, the
     * completion and progress timeouts), and cancels the task only when the workflow asked (an
     * abort) or the policy gave up: a worker shutting down or a missed heartbeat leaves it running,
     * and the retry follows it again, found through the VM's current_operations.
     */
    async migrateSend(input: MigrateSendInput): Promise<MigrateSendResult> {
      const ctx = Context.current();
      const started = Date.now();
      const self = await here();
      const vm = await findVm(xenapi, input.instanceUuid);
      let taskRef = await runningMigrationTask(vm);
      if (!taskRef && !runsHere(vm, self)) {
        if (vm?.record.power_state === 'Halted') {
          // The source copy is halted: its host crashed, or it gave its domain up to the
          // destination and never heard back. Only the destination can tell which.
          throw ApplicationFailure.nonRetryable(
            `instance ${input.instanceUuid} is halted in the pool of ${host.name}: the source copy is gone`,
            'SourceCopyHalted',
          );
        }
        // An earlier attempt's task finished: the VM runs elsewhere in this pool, or left it.
        return { bytesSent: 0, downtimeMs: null, memoryTotalBytes: 0, diskTotalBytes: 0, transferMs: 0, alreadyDone: true };
      }
      const source = vm as FoundVm;
      const totals: Totals = {
        memoryBytes: Number(source.record.memory_static_max),
        diskBytes: input.blockMigration ? (await vmDisks(xenapi, source.record)).reduce((a, d) => a + d.sizeBytes, 0) : 0,
      };
      if (!taskRef) {
        try {
          if (input.token) {
            const { vdiMap, vifMap } = await migrationMaps(source, input);
            taskRef = await xenapi.call<string>('Async.VM.migrate_send', source.ref, input.token, true, vdiMap, vifMap, {});
          } else {
            const destRef = await xenapi.getByUuid('host', input.destination.hostUuid);
            // xapi_vm_migrate.ml pool_migrate: options.network picks the destination's PIF on that network.
            const network = input.destination.migrationNetworkRef;
            taskRef = await xenapi.call<string>('Async.VM.pool_migrate', source.ref, destRef, { live: 'true', ...(network ? { network } : {}) });
          }
        } catch (err) {
          throw xenFailure(err, `migrate ${input.instanceUuid} to ${input.destination.host}`);
        }
        logger.info({ instanceUuid: input.instanceUuid, task: taskRef, dest: input.destination.host }, 'migration task started');
      } else {
        logger.info({ instanceUuid: input.instanceUuid, task: taskRef }, 'following the migration task already running');
      }

      // A retry resumes the policy (its clock, the steps taken) from the last attempt's heartbeat.
      const resumed = ctx.info.heartbeatDetails as TransferHeartbeat | undefined;
      let convergence: ConvergenceState = resumed?.convergence ?? startConvergence(Date.now());
      const steering = resumed?.steering ?? { vcpuCap: null, paused: false };
      const pace: Pace = { perSecond: 0, lastFraction: resumed?.progress.fraction ?? 0, lastAt: Date.now() };
      const plugin = dom0Plugin(xenapi, self.ref);
      const reporter = progressReporter(input, (p) => reportProgress(input.workflowId, p));
      let gaveUp: { why: string; cause: string } | null = null;
      // The workflow's own cancellation (an abort) and the policy giving up cancel the xapi task.
      const cancel = new AbortController();
      ctx.cancellationSignal.addEventListener('abort', () => {
        if (ctx.cancellationDetails?.cancelRequested ?? true) cancel.abort();
      });

      const steer = async (p: TransferProgress, now: number) => {
        if (!input.convergence) return;
        convergence = observe(convergence, p, now);
        const { action, state } = nextAction(convergence, p, now, input.convergence);
        convergence = state;
        if (action.kind === 'cap') {
          logger.info({ instanceUuid: input.instanceUuid, cap: action.cap }, action.why);
          await plugin.setVcpuCap(source.record.domid, action.cap);
          steering.vcpuCap = action.cap;
        } else if (action.kind === 'force_complete') {
          logger.info({ instanceUuid: input.instanceUuid }, `force-complete: ${action.why}`);
          await plugin.pause(source.record.domid);
          steering.paused = true;
        } else if (action.kind === 'abort' && !gaveUp) {
          logger.warn({ instanceUuid: input.instanceUuid }, action.why);
          gaveUp = { why: action.why, cause: action.cause };
          cancel.abort();
        }
      };

      try {
        await waitForTask(xenapi, taskRef, {
          signal: cancel.signal,
          onCancelRefused: (err) => logger.warn({ err: err.message }, 'task.cancel refused: past the point of no return'),
          onProgress: async (p) => {
            const now = Date.now();
            if (now - pace.lastAt >= REPORT_EVERY_MS) {
              pace.perSecond = Math.max(0, ((p.progress - pace.lastFraction) * 1000) / (now - pace.lastAt));
              pace.lastFraction = p.progress;
              pace.lastAt = now;
            }
            const base = transferProgress(p, totals, pace);
            await steer(base, now);
            const progress: TransferProgress = {
              ...base,
              ...(steering.vcpuCap !== null ? { vcpuCap: steering.vcpuCap } : {}),
              ...(steering.paused ? { guestPaused: true } : {}),
            };
            const details: TransferHeartbeat = { progress, convergence, steering };
            ctx.heartbeat(details);
            await reporter(progress).catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'could not signal progress'));
          },
        });
      } catch (err) {
        const policyGaveUp = gaveUp as { why: string; cause: string } | null;
        if (policyGaveUp && isXenApiError(err, XenApiCode.TASK_CANCELLED)) throw ApplicationFailure.nonRetryable(policyGaveUp.why, policyGaveUp.cause);
        if (cancel.signal.aborted && !isXenApiError(err)) throw new CancelledFailure(`migration of ${input.instanceUuid} cancelled on ${host.name}`);
        if (isXenApiError(err, XenApiCode.TASK_CANCELLED)) {
          throw ApplicationFailure.nonRetryable(`migration of ${input.instanceUuid} cancelled on ${host.name}`, XenApiCode.TASK_CANCELLED);
        }
        throw xenFailure(err, `migration of ${input.instanceUuid} to ${input.destination.host}`);
      }
      return {
        bytesSent: totals.memoryBytes + totals.diskBytes,
        downtimeMs: null,
        memoryTotalBytes: totals.memoryBytes,
        diskTotalBytes: totals.diskBytes,
        transferMs: Date.now() - started,
        alreadyDone: false,
      };
    },

    /**
     * Before a rollback: no migration task of the VM may still run (a transfer whose activity
     * gave up goes on in xapi). Cancels it if it can still be cancelled and waits until it ends;
     * 'success' means the VM left, and the workflow must finish instead of rolling back.
     */
    async settleMigrationTask({ instanceUuid }: InstanceRef): Promise<{ outcome: 'none' | 'success' | 'failure' | 'cancelled' }> {
      const ctx = Context.current();
      const taskRef = await runningMigrationTask(await findVm(xenapi, instanceUuid));
      if (!taskRef) return { outcome: 'none' };
      logger.warn({ instanceUuid, task: taskRef }, 'a migration task still runs before rollback: cancelling it');
      try {
        await waitForTask(xenapi, taskRef, {
          signal: AbortSignal.abort(),
          onProgress: () => ctx.heartbeat(),
          onCancelRefused: (err) => logger.warn({ err: err.message }, 'task.cancel refused: waiting for the task to end'),
        });
        return { outcome: 'success' };
      } catch (err) {
        if (isXenApiError(err, XenApiCode.TASK_CANCELLED)) return { outcome: 'cancelled' };
        if (isXenApiError(err)) return { outcome: 'failure' };
        throw err;
      }
    },

    /**
     * Force-complete on Xen: pause the guest's domain so no page is dirtied and pre-copy
     * converges. VM.pause is refused during a migration, so the dom0 plugin pauses the domain.
     */
    async forceCompleteGuest({ instanceUuid }: InstanceRef): Promise<{ paused: boolean }> {
      const self = await here();
      const vm = await findVm(xenapi, instanceUuid);
      if (!vm || !runsHere(vm, self) || vm.record.power_state !== 'Running') return { paused: false };
      await dom0Plugin(xenapi, self.ref).pause(vm.record.domid);
      return { paused: true };
    },

    /** Auto-converge: cap the running domain's vCPU through the dom0 plugin (the record is untouched). */
    async capGuestVcpu({ instanceUuid, vcpuCap: capPercent }: GuestSteering): Promise<void> {
      const self = await here();
      const vm = await findVm(xenapi, instanceUuid);
      if (!vm || !runsHere(vm, self)) return;
      await dom0Plugin(xenapi, self.ref).setVcpuCap(vm.record.domid, capPercent);
    },

    /**
     * Nova's post_live_migration on the source. Inside one pool the record is the running VM: there
     * is nothing to remove. A cross-pool source whose task never heard back keeps a halted record
     * of the VM that now runs in the other pool: that leftover goes, never a VM that runs.
     */
    async postLiveMigration({ instanceUuid }: InstanceRef): Promise<void> {
      const self = await here();
      const vm = await findVm(xenapi, instanceUuid);
      if (!vm) return;
      if (runsHere(vm, self)) {
        throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} still runs on the source ${host.name}`, 'MigrationNotFinished');
      }
      if (vm.record.power_state === 'Halted' && vm.record.resident_on === NULL_REF && !migrationTaskOf(vm.record)) await destroyHaltedVm(vm);
    },

    /** Nova's post_live_migration_at_destination: the VM runs here (a fresh domain: no cap or pause of the source's). */
    async postLiveMigrationAtDestination(input: { instanceUuid: string }): Promise<InstancePresence> {
      const found = await presence(input.instanceUuid);
      if (!found.runningHere) {
        throw ApplicationFailure.nonRetryable(`instance ${input.instanceUuid} does not run on ${host.name}`, 'MigrationNotFinished');
      }
      return found;
    },

    /**
     * Nova's rollback_live_migration_at_destination: no half-received VM stays here. xapi cleans
     * up a failed receive itself; what can be left is a halted record in the destination's pool
     * (cross-pool only). A VM that runs, or the one record a same-pool migration shares with the
     * source, is never touched.
     */
    async rollbackLiveMigrationAtDestination(input: RollbackAtDestinationInput): Promise<{ removed: boolean; kept?: string }> {
      const vm = await findVm(xenapi, input.instanceUuid);
      if (!vm) return { removed: false };
      if (input.sourcePool === undefined || input.sourcePool === host.pool) return { removed: false, kept: `one record in pool ${host.pool}` };
      if (vm.record.power_state !== 'Halted' || vm.record.resident_on !== NULL_REF) {
        return { removed: false, kept: `it is ${vm.record.power_state} on ${vm.record.resident_on}` };
      }
      if (migrationTaskOf(vm.record)) return { removed: false, kept: 'a migration task still holds it' };
      await destroyHaltedVm(vm);
      return { removed: true };
    },

    /** Nova's _rollback_live_migration on the source: the VM keeps running here, as before. */
    async rollbackLiveMigration(input: RollbackSourceInput): Promise<InstancePresence> {
      const self = await here();
      const vm = await findVm(xenapi, input.instanceUuid);
      if (vm && runsHere(vm, self)) {
        const plugin = dom0Plugin(xenapi, self.ref);
        await plugin.setVcpuCap(vm.record.domid, input.vcpuCap);
        if (input.resume) await plugin.unpause(vm.record.domid);
      }
      return presence(input.instanceUuid);
    },

    /** Where the instance stands as this host's pool sees it: compensation decides from this. */
    async instancePresence({ instanceUuid }: InstanceRef): Promise<InstancePresence> {
      return presence(instanceUuid);
    },
  };
}

interface Totals {
  memoryBytes: number;
  diskBytes: number;
}

interface Pace {
  perSecond: number;
  lastFraction: number;
  lastAt: number;
}
