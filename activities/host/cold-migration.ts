// Host-side steps of a resize or cold migration, named after Nova's compute manager and its xenapi
// driver (nova/virt/xenapi/vmops.py): migrate_disk_and_power_off is split into its parts (snapshot,
// transfer of the immutable base, power off, transfer of the leaf), finish_migration,
// confirm_migration and finish_revert_migration. The disks move through the dom0 plugin
// `migration` as in os-xenapi: `transfer_vhd` on the source rsyncs one VHD of the chain into the
// destination's staging directory, `move_vhds_into_sr` on the destination renames the staged files
// into its SR, and SR.scan makes xapi see them.
//
// Every step is idempotent: what it made carries the migration's id (VM and VDI other_config,
// the snapshot's name), so a retry after an agent crash finds it instead of making it again. A
// transfer runs as a xapi task (Async.host.call_plugin) whose ref the activity heartbeats: a retry
// follows the task that still runs rather than starting a second rsync.
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { HostConfig } from '../../lib/config';
import type { Logger } from '../../lib/logger';
import type { XenApiClient } from '../../xenapi/client';
import { XenApiCode, isXenApiError } from '../../xenapi/errors';
import { NULL_REF, type VdiRecord, type VmRecord } from '../../xenapi/records';
import { waitForTask } from '../../xenapi/task';
import { findVm, ownsHalted, runsHere, thisHost, xenFailure, type FoundVm, type ThisHost } from './xen';

/** The dom0 plugin Nova's xenapi driver moves disks with (os-xenapi dom0/etc/xapi.d/plugins/migration.py). */
const MIGRATION_PLUGIN = 'migration';
/** Nova's CONF.xenserver.sr_base_path: where an SR without a `path` in its PBD is mounted in dom0. */
const SR_BASE_PATH = '/var/run/sr-mount';
/** The other_config key that marks what a cold migration made (the destination VM, imported VDIs). */
export const COLD_MIGRATION_KEY = 'ferry_cold_migration';
/** The snapshot's name: Nova's "<instance>-snap" label, with the migration so that a retry finds it. */
export const snapshotLabel = (migrationId: string) => `ferry-resize-${migrationId}`;

export interface VifSpec {
  device: string;
  MAC: string;
  MTU: string;
  /** The network's name_label: refs differ between pools, the name is what both share. */
  network: string;
}

/** The instance as a resize needs it, read by its own host. */
export interface ResizeSource {
  instanceUuid: string;
  name: string;
  powerState: 'Running' | 'Halted';
  host: string;
  vcpus: number;
  memoryBytes: number;
  /** The root disk's virtual size. */
  diskBytes: number;
  rootVdiUuid: string;
  vifs: VifSpec[];
  /** How the VM boots (PV_*, HVM_*, platform), copied to the new VM as Nova's _create_vm_record does from the image. */
  boot?: Record<string, unknown>;
}

/** The fields of a VM's record that say how it boots. */
const BOOT_FIELDS = ['PV_bootloader', 'PV_kernel', 'PV_ramdisk', 'PV_args', 'PV_bootloader_args', 'PV_legacy_args', 'HVM_boot_policy', 'HVM_boot_params', 'platform', 'domain_type'];

export interface PrepResizeInput {
  instanceUuid: string;
  memoryBytes: number;
  diskBytes: number;
}

/** The destination's answer to prepResize: where the disks go. */
export interface ResizeDestination {
  host: string;
  /** The address the source's rsync sends to (the host's management address). */
  address: string;
  srUuid: string;
  srPath: string;
  memoryFreeBytes: number;
  srFreeBytes: number;
}

export interface SnapshotInput {
  instanceUuid: string;
  migrationId: string;
}

/** The VHD chain after VM.snapshot: the VM writes into its leaf; the parents no longer change. */
export interface ResizeChain {
  snapshotUuid: string;
  /** The immutable parents of the snapshot's disk, nearest first (Nova's root_vdi_uuids[1:]). */
  baseVdiUuids: string[];
  /** The VM's own leaf, which it keeps writing to until it is shut down. */
  leafVdiUuid: string;
  srPath: string;
  /** Bytes the base chain holds (physical utilisation), for progress. */
  baseBytes: number;
}

export interface TransferVhdInput {
  instanceUuid: string;
  vdiUuid: string;
  /** The destination's address (transfer_vhd's `host`). */
  destAddress: string;
  srPath: string;
  /** The VHD's place in the chain: 0 the leaf, 1.. its parents (Nova's seq_num). */
  seqNum: number;
}

/** What a transfer heartbeats: the xapi task to follow after a retry, and the bytes so far. */
export interface TransferVhdHeartbeat {
  taskRef: string;
  bytes: number;
}

export interface TransferVhdResult {
  /** The VHD's size in bytes (what a complete transfer carries, not what rsync had to resend). */
  bytes: number;
  /** The plugin's answer (rsync's figures when it gives them). */
  plugin: Record<string, unknown>;
  /** The activity followed a task an earlier attempt started. */
  followed: boolean;
}

export interface PowerOffInput {
  instanceUuid: string;
  cleanShutdownTimeoutSeconds: number;
}

export interface PowerOffResult {
  /** When the shutdown began (ms since the epoch, this host's clock): the downtime's start. */
  shutdownStartedAtMs: number | null;
  /** True when the clean shutdown did not finish in time and the VM was shut down hard. */
  hard: boolean;
}

export interface FinishMigrationInput {
  instanceUuid: string;
  migrationId: string;
  name: string;
  srPath: string;
  /** Fresh uuids for the imported chain (Nova's _make_uuid_stack), chosen by the workflow so a retry names the same. */
  uuidStack: string[];
  vcpus: number;
  memoryBytes: number;
  diskBytes: number;
  vifs: VifSpec[];
  boot?: Record<string, unknown>;
  /** Start the VM (it ran on the source): Nova's finish_migration power_on. */
  powerOn: boolean;
}

export interface FinishMigrationResult {
  destInstanceUuid: string;
  /** When the VM started (ms since the epoch, this host's clock); null when it was left halted. */
  startedAtMs: number | null;
  diskBytes: number;
}

export interface RevertAtDestinationInput {
  migrationId: string;
  uuidStack: string[];
}

export interface CleanSourceInput {
  instanceUuid: string;
  migrationId: string;
}

export interface FinishRevertInput extends CleanSourceInput {
  /** Start the VM again (it ran before the migration). */
  powerOn: boolean;
}

const int64 = (n: number) => String(Math.round(n));

export function createColdMigrationActivities(host: HostConfig, xenapi: XenApiClient, logger: Logger) {
  const here = () => thisHost(xenapi, host);

  /** The VM, when it runs here or is halted and counted as this host's. */
  async function localVm(self: ThisHost, instanceUuid: string): Promise<FoundVm | null> {
    const vm = await findVm(xenapi, instanceUuid);
    if (!vm || vm.record.is_a_snapshot || vm.record.is_a_template) return null;
    return runsHere(vm, self) || ownsHalted(vm.record, self) ? vm : null;
  }

  async function requireLocalVm(self: ThisHost, instanceUuid: string): Promise<FoundVm> {
    const vm = await localVm(self, instanceUuid);
    if (!vm) throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} is not on ${host.name}`, 'InstanceNotFound');
    return vm;
  }

  /** The VM's root disk: the VBD at userdevice 0 (Nova's get_vdi_for_vm_safely), else its first disk. */
  async function rootDisk(vm: VmRecord): Promise<{ vbdRef: string; vdiRef: string; vdi: VdiRecord }> {
    const disks: Array<{ vbdRef: string; vdiRef: string; userdevice: string }> = [];
    for (const vbdRef of vm.VBDs) {
      const vbd = await xenapi.getRecord('VBD', vbdRef);
      if (vbd.type === 'Disk' && !vbd.empty && vbd.VDI !== NULL_REF) disks.push({ vbdRef, vdiRef: vbd.VDI, userdevice: vbd.userdevice });
    }
    const root = disks.find((d) => d.userdevice === '0') ?? disks[0];
    if (!root) throw ApplicationFailure.nonRetryable(`instance ${vm.uuid} has no disk to move`, 'ResizeError');
    return { vbdRef: root.vbdRef, vdiRef: root.vdiRef, vdi: await xenapi.getRecord('VDI', root.vdiRef) };
  }

  /** Nova's get_sr_path: the PBD's device_config `path`, else sr_base_path/<SR uuid>. */
  async function srPath(srRef: string): Promise<string> {
    const sr = await xenapi.getRecord('SR', srRef);
    try {
      const self = await here();
      const pbds = await xenapi.call<Record<string, { device_config?: Record<string, string> }>>(
        'PBD.get_all_records_where',
        `field "host" = "${self.ref}" and field "SR" = "${srRef}"`,
      );
      const path = Object.values(pbds)[0]?.device_config?.path;
      if (path) return path;
    } catch (err) {
      // A xapi without PBDs for this SR (the simulator's local SRs): Nova's fallback.
      if (!isXenApiError(err)) throw err;
    }
    return `${SR_BASE_PATH}/${sr.uuid}`;
  }

  /** The pool's default SR, where Nova's xenapi driver puts a moved instance's disks. */
  async function defaultSr(): Promise<string> {
    const pool = Object.values(await xenapi.getAllRecords('pool'))[0];
    if (!pool || pool.default_SR === NULL_REF) throw ApplicationFailure.nonRetryable(`the pool of ${host.name} has no default SR`, 'MigrationPreCheckError');
    return pool.default_SR;
  }

  /** The parent of a VHD in its chain (SM's sm_config `vhd-parent`), or null at the chain's root. */
  function parentOf(vdi: VdiRecord): string | null {
    const sm = (vdi as VdiRecord & { sm_config?: Record<string, string> }).sm_config;
    return sm?.['vhd-parent'] || null;
  }

  async function vdiByUuid(uuid: string): Promise<{ ref: string; record: VdiRecord } | null> {
    try {
      const ref = await xenapi.getByUuid('VDI', uuid);
      return { ref, record: await xenapi.getRecord('VDI', ref) };
    } catch (err) {
      if (isXenApiError(err, XenApiCode.UUID_INVALID) || isXenApiError(err, XenApiCode.HANDLE_INVALID)) return null;
      throw err;
    }
  }

  /** The snapshot this migration took of the VM, if any (its name carries the migration's id). */
  async function snapshotOf(migrationId: string): Promise<FoundVm | null> {
    const snaps = await xenapi.getAllRecordsWhere('VM', 'field "is_a_snapshot" = "true"');
    const found = Object.entries(snaps).find(([, r]) => r.name_label === snapshotLabel(migrationId));
    return found ? { ref: found[0], record: found[1] } : null;
  }

  /** Destroys a halted VM (or snapshot), its VBDs, VIFs and the VDIs it alone uses. */
  async function destroyVm(vm: FoundVm): Promise<void> {
    if (vm.record.power_state !== 'Halted') {
      await xenapi.call('VM.hard_shutdown', vm.ref).catch((err: unknown) => {
        if (!isXenApiError(err, XenApiCode.VM_BAD_POWER_STATE)) throw err;
      });
    }
    for (const vbdRef of vm.record.VBDs) {
      const vbd = await xenapi.getRecord('VBD', vbdRef).catch(() => null);
      if (!vbd) continue;
      await xenapi.call('VBD.destroy', vbdRef).catch(() => undefined);
      if (vbd.type === 'Disk' && vbd.VDI !== NULL_REF) await destroyVdi(vbd.VDI);
    }
    for (const vifRef of vm.record.VIFs) await xenapi.call('VIF.destroy', vifRef).catch(() => undefined);
    await xenapi.call('VM.destroy', vm.ref).catch((err: unknown) => {
      if (!isXenApiError(err, XenApiCode.HANDLE_INVALID)) throw err;
    });
  }

  async function destroyVdi(ref: string): Promise<void> {
    await xenapi.call('VDI.destroy', ref).catch((err: unknown) => {
      if (!isXenApiError(err, XenApiCode.HANDLE_INVALID)) throw err;
    });
  }

  /** A parent no VDI of the SR names any more (its children are gone): removed, as SM's garbage collector would. */
  async function destroyOrphanParents(uuids: string[]): Promise<void> {
    for (const uuid of uuids) {
      const vdi = await vdiByUuid(uuid);
      if (!vdi) continue;
      const children = await xenapi.getAllRecordsWhere('VDI', `field "SR" = "${vdi.record.SR}"`);
      if (Object.values(children).some((c) => parentOf(c) === uuid)) continue;
      await destroyVdi(vdi.ref);
    }
  }

  /** The destination VM this migration made, if any. */
  async function migratedVm(migrationId: string): Promise<FoundVm | null> {
    const vms = await xenapi.getAllRecordsWhere('VM', `field "is_a_snapshot" = "false" and field "is_a_template" = "false"`);
    const found = Object.entries(vms).find(([, r]) => r.other_config[COLD_MIGRATION_KEY] === migrationId);
    return found ? { ref: found[0], record: found[1] } : null;
  }

  /** The network of this pool with the given name_label (the same network the source's VIF was on). */
  async function networkNamed(name: string): Promise<string> {
    const refs = await xenapi.getByNameLabel('network', name);
    if (refs[0]) return refs[0];
    throw ApplicationFailure.nonRetryable(`the pool of ${host.name} has no network named "${name}" for the instance's VIF`, 'ResizeError');
  }

  /**
   * The imported chain's leaf: move_vhds_into_sr once (the staged files are gone after it), then
   * SR.scan; a retry finds the VDIs by the uuids it chose.
   */
  async function importChain(input: FinishMigrationInput, sr: string): Promise<{ ref: string; record: VdiRecord }> {
    const existing = async () => {
      const found = (await Promise.all(input.uuidStack.map((u) => vdiByUuid(u)))).filter((v) => v !== null);
      // The leaf: the one no other imported VHD names as its parent.
      return found.find((v) => !found.some((o) => parentOf(o.record) === v.record.uuid)) ?? null;
    };
    await xenapi.call('SR.scan', sr);
    let leaf = await existing();
    if (!leaf) {
      const answer = await xenapi.callPlugin((await here()).ref, MIGRATION_PLUGIN, 'move_vhds_into_sr', {
        instance_uuid: input.instanceUuid,
        sr_path: input.srPath,
        uuid_stack: JSON.stringify(input.uuidStack),
      });
      await xenapi.call('SR.scan', sr);
      const root = parsePluginAnswer(answer).root as { uuid?: string } | undefined;
      leaf = root?.uuid ? await vdiByUuid(root.uuid) : await existing();
      if (!leaf) throw ApplicationFailure.nonRetryable(`move_vhds_into_sr on ${host.name} answered ${answer}, but SR.scan shows no imported disk`, 'ResizeError');
    }
    if (leaf.record.other_config[COLD_MIGRATION_KEY] !== input.migrationId) {
      await xenapi.call('VDI.add_to_other_config', leaf.ref, COLD_MIGRATION_KEY, input.migrationId).catch(() => undefined);
    }
    return leaf;
  }

  return {
    /**
     * The instance as the resize needs it (Nova's resize checks its vm_state: ACTIVE or STOPPED):
     * running or halted here; paused or suspended is InstanceInvalidState.
     */
    async checkInstanceForResize({ instanceUuid }: { instanceUuid: string }): Promise<ResizeSource> {
      const self = await here();
      const vm = await requireLocalVm(self, instanceUuid);
      const state = vm.record.power_state;
      if (state !== 'Running' && state !== 'Halted') {
        throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} is ${state.toLowerCase()}: a resize or cold migration needs it running or halted`, 'InstanceInvalidState');
      }
      const root = await rootDisk(vm.record);
      const vifs: VifSpec[] = [];
      for (const vifRef of vm.record.VIFs) {
        const vif = await xenapi.getRecord('VIF', vifRef);
        const network = await xenapi.getRecord('network', vif.network);
        vifs.push({ device: vif.device, MAC: vif.MAC, MTU: vif.MTU, network: network.name_label });
      }
      return {
        instanceUuid,
        name: vm.record.name_label,
        powerState: state,
        host: host.name,
        vcpus: Number(vm.record.VCPUs_max),
        memoryBytes: Number(vm.record.memory_static_max),
        diskBytes: Number(root.vdi.virtual_size),
        rootVdiUuid: root.vdi.uuid,
        vifs,
        boot: Object.fromEntries(BOOT_FIELDS.filter((f) => f in vm.record).map((f) => [f, (vm.record as Record<string, unknown>)[f]])),
      };
    },

    /** Nova's prep_resize on the destination: enabled, the new memory free, room in the SR for the new disk. */
    async prepResize(input: PrepResizeInput): Promise<ResizeDestination> {
      const self = await here();
      if (!self.record.enabled) throw ApplicationFailure.nonRetryable(`${host.name} is disabled`, 'MigrationPreCheckError');
      const metrics = await xenapi.getRecord('host_metrics', self.record.metrics);
      const memoryFree = Number(metrics.memory_free);
      if (memoryFree < input.memoryBytes) {
        throw ApplicationFailure.nonRetryable(`${host.name} has ${memoryFree} bytes free, the new size needs ${input.memoryBytes}`, XenApiCode.HOST_NOT_ENOUGH_FREE_MEMORY);
      }
      const srRef = await defaultSr();
      const sr = await xenapi.getRecord('SR', srRef);
      const srFree = Number(sr.physical_size) - Number(sr.physical_utilisation);
      if (srFree < input.diskBytes) {
        throw ApplicationFailure.nonRetryable(`SR ${sr.name_label} on ${host.name} has ${srFree} bytes free, the new disk needs ${input.diskBytes}`, 'SR_BACKEND_FAILURE_44');
      }
      return { host: host.name, address: self.record.address, srUuid: sr.uuid, srPath: await srPath(srRef), memoryFreeBytes: memoryFree, srFreeBytes: srFree };
    },

    /**
     * Nova's snapshot_attached_here for _migrate_disk_resizing_up: VM.snapshot turns the VM's disk
     * into an immutable parent with two leaves (the VM's and the snapshot's). A retry finds the
     * snapshot by its name.
     */
    async snapshotForResize(input: SnapshotInput): Promise<ResizeChain> {
      const self = await here();
      const vm = await requireLocalVm(self, input.instanceUuid);
      let snap = await snapshotOf(input.migrationId);
      if (!snap) {
        try {
          const ref = await xenapi.call<string>('VM.snapshot', vm.ref, snapshotLabel(input.migrationId));
          snap = { ref, record: await xenapi.getRecord('VM', ref) };
        } catch (err) {
          throw xenFailure(err, `VM.snapshot of ${input.instanceUuid}`);
        }
      }
      const snapRoot = await rootDisk(snap.record);
      const bases: string[] = [];
      let baseBytes = 0;
      for (let uuid = parentOf(snapRoot.vdi); uuid; ) {
        const parent = await vdiByUuid(uuid);
        if (!parent) throw ApplicationFailure.nonRetryable(`the VHD chain of ${input.instanceUuid} names ${uuid}, which its SR does not have`, 'ResizeError');
        bases.push(uuid);
        baseBytes += Number(parent.record.physical_utilisation);
        uuid = parentOf(parent.record);
      }
      const leaf = await rootDisk(vm.record);
      return { snapshotUuid: snap.record.uuid, baseVdiUuids: bases, leafVdiUuid: leaf.vdi.uuid, srPath: await srPath(leaf.vdi.SR), baseBytes };
    },

    /**
     * Nova's _migrate_vhd: the plugin's transfer_vhd (rsync of one VHD into the destination's
     * staging directory) as a xapi task. Heartbeats the task ref and its bytes; a retry follows
     * the task an earlier attempt started while it still runs, and starts it again otherwise
     * (rsync --partial resumes what reached the destination). A cancellation cancels the task.
     */
    async transferVhd(input: TransferVhdInput): Promise<TransferVhdResult> {
      const ctx = Context.current();
      const vdi = await vdiByUuid(input.vdiUuid);
      if (!vdi) throw ApplicationFailure.nonRetryable(`VDI ${input.vdiUuid} is gone from ${host.name}`, 'ResizeError');
      const size = Number(vdi.record.physical_utilisation) || Number(vdi.record.virtual_size);
      const previous = ctx.info.heartbeatDetails as TransferVhdHeartbeat | undefined;
      let taskRef: string | null = null;
      let followed = false;
      if (previous?.taskRef) {
        const task = await xenapi.getRecord('task', previous.taskRef).catch(() => null);
        if (task && (task.status === 'pending' || task.status === 'success')) {
          taskRef = previous.taskRef;
          followed = true;
          logger.info({ task: taskRef, vdi: input.vdiUuid }, 'following the transfer an earlier attempt started');
        }
      }
      if (!taskRef) {
        const self = await here();
        taskRef = await xenapi.call<string>('Async.host.call_plugin', self.ref, MIGRATION_PLUGIN, 'transfer_vhd', {
          instance_uuid: input.instanceUuid,
          host: input.destAddress,
          vdi_uuid: input.vdiUuid,
          sr_path: input.srPath,
          seq_num: String(input.seqNum),
        });
      }
      const started = taskRef;
      ctx.heartbeat({ taskRef: started, bytes: previous?.bytes ?? 0 } satisfies TransferVhdHeartbeat);
      try {
        const result = await waitForTask(xenapi, started, {
          signal: ctx.cancellationSignal,
          eventTimeoutS: 1,
          onProgress: (p) => ctx.heartbeat({ taskRef: started, bytes: Math.round(p.progress * size) } satisfies TransferVhdHeartbeat),
        });
        await xenapi.call('task.destroy', started).catch(() => undefined);
        return { bytes: size, plugin: parsePluginAnswer(result), followed };
      } catch (err) {
        // rsync failed (killed, connection lost): the next attempt runs it again and --partial
        // resumes from what arrived. Anything else xapi refused is final.
        if (isXenApiError(err, XenApiCode.XENAPI_PLUGIN_FAILURE)) {
          throw ApplicationFailure.retryable(`transfer_vhd of ${input.vdiUuid} to ${input.destAddress}: ${(err as Error).message}`, XenApiCode.XENAPI_PLUGIN_FAILURE);
        }
        throw xenFailure(err, `transfer_vhd of ${input.vdiUuid} to ${input.destAddress}`);
      }
    },

    /**
     * Nova's _resize_ensure_vm_is_shutdown: a clean shutdown, and a hard one when the guest has not
     * stopped within the timeout. A VM already halted (a retry) answers at once.
     */
    async powerOffForResize(input: PowerOffInput): Promise<PowerOffResult> {
      const ctx = Context.current();
      const self = await here();
      const vm = await requireLocalVm(self, input.instanceUuid);
      if (vm.record.power_state === 'Halted') return { shutdownStartedAtMs: null, hard: false };
      const startedAt = Date.now();
      let hard = false;
      let cleanTask: string | null = null;
      let clean: Promise<boolean> = Promise.resolve(false);
      try {
        cleanTask = await xenapi.call<string>('Async.VM.clean_shutdown', vm.ref);
        const task = cleanTask;
        clean = waitForTask(xenapi, task, { onProgress: () => ctx.heartbeat() }).then(
          () => true,
          (err: unknown) => {
            logger.warn({ err, instance: input.instanceUuid }, 'clean shutdown failed');
            return false;
          },
        );
      } catch (err) {
        logger.warn({ err, instance: input.instanceUuid }, 'clean shutdown refused');
      }
      // The guest gets cleanShutdownTimeoutSeconds; then VM.hard_shutdown, which xapi allows while a
      // clean_shutdown runs (xapi_vm_lifecycle.ml is_allowed_concurrently) and which ends it.
      const timer = sleepUnless(input.cleanShutdownTimeoutSeconds * 1000, ctx.cancellationSignal);
      const cleanly = await Promise.race([clean, timer.then(() => false)]);
      timer.cancel();
      if (ctx.cancellationSignal.aborted) throw new CancelledFailure('cancelled while shutting the VM down');
      const now = await xenapi.getRecord('VM', vm.ref);
      if (!cleanly || now.power_state !== 'Halted') {
        hard = now.power_state !== 'Halted';
        if (hard) {
          logger.warn({ instance: input.instanceUuid, seconds: input.cleanShutdownTimeoutSeconds }, 'the guest did not shut down in time: hard shutdown');
          try {
            await xenapi.call('VM.hard_shutdown', vm.ref);
          } catch (err) {
            if (!isXenApiError(err, XenApiCode.VM_BAD_POWER_STATE)) throw xenFailure(err, `VM.hard_shutdown of ${input.instanceUuid}`);
          }
        }
      }
      if (cleanTask) {
        // The clean task ends with the domain; it is not waited for longer than a moment.
        const settled = sleepUnless(5_000, ctx.cancellationSignal);
        await Promise.race([clean, settled]);
        settled.cancel();
        await xenapi.call('task.destroy', cleanTask).catch(() => undefined);
      }
      return { shutdownStartedAtMs: startedAt, hard };
    },

    /**
     * Nova's finish_migration: import the chain into the SR, create the VM with the new size and the
     * same networks, attach its disk, grow it to the flavor's size, start it. A retry finds the VM
     * (other_config) and goes on from where it is.
     */
    async finishMigration(input: FinishMigrationInput): Promise<FinishMigrationResult> {
      const self = await here();
      const sr = await defaultSr();
      let vm = await migratedVm(input.migrationId);
      try {
        if (!vm) {
          const leaf = await importChain(input, sr);
          const ref = await xenapi.call<string>('VM.create', {
            name_label: input.name,
            name_description: `resized from ${input.instanceUuid}`,
            user_version: '1',
            is_a_template: false,
            affinity: self.ref,
            memory_static_min: int64(Math.min(input.memoryBytes, 16 * 2 ** 20)),
            memory_static_max: int64(input.memoryBytes),
            memory_dynamic_min: int64(input.memoryBytes),
            memory_dynamic_max: int64(input.memoryBytes),
            VCPUs_max: int64(input.vcpus),
            VCPUs_at_startup: int64(input.vcpus),
            VCPUs_params: {},
            actions_after_shutdown: 'destroy',
            actions_after_reboot: 'restart',
            actions_after_crash: 'destroy',
            PV_bootloader: 'pygrub',
            PV_kernel: '',
            PV_ramdisk: '',
            PV_args: '',
            PV_bootloader_args: '',
            PV_legacy_args: '',
            HVM_boot_policy: '',
            HVM_boot_params: {},
            platform: {},
            PCI_bus: '',
            other_config: { [COLD_MIGRATION_KEY]: input.migrationId, nova_uuid: input.instanceUuid },
            recommendations: '',
            xenstore_data: {},
            ...input.boot,
          });
          await xenapi.call('VBD.create', {
            VM: ref,
            VDI: leaf.ref,
            userdevice: '0',
            bootable: true,
            mode: 'RW',
            type: 'Disk',
            empty: false,
            other_config: {},
            qos_algorithm_type: '',
            qos_algorithm_params: {},
          });
          for (const vif of input.vifs) {
            await xenapi.call('VIF.create', {
              device: vif.device,
              network: await networkNamed(vif.network),
              VM: ref,
              MAC: vif.MAC,
              MTU: vif.MTU,
              other_config: {},
              qos_algorithm_type: '',
              qos_algorithm_params: {},
            });
          }
          vm = { ref, record: await xenapi.getRecord('VM', ref) };
        }
        // The flavor's disk: VDI.resize only grows (the workflow refused a shrink before anything moved).
        const root = await rootDisk(vm.record);
        if (Number(root.vdi.virtual_size) < input.diskBytes) await xenapi.call('VDI.resize', root.vdiRef, int64(input.diskBytes));
        let startedAtMs: number | null = null;
        if (input.powerOn) {
          const now = await xenapi.getRecord('VM', vm.ref);
          if (now.power_state === 'Halted') await xenapi.call('VM.start_on', vm.ref, self.ref, false, false);
          startedAtMs = Date.now();
        }
        const disk = await xenapi.getRecord('VDI', root.vdiRef);
        return { destInstanceUuid: vm.record.uuid, startedAtMs, diskBytes: Number(disk.virtual_size) };
      } catch (err) {
        throw xenFailure(err, `finish_migration of ${input.instanceUuid} on ${host.name}`);
      }
    },

    /**
     * Nova's confirm_migration on the source: the old VM, its disks and the snapshot go. Run again,
     * it finds nothing left to destroy.
     */
    async confirmMigration(input: CleanSourceInput): Promise<void> {
      const vm = await findVm(xenapi, input.instanceUuid);
      const snap = await snapshotOf(input.migrationId);
      const bases = snap ? await chainParents(snap) : [];
      if (vm && vm.record.power_state !== 'Halted') {
        throw ApplicationFailure.nonRetryable(`refusing to destroy ${input.instanceUuid} on ${host.name}: it is ${vm.record.power_state}`, 'InstanceRunning');
      }
      if (snap) await destroyVm(snap);
      if (vm) await destroyVm(vm);
      await destroyOrphanParents(bases);
    },

    /**
     * Nova's revert_resize on the destination (and the rollback of a failed migration): the VM it
     * made and the disks imported for it go; nothing when there is nothing.
     */
    async revertMigrationAtDestination(input: RevertAtDestinationInput): Promise<{ removed: boolean }> {
      const vm = await migratedVm(input.migrationId);
      if (vm) await destroyVm(vm);
      const imported = (await Promise.all(input.uuidStack.map((u) => vdiByUuid(u)))).filter((v) => v !== null);
      // Leaves before parents: the order the chain allows.
      imported.sort((a, b) => (parentOf(a.record) === b.record.uuid ? -1 : parentOf(b.record) === a.record.uuid ? 1 : 0));
      for (const vdi of imported) await destroyVdi(vdi.ref);
      return { removed: vm !== null || imported.length > 0 };
    },

    /**
     * Nova's finish_revert_migration on the source (and the source's rollback): the snapshot goes,
     * and the VM, which kept its size and its disk, runs again if it ran before.
     */
    async finishRevertMigration(input: FinishRevertInput): Promise<{ running: boolean }> {
      const self = await here();
      const vm = await requireLocalVm(self, input.instanceUuid);
      const snap = await snapshotOf(input.migrationId);
      if (snap) await destroyVm(snap);
      const now = await xenapi.getRecord('VM', vm.ref);
      if (input.powerOn && now.power_state === 'Halted') {
        try {
          await xenapi.call('VM.start_on', vm.ref, self.ref, false, false);
        } catch (err) {
          throw xenFailure(err, `restarting ${input.instanceUuid} on ${host.name}`);
        }
      }
      return { running: input.powerOn || now.power_state === 'Running' };
    },
  };

  /** The uuids of the parents of a snapshot's root disk (to remove once nothing uses them). */
  async function chainParents(snap: FoundVm): Promise<string[]> {
    const root = await rootDisk(snap.record).catch(() => null);
    const out: string[] = [];
    for (let uuid = root ? parentOf(root.vdi) : null; uuid; ) {
      out.push(uuid);
      const parent = await vdiByUuid(uuid);
      uuid = parent ? parentOf(parent.record) : null;
    }
    return out;
  }
}

/** Resolves after `ms`, or at once when `signal` fires; cancel() clears the timer. */
function sleepUnless(ms: number, signal: AbortSignal): Promise<void> & { cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  let done = () => undefined as void;
  const promise = new Promise<void>((resolve) => {
    done = resolve;
    timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  return Object.assign(promise, {
    cancel: () => {
      clearTimeout(timer);
      done();
    },
  });
}

/** A plugin's answer: JSON (os-xenapi's plugins answer json.dumps of their result); anything else is kept as text. */
function parsePluginAnswer(answer: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(answer);
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : { value: parsed };
  } catch {
    return { text: answer };
  }
}

export type ColdMigrationActivities = ReturnType<typeof createColdMigrationActivities>;
