// The conductor's activities: the cluster-side work that needs no hypervisor credentials.
import type { Client } from '@temporalio/client';
import type { FerryConfig } from '../../lib/config';
import { listPolledHosts } from './hosts';
import { schedule, type ScheduleRequest, type ScheduleResult } from './scheduler';
import {
  closedMigrations,
  releaseDestination,
  releaseSlot,
  requestSlot,
  reserveDestination,
  runningMigrations,
  type DestinationReservation,
  type SlotRequest,
} from './slots';

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
    // The migration-slots entity workflow: each call starts it if it is not running (signalWithStart).
    /** Joins the entity's queue, or re-asserts a held lease (held: true). */
    requestMigrationSlot: (request: SlotRequest) => requestSlot(client, config, request),
    /** Asks for a destination's inbound slot and memory; the entity answers with destinationReserved. */
    reserveMigrationDestination: (reservation: DestinationReservation) => reserveDestination(client, config, reservation),
    releaseMigrationDestination: ({ workflowId }: { workflowId: string }) => releaseDestination(client, config, workflowId),
    /** Gives a lease or a queue place back; to an entity that knows neither, a no-op. */
    releaseMigrationSlot: ({ workflowId }: { workflowId: string }) => releaseSlot(client, config, workflowId),
    /** The lease holders and waiters whose workflow is no longer running (terminated runs never release). */
    closedMigrations: (workflowIds: string[]) => closedMigrations(client, workflowIds),
    /** The running liveMigration workflows, which a fresh entity asks to re-assert their leases. */
    runningMigrations: () => runningMigrations(client),
  };
}

export type ConductorActivities = ReturnType<typeof createConductorActivities>;
