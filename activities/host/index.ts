// The host agent's activities, bound to this host's XenAPI session.
import type { HostConfig } from '../../lib/config';
import type { Logger } from '../../lib/logger';
import type { XenApiClient } from '../../xenapi/client';
import { createColdMigrationActivities } from './cold-migration';
import { createInventoryActivities } from './inventory';
import { createMaintenanceActivities } from './maintenance';
import { createMigrationActivities, type ProgressReporter } from './migration';
import { createServiceActivities } from './service';

export type { ProgressReporter };

export interface HostActivityDeps {
  host: HostConfig;
  xenapi: XenApiClient;
  logger: Logger;
  reportProgress: ProgressReporter;
  /**
   * Reports this host to the inventory now (the agent's HostReporter). The steps that end a migration
   * (post-migration, rollback) start it as they return, so that the inventory knows the VM's host
   * within moments; the transfer leaves it to the reporter's event.from watch.
   */
  reportInventory?: () => Promise<void>;
}

export function createHostActivities({ host, xenapi, logger, reportProgress, reportInventory }: HostActivityDeps) {
  const migration = createMigrationActivities(host, xenapi, reportProgress, logger);
  const maintenance = createMaintenanceActivities(host, xenapi);
  const service = createServiceActivities(host, xenapi);
  const coldMigration = createColdMigrationActivities(host, xenapi, logger);
  /**
   * The step, then a report, sent while the step's result goes back (a look-up that meets the old
   * report a moment later asks the host itself and looks again); a report that fails is the
   * periodic report's job, not the step's failure.
   */
  const thenReport =
    <A extends unknown[], R>(step: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const result = await step(...args);
      void reportInventory?.().catch((err: unknown) => logger.warn({ err }, 'inventory report after a step failed'));
      return result;
    };
  return {
    ...createInventoryActivities(host, xenapi),
    ...migration,
    ...service,
    ...coldMigration,
    // A host enabled or disabled is in the inventory (and so in the scheduler's view) before the step returns.
    setHostService: async (change: Parameters<typeof service.setHostService>[0]) => {
      const state = await service.setHostService(change);
      await reportInventory?.().catch((err: unknown) => logger.warn({ err }, 'inventory report after an os-services update failed'));
      return state;
    },
    postLiveMigration: thenReport(migration.postLiveMigration),
    postLiveMigrationAtDestination: thenReport(migration.postLiveMigrationAtDestination),
    rollbackLiveMigrationAtDestination: thenReport(migration.rollbackLiveMigrationAtDestination),
    rollbackLiveMigration: thenReport(migration.rollbackLiveMigration),
    // A resize's VM appears, disappears or starts: the inventory knows it before the step returns.
    finishMigration: thenReport(coldMigration.finishMigration),
    confirmMigration: thenReport(coldMigration.confirmMigration),
    revertMigrationAtDestination: thenReport(coldMigration.revertMigrationAtDestination),
    finishRevertMigration: thenReport(coldMigration.finishRevertMigration),
    // The scheduler reads `enabled` from the inventory: report it as soon as it changed.
    disableHostForMaintenance: thenReport(maintenance.disableHostForMaintenance),
    enableHostAfterMaintenance: thenReport(maintenance.enableHostAfterMaintenance),
  };
}

export type HostActivities = ReturnType<typeof createHostActivities>;
