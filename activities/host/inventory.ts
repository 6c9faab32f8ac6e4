// Host-side look-ups: what this host is and runs. The conductor learns about VMs only from these.
import { ApplicationFailure } from '@temporalio/activity';
import type { HostConfig } from '../../lib/config';
import type { XenApiClient } from '../../xenapi/client';
import type { HostReport, InstancePresence, InstanceRef, InstanceView } from '../types';
import { NULL_REF } from '../../xenapi/records';
import { findVm, localVm, thisHost, vcpuCap, vmDisks, type ThisHost } from './xen';

export function createInventoryActivities(host: HostConfig, xenapi: XenApiClient) {
  async function instanceView(here: ThisHost, ref: string): Promise<InstanceView> {
    const vm = await xenapi.getRecord('VM', ref);
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

  return {
    /** This host and the VMs resident on it (not dom0, not templates). */
    async describeHost(): Promise<HostReport> {
      const here = await thisHost(xenapi, host.name);
      const metrics = await xenapi.getRecord('host_metrics', here.record.metrics);
      // Running and paused VMs are resident here; a halted one has no host, so it counts as this
      // host's when its affinity points here or nowhere (Nova would still list it on its host).
      const instances: InstanceView[] = [];
      for (const [ref, vm] of Object.entries(await xenapi.getAllRecords('VM'))) {
        if (vm.is_control_domain || vm.is_a_template) continue;
        const mine = vm.resident_on === here.ref || (vm.resident_on === NULL_REF && (vm.affinity === here.ref || vm.affinity === NULL_REF));
        if (mine) instances.push(await instanceView(here, ref));
      }
      return {
        name: host.name,
        pool: host.pool,
        hostUuid: here.record.uuid,
        enabled: here.record.enabled,
        productVersion: here.record.software_version.product_version ?? null,
        platformVersion: here.record.software_version.platform_version ?? null,
        memoryTotalBytes: Number(metrics.memory_total),
        memoryFreeBytes: Number(metrics.memory_free),
        instances,
      };
    },

    /** Nova's check_instance_active, on the host the instance is resident on. */
    async checkInstanceActive({ instanceUuid }: InstanceRef): Promise<InstanceView> {
      const here = await thisHost(xenapi, host.name);
      const vm = await findVm(xenapi, instanceUuid);
      if (!vm || (vm.record.resident_on !== here.ref && vm.record.resident_on !== NULL_REF)) {
        throw ApplicationFailure.nonRetryable(`instance ${instanceUuid} is not on ${host.name}`, 'InstanceNotFound');
      }
      if (vm.record.power_state !== 'Running' && vm.record.power_state !== 'Paused') {
        throw ApplicationFailure.nonRetryable(
          `instance ${instanceUuid} is ${vm.record.power_state}; live migration needs it Running or Paused`,
          'InstanceInvalidState',
        );
      }
      return instanceView(here, vm.ref);
    },

    /** Whether the instance is resident here, and how: compensation decides from this. */
    async instancePresence({ instanceUuid }: InstanceRef): Promise<InstancePresence> {
      const here = await thisHost(xenapi, host.name);
      const vm = await localVm(xenapi, here, instanceUuid);
      return {
        host: host.name,
        present: vm !== null,
        powerState: vm?.record.power_state ?? null,
        vcpuCap: vm ? vcpuCap(vm.record) : null,
      };
    },
  };
}
