// Host-side steps of a live migration, named after Nova's compute manager and xenapi driver.
// Every step is idempotent: run twice (a retry after a worker crash), it changes nothing more.
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { HostConfig } from '../../lib/config';
import type { Logger } from '../../lib/logger';
import type { XenApiClient } from '../../xenapi/client';
import { XenApiCode, isXenApiError } from '../../xenapi/errors';
import { NULL_REF, type MigrationProgress } from '../../xenapi/records';
import { waitForTask, type TaskProgress } from '../../xenapi/task';
import type {
  AssertCanMigrateInput,
  CheckDestinationInput,
  DestinationFacts,
  GuestSteering,
  InstancePresence,
  InstanceRef,
  MigrateSendInput,
  MigrateSendResult,
  MigrateToken,
  TransferProgress,
} from '../types';
import { findVm, localVm, residentVm, thisHost, vcpuCap, vmDisks, xenFailure, type ThisHost } from './xen';

/** Sends the migration's progress to its workflow (a signal), so the status query and the policy see it. */
export type ProgressReporter = (workflowId: string, progress: TransferProgress) => Promise<void>;

const REPORT_EVERY_MS = 1000;

export function createMigrationActivities(host: HostConfig, xenapi: XenApiClient, reportProgress: ProgressReporter, logger: Logger) {
  /** The network of this host's management PIF: where VIFs land and migrate_receive listens. */
  async function managementNetwork(here: ThisHost): Promise<string> {
    const pif = await xenapi.getRecord('PIF', here.record.PIFs[0] ?? NULL_REF);
    return pif.network;
  }

  /** This host's local SR and management network: where a moved VM's disks and VIFs land. */
  async function destinationFacts(): Promise<DestinationFacts> {
    const here = await thisHost(xenapi, host.name);
    const metrics = await xenapi.getRecord('host_metrics', here.record.metrics);
    const srs = Object.entries(await xenapi.getAllRecords('SR')).filter(([, sr]) => !sr.shared && sr.content_type !== 'iso');
    const localSrRef = (srs.find(([, sr]) => sr.name_label.includes(host.name)) ?? srs[0])?.[0];
    if (!localSrRef) throw ApplicationFailure.nonRetryable(`${host.name} has no local SR to receive disks`, 'MigrationPreCheckError');
    return {
      host: host.name,
      hostUuid: here.record.uuid,
      srRef: localSrRef,
      networkRef: await managementNetwork(here),
      memoryFreeBytes: Number(metrics.memory_free),
    };
  }

  async function receiveToken(): Promise<MigrateToken> {
    const here = await thisHost(xenapi, host.name);
    return xenapi.call<MigrateToken>('host.migrate_receive', here.ref, await managementNetwork(here), {});
  }

  /** vdi_map and vif_map in the source's refs, pointing at the destination's SR and network. */
  async function migrationMaps(vmRef: string, input: AssertCanMigrateInput) {
    const vm = await xenapi.getRecord('VM', vmRef);
    const vdiMap: Record<string, string> = {};
    const vifMap: Record<string, string> = {};
    if (input.blockMigration) {
      // Refs of the destination's pool, as xapi expects in a cross-pool vdi_map.
      for (const disk of await vmDisks(xenapi, vm)) vdiMap[disk.vdiRef] = input.destination.srRef;
    }
    for (const vifRef of vm.VIFs) vifMap[vifRef] = input.destination.networkRef;
    return { vdiMap, vifMap };
  }

  async function sourceVm(instanceUuid: string) {
    const here = await thisHost(xenapi, host.name);
    const vm = await residentVm(xenapi, here, instanceUuid);
    if (!vm) throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} is not resident on ${host.name}`, 'InstanceNotFound');
    return vm;
  }

  /** A migration task of this VM still running on this host: a retried migrateSend resumes it. */
  async function pendingMigrationTask(instanceUuid: string): Promise<string | null> {
    const tasks = await xenapi.getAllRecords('task');
    const entry = Object.entries(tasks).find(
      ([, t]) => t.other_config.vm_uuid === instanceUuid && (t.status === 'pending' || t.status === 'cancelling'),
    );
    return entry?.[0] ?? null;
  }

  function toTransferProgress(p: TaskProgress, cap: number | null, bandwidth: number): TransferProgress {
    const m: MigrationProgress = p.migration;
    const phase = m.phase === 'stop_and_copy' ? 'stop_and_copy' : m.phase === 'done' ? 'done' : 'precopy';
    return {
      memoryTotalBytes: m.memory_total_bytes ?? 0,
      memoryProcessedBytes: m.memory_processed_bytes ?? 0,
      memoryRemainingBytes: m.memory_remaining_bytes ?? 0,
      diskTotalBytes: m.disk_total_bytes ?? 0,
      diskProcessedBytes: m.disk_processed_bytes ?? 0,
      diskRemainingBytes: m.disk_remaining_bytes ?? 0,
      iteration: m.iteration ?? 0,
      dirtyRateBytesPerSecond: m.dirty_rate_bytes_per_s ?? 0,
      bandwidthBytesPerSecond: bandwidth,
      expectedDowntimeMs: m.expected_downtime_ms ?? 0,
      downtimeMs: m.downtime_ms,
      bytesSent: m.bytes_sent ?? 0,
      fraction: p.progress,
      transferPhase: phase,
      vcpuCap: cap ?? undefined,
    };
  }

  return {
    /** Nova's check_can_live_migrate_destination: free memory, SR visibility, enabled. */
    async checkCanLiveMigrateDestination(input: CheckDestinationInput): Promise<DestinationFacts> {
      const here = await thisHost(xenapi, host.name);
      if (!here.record.enabled) {
        throw ApplicationFailure.nonRetryable(`${host.name} is disabled (maintenance)`, 'MigrationPreCheckError');
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
          XenApiCode.VM_REQUIRES_SR,
        );
      }
      return facts;
    },

    /** Nova's check_can_live_migrate_source: VM.assert_can_migrate with the real maps. */
    async assertCanMigrate(input: AssertCanMigrateInput): Promise<void> {
      const vm = await sourceVm(input.instanceUuid);
      try {
        if (input.token) {
          const { vdiMap, vifMap } = await migrationMaps(vm.ref, input);
          await xenapi.call('VM.assert_can_migrate', vm.ref, input.token, true, vdiMap, vifMap, {});
        } else {
          // Shared storage in one pool: the destination must be a member of this host's pool.
          await xenapi.getByUuid('host', input.destination.hostUuid);
        }
      } catch (err) {
        throw xenFailure(err, `assert_can_migrate ${input.instanceUuid} to ${input.destination.host}`);
      }
    },

    /** host.migrate_receive on the destination: the token the source sends to. */
    async migrateReceive(): Promise<MigrateToken> {
      try {
        return await receiveToken();
      } catch (err) {
        throw xenFailure(err, `migrate_receive on ${host.name}`);
      }
    },

    /** Nova's pre_live_migration: the destination's SR and network are there and attached. */
    async preLiveMigration(): Promise<DestinationFacts> {
      return destinationFacts();
    },

    /**
     * Async.VM.migrate_send (or pool_migrate) on the source: polls the task, heartbeats and
     * signals progress, and cancels the task when the activity is cancelled (abort). A retry
     * resumes the task already running, or finds the VM already gone from this host.
     */
    async migrateSend(input: MigrateSendInput): Promise<MigrateSendResult> {
      const ctx = Context.current();
      const started = Date.now();
      const here = await thisHost(xenapi, host.name);
      let taskRef = await pendingMigrationTask(input.instanceUuid);
      const vm = await residentVm(xenapi, here, input.instanceUuid);
      if (!taskRef && !vm) {
        if (await localVm(xenapi, here, input.instanceUuid)) {
          // Halted here: this host crashed (its VMs halt) while the transfer ran.
          throw ApplicationFailure.nonRetryable(
            `instance ${input.instanceUuid} is halted on ${host.name}: the host went down during the transfer`,
            XenApiCode.VM_BAD_POWER_STATE,
          );
        }
        // An earlier attempt's task finished and the VM left this host.
        return { bytesSent: 0, downtimeMs: null, memoryTotalBytes: 0, diskTotalBytes: 0, transferMs: 0, alreadyDone: true };
      }
      if (!taskRef && vm) {
        try {
          if (input.token) {
            const { vdiMap, vifMap } = await migrationMaps(vm.ref, input);
            taskRef = await xenapi.call<string>('Async.VM.migrate_send', vm.ref, input.token, true, vdiMap, vifMap, {});
          } else {
            const destRef = await xenapi.getByUuid('host', input.destination.hostUuid);
            taskRef = await xenapi.call<string>('Async.VM.pool_migrate', vm.ref, destRef, { live: 'true' });
          }
        } catch (err) {
          throw xenFailure(err, `migrate ${input.instanceUuid} to ${input.destination.host}`);
        }
        logger.info({ instanceUuid: input.instanceUuid, task: taskRef, dest: input.destination.host }, 'migration task started');
      } else {
        logger.info({ instanceUuid: input.instanceUuid, task: taskRef }, 'resuming a running migration task');
      }

      let lastReport = 0;
      let lastBytes = 0;
      let lastAt = Date.now();
      let bandwidth = 0;
      let last: TransferProgress | undefined;
      const cap = vm ? vcpuCap(vm.record) : null;
      try {
        await waitForTask(xenapi, taskRef as string, {
          signal: ctx.cancellationSignal,
          pollMs: 200,
          onCancelRefused: (err) => logger.warn({ err: err.message }, 'task.cancel refused: past the point of no return'),
          onProgress: async (p) => {
            const now = Date.now();
            const sent = p.migration.bytes_sent ?? 0;
            if (now > lastAt && sent >= lastBytes) bandwidth = ((sent - lastBytes) * 1000) / (now - lastAt);
            lastBytes = sent;
            lastAt = now;
            const progress = toTransferProgress(p, cap, Math.round(bandwidth));
            ctx.heartbeat(progress);
            const phaseChanged = progress.transferPhase !== last?.transferPhase || progress.iteration !== last?.iteration;
            last = progress;
            if (phaseChanged || now - lastReport >= REPORT_EVERY_MS) {
              lastReport = now;
              await reportProgress(input.workflowId, progress).catch((err: unknown) =>
                logger.warn({ err: (err as Error).message }, 'could not signal progress'),
              );
            }
          },
        });
      } catch (err) {
        // Cancelled by the workflow (abort): acknowledge the cancellation as such.
        if (ctx.cancellationSignal.aborted) throw new CancelledFailure(`migration of ${input.instanceUuid} cancelled on ${host.name}`);
        if (isXenApiError(err, XenApiCode.TASK_CANCELLED)) {
          throw ApplicationFailure.nonRetryable(`migration of ${input.instanceUuid} cancelled on ${host.name}`, XenApiCode.TASK_CANCELLED);
        }
        throw xenFailure(err, `migration of ${input.instanceUuid} to ${input.destination.host}`);
      }
      const finalTask = await xenapi.getRecord('task', taskRef as string).catch(() => null);
      const m = finalTask?.other_config ?? {};
      return {
        bytesSent: Number(m.bytes_sent ?? last?.bytesSent ?? 0),
        downtimeMs: m.downtime_ms !== undefined ? Number(m.downtime_ms) : null,
        memoryTotalBytes: Number(m.memory_total_bytes ?? 0),
        diskTotalBytes: Number(m.disk_total_bytes ?? 0),
        transferMs: Date.now() - started,
        alreadyDone: false,
      };
    },

    /**
     * Before a rollback: no migration task of the VM may still run on this host (a transfer whose
     * activity timed out goes on in xapi). Cancels it if it can still be cancelled and waits until
     * it ends; 'success' means the VM left, and the workflow must finish instead of rolling back.
     */
    async settleMigrationTask({ instanceUuid }: InstanceRef): Promise<{ outcome: 'none' | 'success' | 'failure' | 'cancelled' }> {
      const ctx = Context.current();
      const taskRef = await pendingMigrationTask(instanceUuid);
      if (!taskRef) return { outcome: 'none' };
      logger.warn({ instanceUuid, task: taskRef }, 'a migration task still runs before rollback: cancelling it');
      try {
        await waitForTask(xenapi, taskRef, {
          signal: AbortSignal.abort(),
          pollMs: 200,
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

    /** Force-complete on Xen: pause the guest so no page is dirtied and pre-copy converges. */
    async forceCompleteGuest({ instanceUuid }: InstanceRef): Promise<void> {
      const here = await thisHost(xenapi, host.name);
      const vm = await residentVm(xenapi, here, instanceUuid);
      if (vm?.record.power_state === 'Running') await xenapi.call('VM.pause', vm.ref);
    },

    /** Auto-converge: cap the guest's vCPU (VCPUs_params cap) so it dirties fewer pages. */
    async capGuestVcpu({ instanceUuid, vcpuCap: capPercent }: GuestSteering): Promise<void> {
      const here = await thisHost(xenapi, host.name);
      const vm = await residentVm(xenapi, here, instanceUuid);
      if (!vm) return;
      await setCap(vm.ref, vm.record.VCPUs_params, capPercent);
    },

    /** Nova's post_live_migration on the source: nothing of the VM is left here. */
    async postLiveMigration({ instanceUuid }: InstanceRef): Promise<void> {
      const here = await thisHost(xenapi, host.name);
      const vm = await findVm(xenapi, instanceUuid);
      if (!vm) return;
      if (vm.record.resident_on === here.ref && vm.record.power_state !== 'Halted') {
        throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} still runs on the source ${host.name}`, 'MigrationNotFinished');
      }
      // A cross-pool source keeps no record of a VM that left; a halted leftover is destroyed.
      if (vm.record.resident_on === here.ref || vm.record.resident_on === NULL_REF) await destroyVm(vm.ref);
    },

    /** Nova's post_live_migration_at_destination: the VM runs here, as it ran before the move. */
    async postLiveMigrationAtDestination(input: { instanceUuid: string; resume: boolean; vcpuCap: number | null }): Promise<InstancePresence> {
      const here = await thisHost(xenapi, host.name);
      const vm = await residentVm(xenapi, here, input.instanceUuid);
      if (!vm) throw ApplicationFailure.nonRetryable(`instance ${input.instanceUuid} did not arrive on ${host.name}`, 'MigrationNotFinished');
      await setCap(vm.ref, vm.record.VCPUs_params, input.vcpuCap);
      if (input.resume && vm.record.power_state === 'Paused') await xenapi.call('VM.unpause', vm.ref);
      const after = await xenapi.getRecord('VM', vm.ref);
      return { host: host.name, present: true, powerState: after.power_state, vcpuCap: vcpuCap(after) };
    },

    /** Nova's rollback_live_migration_at_destination: no half-received VM or its disks stay here. */
    async rollbackLiveMigrationAtDestination({ instanceUuid }: InstanceRef): Promise<{ removed: boolean }> {
      const vm = await findVm(xenapi, instanceUuid);
      if (!vm) return { removed: false };
      if (vm.record.power_state !== 'Halted') await xenapi.call('VM.hard_shutdown', vm.ref);
      await destroyVm(vm.ref);
      return { removed: true };
    },

    /** Nova's _rollback_live_migration on the source: the VM keeps running here, as before. */
    async rollbackLiveMigration(input: { instanceUuid: string; resume: boolean; vcpuCap: number | null }): Promise<InstancePresence> {
      const here = await thisHost(xenapi, host.name);
      const vm = await localVm(xenapi, here, input.instanceUuid);
      if (!vm) {
        throw ApplicationFailure.retryable(`instance ${input.instanceUuid} is not on ${host.name} yet`, 'RollbackPending');
      }
      if (vm.record.power_state === 'Halted') {
        // Nothing to resume: the host crashed under it. The workflow reports the error.
        return { host: host.name, present: true, powerState: 'Halted', vcpuCap: vcpuCap(vm.record) };
      }
      await setCap(vm.ref, vm.record.VCPUs_params, input.vcpuCap);
      if (input.resume && vm.record.power_state === 'Paused') await xenapi.call('VM.unpause', vm.ref);
      const after = await xenapi.getRecord('VM', vm.ref);
      return { host: host.name, present: true, powerState: after.power_state, vcpuCap: vcpuCap(after) };
    },
  };

  async function setCap(vmRef: string, params: Record<string, string>, capPercent: number | null): Promise<void> {
    const current = Number(params.cap ?? '0') || null;
    if (current === capPercent) return;
    await xenapi.call('VM.remove_from_VCPUs_params', vmRef, 'cap').catch(() => undefined);
    if (capPercent !== null) await xenapi.call('VM.add_to_VCPUs_params', vmRef, 'cap', String(capPercent));
  }

  async function destroyVm(vmRef: string): Promise<void> {
    const vm = await xenapi.getRecord('VM', vmRef);
    for (const vbdRef of vm.VBDs) {
      const vbd = await xenapi.getRecord('VBD', vbdRef).catch(() => null);
      if (!vbd) continue;
      const vdi = vbd.VDI !== NULL_REF ? await xenapi.getRecord('VDI', vbd.VDI).catch(() => null) : null;
      const sr = vdi ? await xenapi.getRecord('SR', vdi.SR).catch(() => null) : null;
      await xenapi.call('VBD.destroy', vbdRef).catch(() => undefined);
      // Disks on a shared SR belong to the pool (the running copy may use them); local ones go.
      if (vdi && sr && !sr.shared) await xenapi.call('VDI.destroy', vbd.VDI).catch(() => undefined);
    }
    for (const vifRef of vm.VIFs) await xenapi.call('VIF.destroy', vifRef).catch(() => undefined);
    await xenapi.call('VM.destroy', vmRef);
  }
}
