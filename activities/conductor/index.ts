// The conductor's activities: the cluster-side work that needs no hypervisor credentials.
import type { Client } from '@temporalio/client';
import type { FerryConfig } from '../../lib/config';
import { HostInventory } from '../../lib/host-inventory';
import type { PlanLiveMigrationInput, ScheduleDestinationsInput } from '../types';
import { runningColdMigration, runningLiveMigration } from './cold-migration';
import { listPolledHosts, pollerOf } from './hosts';
import { planMaintenance } from './maintenance';
import { planLiveMigration, scheduleDestinations } from './placement';
import { schedule, type ScheduleRequest, type ScheduleResult } from './scheduler';
import {
  closedMigrations,
  releaseDestination,
  releaseSlot,
  requestSlot,
  requestSlotNow,
  reserveDestination,
  reserveDestinationNow,
  signalMigration,
  runningMigrations,
  type DestinationReservation,
  type SlotRequest,
} from './slots';

export interface ConductorActivityDeps {
  config: FerryConfig;
  client: Client;
  /** A client of the system namespace, where the hostInventory entities run. */
  systemClient: Client;
}

export function createConductorActivities({ config, client, systemClient }: ConductorActivityDeps) {
  const inventory = new HostInventory(systemClient, config);
  const polls = (host: { name: string; pool: string }) => pollerOf(config, client, host);
  return {
    /** Where the instance is (through the inventory's index) and the requested host, as the inventory knows them. */
    planLiveMigration: (input: PlanLiveMigrationInput) => planLiveMigration(inventory, polls, config.migration, input, config.hosts),
    /** Nova's select_destinations from the inventory: the best few candidates, the reasons for a few others. */
    scheduleDestinations: (input: ScheduleDestinationsInput) => scheduleDestinations(inventory, polls, input, config.hosts),
    /** Runs from before the host inventory (patch 'host-inventory') ask each host queue; kept for them. */
    listPolledHosts: () => listPolledHosts(config, client),
    /** temporal.yaml's migration policy, read once per migration so the workflow stays deterministic. */
    migrationPolicy: async (): Promise<FerryConfig['migration']> => config.migration,
    /** Nova's scheduler select_destinations for a live migration: candidates best first. */
    findDestination: async (request: ScheduleRequest): Promise<ScheduleResult> => schedule(request),
    // The migration-slots entity workflow: each call starts it if it is not running (signalWithStart).
    /** Joins the entity's queue, or re-asserts a held lease (held: true). */
    requestMigrationSlot: (request: SlotRequest) => requestSlot(systemClient, config, request),
    /** Asks for a destination's inbound slot and memory; the entity answers with destinationReserved. */
    reserveMigrationDestination: (reservation: DestinationReservation) => reserveDestination(systemClient, config, reservation),
    /** requestMigrationSlot as an update: answers whether the slot was granted at once. */
    requestMigrationSlotNow: (request: SlotRequest) => requestSlotNow(systemClient, config, request),
    /** reserveMigrationDestination as an update: answers the reservation at once. */
    reserveMigrationDestinationNow: (reservation: DestinationReservation) => reserveDestinationNow(systemClient, config, reservation),
    releaseMigrationDestination: ({ workflowId }: { workflowId: string }) => releaseDestination(systemClient, config, workflowId),
    /** Gives a lease or a queue place back; to an entity that knows neither, a no-op. */
    releaseMigrationSlot: ({ workflowId }: { workflowId: string }) => releaseSlot(systemClient, config, workflowId),
    /** The lease holders and waiters whose workflow is no longer running (terminated runs never release). */
    closedMigrations: (workflowIds: string[]) => closedMigrations(client, workflowIds),
    /** The entity's signal to a migration (slotGranted, destinationReserved, reassertLease). */
    signalMigration: (message: { workflowId: string; signal: string; args: unknown[] }) => signalMigration(client, message),
    /** The running liveMigration workflows, which a fresh entity asks to re-assert their leases. */
    runningMigrations: () => runningMigrations(client),
    /** coldMigration: a live migration of the instance that runs now (its workflow id), or null. */
    runningLiveMigration: ({ instanceUuid }: { instanceUuid: string }) => runningLiveMigration(client, instanceUuid),
    runningColdMigration: ({ instanceUuid }: { instanceUuid: string }) => runningColdMigration(client, instanceUuid),
    /** hostMaintenance: the host's queue, state and running VMs from the inventory, and the limits. */
    planMaintenance: ({ host }: { host: string }) => planMaintenance(inventory, config, host),
  };
}

export type ConductorActivities = ReturnType<typeof createConductorActivities>;
