// The host agent's activities, bound to this host's XenAPI session.
import type { HostConfig } from '../../lib/config';
import type { Logger } from '../../lib/logger';
import type { XenApiClient } from '../../xenapi/client';
import { createInventoryActivities } from './inventory';
import { createMigrationActivities, type ProgressReporter } from './migration';

export type { ProgressReporter };

export interface HostActivityDeps {
  host: HostConfig;
  xenapi: XenApiClient;
  logger: Logger;
  reportProgress: ProgressReporter;
}

export function createHostActivities({ host, xenapi, logger, reportProgress }: HostActivityDeps) {
  return {
    ...createInventoryActivities(host, xenapi),
    ...createMigrationActivities(host, xenapi, reportProgress, logger),
  };
}

export type HostActivities = ReturnType<typeof createHostActivities>;
