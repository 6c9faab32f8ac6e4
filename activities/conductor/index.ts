// The conductor's activities: the cluster-side work that needs no hypervisor credentials.
import type { Client } from '@temporalio/client';
import type { FerryConfig } from '../../lib/config';
import { listPolledHosts } from './hosts';
import { schedule, type ScheduleRequest, type ScheduleResult } from './scheduler';
import { closedMigrations, requestSlot, type SlotRequest } from './slots';

export interface ConductorActivityDeps {
  config: FerryConfig;
  client: Client;
}

export function createConductorActivities({ config, client }: ConductorActivityDeps) {
  return {
    listPolledHosts: () => listPolledHosts(config, client),
    /** temporal.yaml's migration policy, read once per migration so the workflow stays deterministic. */
    migrationPolicy: async (): Promise<FerryConfig['migration']> => config.migration,
    /** Nova's scheduler select_destinations for a live migration: candidates best first. */
    findDestination: async (request: ScheduleRequest): Promise<ScheduleResult> => schedule(request),
    /** Joins the queue of the migration-slots entity workflow (starting it if needed). */
    requestMigrationSlot: (request: SlotRequest) => requestSlot(client, config, request),
    /** The lease holders whose workflow is no longer running (terminated runs never release). */
    closedMigrations: (workflowIds: string[]) => closedMigrations(client, workflowIds),
  };
}

export type ConductorActivities = ReturnType<typeof createConductorActivities>;
