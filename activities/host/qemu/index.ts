// The host activities of a QEMU host (temporal.yaml `driver: qemu`): the same names, inputs and
// results as the Xen host's (activities/host/index.ts), so that liveMigration runs unchanged.
// Host maintenance works as on Xen (maintenance.ts). Resize and cold migration are not implemented
// for QEMU hosts: their first step refuses them at once (cold-migration.ts).
import type { HostConfig } from '../../../lib/config';
import type { Logger } from '../../../lib/logger';
import type { ProgressReporter } from '../migration';
import { createQemuColdMigration } from './cold-migration';
import { QemuHost } from './host';
import { createQemuInventory } from './inventory';
import { createQemuMaintenance } from './maintenance';
import { createQemuMigration } from './migration';

export interface QemuHostActivityDeps {
  host: HostConfig;
  /** Every host of temporal.yaml (which share this host's images directory). */
  peers: readonly HostConfig[];
  logger: Logger;
  reportProgress: ProgressReporter;
  reportInventory?: () => Promise<void>;
}

export function createQemuHostActivities({ host, peers, logger, reportProgress, reportInventory }: QemuHostActivityDeps) {
  const qh = new QemuHost(host, peers);
  const inventory = createQemuInventory(qh);
  const migration = createQemuMigration(qh, inventory, reportProgress, logger);
  /** The step, then a report of this host (as the Xen agent does after the steps that move a guest). */
  const thenReport =
    <A extends unknown[], R>(step: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const result = await step(...args);
      void reportInventory?.().catch((err: unknown) => logger.warn({ err }, 'inventory report after a step failed'));
      return result;
    };
  const maintenance = createQemuMaintenance(qh, inventory);
  const { instanceView: _instanceView, maintenanceState: _maintenanceState, setMaintenanceMode: _setMaintenanceMode, ...inventorySteps } = inventory;
  const { reapStaleIncoming, ...migrationSteps } = migration;
  /** Each report also ends destinations left waiting by a candidate that was not chosen. */
  const describeHost = async () => {
    await reapStaleIncoming().catch((err: unknown) => logger.warn({ err }, 'could not end stale destinations'));
    return inventory.describeHost();
  };
  return {
    qemuHost: qh,
    activities: {
      ...inventorySteps,
      ...migrationSteps,
      ...createQemuColdMigration(qh),
      describeHost,
      setHostService: thenReport(inventory.setHostService),
      disableHostForMaintenance: thenReport(maintenance.disableHostForMaintenance),
      enableHostAfterMaintenance: thenReport(maintenance.enableHostAfterMaintenance),
      postLiveMigration: thenReport(migration.postLiveMigration),
      postLiveMigrationAtDestination: thenReport(migration.postLiveMigrationAtDestination),
      rollbackLiveMigrationAtDestination: thenReport(migration.rollbackLiveMigrationAtDestination),
      rollbackLiveMigration: thenReport(migration.rollbackLiveMigration),
    },
  };
}
