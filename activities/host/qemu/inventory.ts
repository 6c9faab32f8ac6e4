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

const serviceSchema = z.object({ enabled: z.boolean(), disabledReason: z.string().nullable(), forcedDown: z.boolean() });

export function createQemuInventory(qh: QemuHost) {
  const serviceFile = () => join(qh.qemu.stateDir, 'service.json');

  async function serviceState(): Promise<HostServiceState> {
    const text = await readFile(serviceFile(), 'utf8').catch(() => null);
    const state = text === null ? { enabled: true, disabledReason: null, forcedDown: false } : serviceSchema.parse(JSON.parse(text));
    return { host: qh.host.name, ...state, disabledReason: state.enabled ? null : state.disabledReason };
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

    /** Nova's os-services update, kept in the host's state directory (it outlives the agent). */
    async setHostService(change: HostServiceChange): Promise<HostServiceState> {
      const now = await serviceState();
      const next = {
        enabled: change.enabled ?? now.enabled,
        disabledReason: change.enabled === false ? (change.disabledReason ?? null) : change.enabled === true ? null : now.disabledReason,
        forcedDown: change.forcedDown ?? now.forcedDown,
      };
      await writeFile(`${serviceFile()}.tmp`, JSON.stringify(next));
      await rename(`${serviceFile()}.tmp`, serviceFile());
      return serviceState();
    },
  };
}
