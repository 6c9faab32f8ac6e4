// A QEMU host's maintenance steps (hostMaintenance's disableHostForMaintenance and
// enableHostAfterMaintenance), with the meaning the Xen host's have (activities/host/maintenance.ts):
// disable the host with the maintenance reason os-services shows, and mark it in maintenance; on
// leaving, enable it, which drops the mark and the reason (as `xe host-enable` drops XenCenter's
// MAINTENANCE_MODE). Both live in the host's service.json (inventory.ts), which outlives the agent,
// so a retried step changes nothing more: both are idempotent.
import type { MaintenanceHostState } from '../maintenance';
import { maintenanceReason } from '../maintenance';
import type { createQemuInventory } from './inventory';
import type { QemuHost } from './host';

type QemuInventory = ReturnType<typeof createQemuInventory>;

export function createQemuMaintenance(qh: QemuHost, inventory: QemuInventory) {
  return {
    /** Disabled (the scheduler skips it, its destination check refuses it), then marked in maintenance. */
    async disableHostForMaintenance(): Promise<MaintenanceHostState> {
      await inventory.setHostService({ enabled: false, disabledReason: maintenanceReason(qh.host.name) });
      await inventory.setMaintenanceMode(true);
      return inventory.maintenanceState();
    },
    /** Enabled again: the mark and the reason go with it. */
    async enableHostAfterMaintenance(): Promise<MaintenanceHostState> {
      await inventory.setHostService({ enabled: true });
      return inventory.maintenanceState();
    },
  };
}
