// Host-side look-ups: what this host is and runs. The conductor learns about VMs only from these.
import { ApplicationFailure } from '@temporalio/activity';
import type { HostConfig } from '../../lib/config';
import type { XenApiClient } from '../../xenapi/client';
import type { HostReport, InstanceRef, InstanceView } from '../types';
import type { VmRecord } from '../../xenapi/records';
import type { VmLabels } from '../conductor/migration-policy';
import { serviceStateOf } from './service';
import { findVm, ownsHalted, thisHost, vcpuCap, vmDisks, type ThisHost } from './xen';

/** checkInstanceActive's input: with `labels`, the VM's tags and these other_config keys are answered too. */
export interface CheckInstanceInput extends InstanceRef {
  labels?: { otherConfigKeys: string[] };
}

export function createInventoryActivities(host: HostConfig, xenapi: XenApiClient) {
  async function instanceView(vm: VmRecord): Promise<InstanceView> {
    const disks = await vmDisks(xenapi, vm);
    return {
      uuid: vm.uuid,
      name: vm.name_label,
      powerState: vm.power_state,
      host: host.name,
      memoryBytes: Number(vm.memory_static_max),
      vcpus: Number(vm.VCPUs_at_startup),
      vcpuCap: vcpuCap(vm),
      diskBytes: disks.reduce((sum, d) => sum + d.sizeBytes, 0),
      storage: disks.length === 0 ? 'none' : disks.every((d) => d.shared) ? 'shared' : 'local',
    };
  }

  /** This host's: resident here (running or paused), or halted and counted as this host's. */
  const mine = (vm: VmRecord, self: ThisHost) => vm.resident_on === self.ref || ownsHalted(vm, self);

  return {
    /** This host and the VMs on it (not dom0, not templates), from its pool's database. */
    async describeHost(): Promise<HostReport> {
      const self = await thisHost(xenapi, host);
      const metrics = await xenapi.getRecord('host_metrics', self.record.metrics);
      // The master answers for a member that died: host_metrics.live is how xapi says so.
      if (!metrics.live) throw ApplicationFailure.nonRetryable(`${host.name} is not live in its pool (host_metrics.live is false)`, 'HostNotLive');
      const instances: InstanceView[] = [];
      for (const vm of Object.values(await xenapi.getAllRecords('VM'))) {
        if (vm.is_control_domain || vm.is_a_template || vm.is_a_snapshot) continue;
        if (mine(vm, self)) instances.push(await instanceView(vm));
      }
      const service = serviceStateOf(host.name, self.record);
      return {
        name: host.name,
        pool: host.pool,
        hostUuid: self.record.uuid,
        enabled: self.record.enabled,
        disabledReason: service.disabledReason,
        forcedDown: service.forcedDown,
        productVersion: self.record.software_version.product_version ?? null,
        platformVersion: self.record.software_version.platform_version ?? null,
        memoryTotalBytes: Number(metrics.memory_total),
        memoryFreeBytes: Number(metrics.memory_free),
        instances,
      };
    },

    /**
     * Nova's check_instance_active, on the host the instance is resident on. With `labels`, it also
     * answers the VM's tags and those other_config entries, from this same read of the VM's record:
     * the migration policy is chosen from them, never from the inventory's cached copy.
     */
    async checkInstanceActive({ instanceUuid, labels }: CheckInstanceInput): Promise<InstanceView & { labels?: VmLabels }> {
      const self = await thisHost(xenapi, host);
      const vm = await findVm(xenapi, instanceUuid);
      if (!vm || !mine(vm.record, self)) {
        throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} is not on ${host.name}`, 'InstanceNotFound');
      }
      if (vm.record.power_state !== 'Running' && vm.record.power_state !== 'Paused') {
        throw ApplicationFailure.nonRetryable(
          `instance ${instanceUuid} is ${vm.record.power_state}; live migration needs it Running or Paused`,
          'InstanceInvalidState',
        );
      }
      const view = await instanceView(vm.record);
      if (!labels) return view;
      const otherConfig: Record<string, string> = {};
      for (const key of labels.otherConfigKeys) {
        const value = vm.record.other_config[key];
        if (value !== undefined) otherConfig[key] = value;
      }
      return { ...view, labels: { tags: [...vm.record.tags], otherConfig } };
    },
  };
}
