// A QEMU host's look-ups (Nova's libvirt get_available_resource and check_instance_active): its
// guests are the state directories whose pidfile names a live QEMU; QEMU's run state says whether
// the guest is this host's (running, paused) or a migration's other half (inmigrate, postmigrate).
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { z } from 'zod';
import type { HostReport, InstanceView } from '../../types';
import type { HostServiceChange, HostServiceState } from '../../../workflows/definitions';
import type { VmLabels } from '../../conductor/migration-policy';
import type { CheckInstanceInput } from '../inventory';
import type { QemuHost, TravellingGuest } from './host';

/** QEMU run states in which the guest belongs to this host (qapi RunState). */
const OWNED_STATES = new Set(['running', 'paused', 'suspended', 'prelaunch', 'debug', 'io-error', 'watchdog', 'guest-panicked']);

/** An instance of a QEMU host: Nova's view, plus the guest's spec that travels with it. */
export type QemuInstanceView = InstanceView & { hypervisorType: 'QEMU'; qemu: TravellingGuest };

/**
 * service.json: Nova's os-services state of this host, and the maintenance mark (what the Xen side
 * keeps as XenCenter's other_config:MAINTENANCE_MODE), absent in files written before it existed.
 */
const serviceSchema = z.object({ enabled: z.boolean(), disabledReason: z.string().nullable(), forcedDown: z.boolean(), maintenanceMode: z.boolean().default(false) });
type ServiceFile = z.infer<typeof serviceSchema>;

export function createQemuInventory(qh: QemuHost) {
  const serviceFile = () => join(qh.qemu.stateDir, 'service.json');

  async function readServiceFile(): Promise<ServiceFile> {
    const text = await readFile(serviceFile(), 'utf8').catch(() => null);
    return text === null ? { enabled: true, disabledReason: null, forcedDown: false, maintenanceMode: false } : serviceSchema.parse(JSON.parse(text));
  }

  /** Written whole, then renamed: a crash leaves the old or the new state, never half of one. */
  async function writeServiceFile(next: ServiceFile): Promise<void> {
    await writeFile(`${serviceFile()}.tmp`, JSON.stringify(next));
    await rename(`${serviceFile()}.tmp`, serviceFile());
  }

  async function serviceState(): Promise<HostServiceState> {
    const { enabled, disabledReason, forcedDown } = await readServiceFile();
    return { host: qh.host.name, enabled, disabledReason: enabled ? null : disabledReason, forcedDown };
  }

  /** The guest's view, when it belongs to this host (null: none here, or a migration's other half). */
  async function instanceView(uuid: string): Promise<QemuInstanceView | null> {
    if (!(await qh.running(uuid))) return null;
    const [spec, meta] = [await qh.readSpec(uuid), await qh.readMeta(uuid)];
    if (!spec || !meta) return null;
    const state = await (await qh.guest(uuid)).runState();
    if (!OWNED_STATES.has(state)) return null;
    const qemu = await qh.travelling(uuid, spec, meta);
    return {
      uuid,
      name: spec.name,
      powerState: state === 'running' ? 'Running' : 'Paused',
      host: qh.host.name,
      memoryBytes: spec.memoryMiB * 2 ** 20,
      vcpus: 1,
      vcpuCap: null,
      diskBytes: qemu.spec.disks.reduce((sum, d) => sum + d.virtualBytes, 0),
      storage: spec.disks.every((d) => qh.onSharedStorage(d.path)) ? 'shared' : 'local',
      hypervisorType: 'QEMU',
      qemu,
    };
  }

  async function setService(change: HostServiceChange): Promise<void> {
    const now = await readServiceFile();
    await writeServiceFile({
      enabled: change.enabled ?? now.enabled,
      disabledReason: change.enabled === false ? (change.disabledReason ?? null) : change.enabled === true ? null : now.disabledReason,
      forcedDown: change.forcedDown ?? now.forcedDown,
      maintenanceMode: change.enabled === true ? false : now.maintenanceMode,
    });
  }

  return {
    instanceView,

    async describeHost(): Promise<HostReport> {
      await qh.ensureDirs();
      const instances: InstanceView[] = [];
      for (const uuid of await qh.guestUuids()) {
        const view = await instanceView(uuid).catch(() => null);
        if (view) instances.push(view);
      }
      const service = await serviceState();
      const total = qh.qemu.memoryMiB * 2 ** 20;
      return {
        name: qh.host.name,
        pool: qh.host.pool,
        hostUuid: `qemu-${qh.host.name}`,
        enabled: service.enabled,
        disabledReason: service.disabledReason,
        forcedDown: service.forcedDown,
        // Nova's hypervisor_version: the destination may not be older (DestinationHypervisorTooOld).
        productVersion: await qh.qemuVersion(),
        platformVersion: null,
        memoryTotalBytes: total,
        memoryFreeBytes: Math.max(0, total - (await qh.memoryUsedBytes())),
        instances,
      };
    },

    async checkInstanceActive({ instanceUuid, labels }: CheckInstanceInput): Promise<QemuInstanceView & { labels?: VmLabels }> {
      const view = await instanceView(instanceUuid);
      if (!view) throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} is not on ${qh.host.name}`, 'InstanceNotFound');
      // QEMU guests have no tags or other_config: no policy selects them by label.
      return labels ? { ...view, labels: { tags: [], otherConfig: {} } } : view;
    },

    async hostServiceState(): Promise<HostServiceState> {
      return serviceState();
    },

    /**
     * Nova's os-services update, kept in the host's state directory (it outlives the agent). An
     * enable also drops the maintenance mark, as `xe host-enable` drops MAINTENANCE_MODE on Xen.
     */
    async setHostService(change: HostServiceChange): Promise<HostServiceState> {
      await setService(change);
      return serviceState();
    },

    /** Whether the host is enabled, and marked in maintenance (activities/host/maintenance.ts's answer). */
    async maintenanceState(): Promise<{ enabled: boolean; maintenanceMode: boolean }> {
      const { enabled, maintenanceMode } = await readServiceFile();
      return { enabled, maintenanceMode };
    },

    /** Marks (or unmarks) the host in maintenance, leaving its os-services state as it is. */
    async setMaintenanceMode(on: boolean): Promise<void> {
      const now = await readServiceFile();
      if (now.maintenanceMode !== on) await writeServiceFile({ ...now, maintenanceMode: on });
    },
  };
}
