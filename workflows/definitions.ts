// The public interface of ferry's workflows: type names, inputs, signals, updates, queries and the
// shapes they carry. Anything that drives a migration without ferry's API (the temporal CLI, another
// SDK) uses exactly these names; they are documented in the README and must not change lightly.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';

export const LIVE_MIGRATION_WORKFLOW = 'liveMigration';
export const MIGRATION_SLOTS_WORKFLOW = 'migrationSlots';
export const MIGRATION_SLOTS_WORKFLOW_ID = 'ferry-migration-slots';
export const HOST_INVENTORY_WORKFLOW = 'hostInventory';

/** One hostInventory entity per host, in the system namespace. */
export function hostInventoryWorkflowId(host: string): string {
  return `host-inventory-${host}`;
}

/** At most one migration of an instance runs at a time: the workflow id is derived from it. */
export function liveMigrationWorkflowId(instanceUuid: string): string {
  return `live-migration-${instanceUuid.toLowerCase()}`;
}

// xapi and Nova write UUIDs in lower case; an upper-case one names the same instance.
const uuid = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a UUID')
  .transform((s) => s.toLowerCase());

export const LiveMigrationInputSchema = z
  .object({
    instanceUuid: uuid,
    /** Requested destination host name; null or absent lets the scheduler choose. */
    host: z.string().min(1).nullish(),
    /** true: migrate storage too (migrate_send); false: shared storage; "auto": decided from the VM's SRs. */
    blockMigration: z.union([z.boolean(), z.literal('auto')]).default('auto'),
    /** Skip the destination checks (Nova 2.30 to 2.67). Only meaningful with a requested host. */
    force: z.boolean().default(false),
    options: z
      .object({
        completionTimeoutPerGiB: z.number().min(0).optional(),
        timeoutAction: z.enum(['abort', 'force_complete']).optional(),
        progressTimeout: z.number().min(0).optional(),
        autoConverge: z.boolean().optional(),
      })
      .strict()
      .default({}),
    /** Who asked, for Nova's migration record (user_id, project_id). */
    requestedBy: z.object({ userId: z.string(), projectId: z.string() }).strict().optional(),
  })
  .strict();

export type LiveMigrationInput = z.input<typeof LiveMigrationInputSchema>;
export type LiveMigrationRequest = z.output<typeof LiveMigrationInputSchema>;

/** Nova's migration statuses. */
export const MIGRATION_STATUSES = ['accepted', 'queued', 'preparing', 'running', 'completed', 'failed', 'cancelled', 'error'] as const;
export type NovaMigrationStatus = (typeof MIGRATION_STATUSES)[number];

/** The statuses a migration ends in. */
export const FINAL_STATUSES: ReadonlySet<NovaMigrationStatus> = new Set(['completed', 'failed', 'cancelled', 'error']);

/** Finer-grained than Nova's status: where in the conductor's flow the migration is. */
export const MIGRATION_PHASES = [
  'validating',
  'queued',
  'scheduling',
  'preparing',
  'precopy',
  'stop_and_copy',
  'post_migration',
  'rolling_back',
  'done',
] as const;
export type MigrationPhase = (typeof MIGRATION_PHASES)[number];

/**
 * A running transfer as ferry can know it from xapi: the migration task's progress (0..1) and
 * whether it can still be cancelled. xapi publishes no byte counts, rounds or dirty rates, so the
 * byte fields are estimates: the fraction of what moves (memory, plus disks when they move).
 */
export interface TransferProgress {
  /** 0..1, the XenAPI task's progress. */
  fraction: number;
  memoryTotalBytes: number;
  memoryProcessedBytes: number;
  memoryRemainingBytes: number;
  diskTotalBytes: number;
  diskProcessedBytes: number;
  diskRemainingBytes: number;
  /** How fast the fraction grew over the last interval, per second. */
  fractionPerSecond: number;
  /** Seconds left at that pace; null while it is not advancing. */
  etaSeconds: number | null;
  /**
   * precopy while the task can be cancelled; stop_and_copy once xapi made it not cancellable
   * (the point of no return); done when the task succeeded.
   */
  transferPhase: 'precopy' | 'stop_and_copy' | 'done';
  /** vCPU cap applied by auto-converge through the dom0 plugin, percent; absent when uncapped. */
  vcpuCap?: number;
  /** True once force-complete paused the guest's domain on the source. */
  guestPaused?: boolean;
}

export interface HostAttempt {
  host: string;
  reason: string;
}

/** The status query's answer: Nova's migration fields (2.80) plus ferry's phase and progress. */
export interface MigrationStatusView {
  /** Nova's integer id: see novaMigrationId(). */
  id: number;
  /** The workflow run id (Nova's migration uuid). */
  uuid: string;
  workflowId: string;
  server_uuid: string;
  status: NovaMigrationStatus;
  phase: MigrationPhase;
  source_compute: string | null;
  source_node: string | null;
  dest_compute: string | null;
  dest_host: string | null;
  dest_node: string | null;
  migration_type: 'live-migration';
  block_migration: boolean | null;
  memory_total_bytes: number | null;
  memory_processed_bytes: number | null;
  memory_remaining_bytes: number | null;
  disk_total_bytes: number | null;
  disk_processed_bytes: number | null;
  disk_remaining_bytes: number | null;
  created_at: string;
  updated_at: string;
  user_id: string | null;
  project_id: string | null;
  progress: TransferProgress | null;
  attempts: HostAttempt[];
  /** Why it failed or was cancelled. */
  error: { type: string; message: string } | null;
  /** Whether abort would be accepted now, and why not. */
  abortable: boolean;
  notAbortableReason: string | null;
  forceCompleteRequested: boolean;
  /** What the migration waits for now (a host, an agent, a slot), when it waits. */
  waitingFor: string | null;
  /** Cleanups handed to migrationCleanup workflows because a host did not come back in time. */
  cleanups: MigrationCleanupView[];
  /** The migration policy (temporal.yaml's migration.policies) that applies, and why; null until the source confirmed the VM. */
  policy: AppliedMigrationPolicy | null;
}

/** The convergence settings a migration's transfer runs with. */
export interface MigrationSettings {
  completionTimeoutPerGiB: number;
  timeoutAction: 'abort' | 'force_complete';
  progressTimeout: number;
  autoConverge: { enabled: boolean; capSteps: number[]; stepSeconds: number; forceCompleteAfterLastStep: boolean };
}

/** Which migration policy applies to a migration, and why (KubeVirt's status.migrationState.migrationPolicyName). */
export interface AppliedMigrationPolicy {
  /** The policy's name; null when none selects the VM (migration.* applies). */
  name: string | null;
  /** The selector terms that matched, the policies it won over, the request's own options; or "default: no policy matched". */
  reason: string;
  /** The settings the transfer runs with: the request's options, else the policy's, else migration.*. */
  settings: MigrationSettings;
}

/** A cleanup left to the migrationCleanup workflow: what it still has to do, and where. */
export interface MigrationCleanupView {
  workflowId: string;
  host: string;
  steps: string[];
}

/**
 * A migration's view with nothing known beyond who and when: where the workflow starts, and what
 * the API fills from visibility when a run cannot answer its status query.
 */
export function newMigrationView(init: {
  runId: string;
  workflowId: string;
  instanceUuid: string;
  createdAt: string;
  updatedAt?: string;
  status?: NovaMigrationStatus;
  phase?: MigrationPhase;
  sourceHost?: string | null;
  destHost?: string | null;
  blockMigration?: boolean | null;
  requestedBy?: { userId: string; projectId: string };
}): MigrationStatusView {
  const source = init.sourceHost ?? null;
  const dest = init.destHost ?? null;
  return {
    id: novaMigrationId(init.runId),
    uuid: init.runId,
    workflowId: init.workflowId,
    server_uuid: init.instanceUuid,
    status: init.status ?? 'accepted',
    phase: init.phase ?? 'validating',
    source_compute: source,
    source_node: source,
    dest_compute: dest,
    dest_host: dest,
    dest_node: dest,
    migration_type: 'live-migration',
    block_migration: init.blockMigration ?? null,
    memory_total_bytes: null,
    memory_processed_bytes: null,
    memory_remaining_bytes: null,
    disk_total_bytes: null,
    disk_processed_bytes: null,
    disk_remaining_bytes: null,
    created_at: init.createdAt,
    updated_at: init.updatedAt ?? init.createdAt,
    user_id: init.requestedBy?.userId ?? null,
    project_id: init.requestedBy?.projectId ?? null,
    progress: null,
    attempts: [],
    error: null,
    abortable: true,
    notAbortableReason: null,
    forceCompleteRequested: false,
    waitingFor: null,
    cleanups: [],
    policy: null,
  };
}

/** Answer of the abort and forceComplete updates when accepted (a refusal is an update failure with the reason). */
export interface ControlAccepted {
  accepted: true;
  status: NovaMigrationStatus;
  phase: MigrationPhase;
}

export const abortSignal = defineSignal<[reason?: string]>('abort');
export const forceCompleteSignal = defineSignal('forceComplete');
export const abortUpdate = defineUpdate<ControlAccepted, [reason: string]>('requestAbort');
export const forceCompleteUpdate = defineUpdate<ControlAccepted>('requestForceComplete');
export const statusQuery = defineQuery<MigrationStatusView>('status');

/**
 * Nova identifies migrations by integer. ferry's id is the 31-bit FNV-1a hash of the workflow run id:
 * stable, needs no counter, and unique among one instance's migrations, which is the scope that
 * Nova's /servers/{id}/migrations/{mid} looks in.
 */
export function novaMigrationId(runId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < runId.length; i++) {
    hash ^= runId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 1) || 1;
}

// ---- hosts and instances, as the host inventory and the API show them ----

export interface InstanceView {
  uuid: string;
  name: string;
  powerState: 'Running' | 'Paused' | 'Halted' | 'Suspended';
  host: string;
  memoryBytes: number;
  vcpus: number;
  /** VCPUs_params cap in percent of one vCPU; null when uncapped. */
  vcpuCap: number | null;
  diskBytes: number;
  /** SR kind of each disk: shared SRs need no storage migration inside a pool. */
  storage: 'shared' | 'local' | 'none';
}

export interface HostView {
  name: string;
  pool: string;
  up: boolean;
  /** Why the host counts as down. */
  downReason: string | null;
  enabled: boolean;
  /** Why the host was disabled (os-services, kept in xapi's host.other_config); absent in reports of older agents. */
  disabledReason?: string | null;
  /** The operator says the host is down (os-services forced_down): it counts as down. */
  forcedDown?: boolean;
  productVersion: string | null;
  platformVersion: string | null;
  memoryTotalBytes: number;
  memoryFreeBytes: number;
  instances: InstanceView[];
}

export interface ClusterView {
  hosts: HostView[];
  /** When the agents answered, ISO 8601. */
  observedAt: string;
}

// ---- hostService: Nova's os-services update of one host, run on its agent ----

export const HOST_SERVICE_WORKFLOW = 'hostService';

/** One host's os-services update at a time: a second waits for the first, then runs. */
export function hostServiceWorkflowId(host: string): string {
  return `host-service-${host}`;
}

/** What the operator asks of a host's service; an absent field is left as it is. */
export interface HostServiceChange {
  /** true: host.enable (the reason goes); false: host.disable with the reason. */
  enabled?: boolean;
  /** Only with enabled: false; null or absent: no reason. */
  disabledReason?: string | null;
  forcedDown?: boolean;
}

/** A host's service state as its xapi holds it (enabled, host.other_config's reason and forced down). */
export interface HostServiceState {
  host: string;
  enabled: boolean;
  disabledReason: string | null;
  forcedDown: boolean;
}

export interface HostServiceInput {
  host: string;
  /** The host agent's task queue. */
  queue: string;
  change: HostServiceChange;
}

// ---- hostInventory: one entity per host, to which its agent reports ----

/** One report of a host agent: its host as its XenAPI sees it, or why it cannot say. */
export interface HostReportMessage {
  host: string;
  pool: string;
  /** The agent's clock when it read its XenAPI, ISO 8601. */
  observedAt: string;
  /** The host's state; null when the agent could not read it (downReason says why). */
  state: Omit<HostView, 'up' | 'downReason'> | null;
  downReason: string | null;
}

/** What a hostInventory entity holds, and what its memo carries (key `host`). */
export interface HostInventoryState {
  report: HostReportMessage | null;
  /** The entity's clock when the last report arrived, ISO 8601: liveness is judged from it. */
  receivedAt: string | null;
  /** History length at which the entity continues as new (default 1000; tests lower it). */
  maxHistory?: number;
}

export const hostReportSignal = defineSignal<[HostReportMessage]>('hostReport');
export const hostStateQuery = defineQuery<HostInventoryState>('hostState');

// ---- migrationSlots: the entity workflow that holds concurrency leases ----

export interface MigrationLimits {
  outboundPerHost: number;
  inboundPerHost: number;
  cluster: number;
}

export interface SlotRequest {
  workflowId: string;
  sourceHost: string;
  memoryBytes: number;
  limits: MigrationLimits;
  /**
   * The destination the operator requested: the request is granted only when this host's inbound
   * slot fits too, and until then holds nothing. Absent or null: the scheduler picks it later.
   */
  destHost?: string | null;
  /**
   * The migration already holds this lease (it re-asserts it to an entity that lost its state):
   * installed as a holder at once, even above the limits.
   */
  held?: boolean;
}

export interface DestinationReservation {
  workflowId: string;
  destHost: string;
  memoryBytes: number;
  /** The destination's free memory as last observed: the entity keeps reservations within it. */
  memoryFreeBytes: number;
}

export interface SlotHolder {
  workflowId: string;
  sourceHost: string;
  destHost: string | null;
  memoryBytes: number;
}

export interface SlotsState {
  queue: SlotRequest[];
  holders: SlotHolder[];
  /** The limits last requested; carried across continue-as-new (absent in older runs' inputs). */
  limits?: MigrationLimits;
  /** History length at which the entity continues as new (default 5000; tests lower it). */
  maxHistory?: number;
}

export interface SlotGrant {
  /** Memory promised to other migrations' destinations, per host, when the slot was granted. */
  reservedBytes: Record<string, number>;
}

export interface ReservationAnswer {
  destHost: string;
  ok: boolean;
  reason: string | null;
  /** Refused only because the destination receives as many migrations as allowed: it may free up. */
  busy?: boolean;
  /** Refused because the entity knows no lease of this migration (it lost its state): re-assert it. */
  noLease?: boolean;
}

/** The entity's answer to a request made as an update: granted at once, or queued (slotGranted follows). */
export interface SlotAnswer {
  granted: boolean;
  /** Memory promised to other migrations' destinations, per host (when granted). */
  reservedBytes: Record<string, number>;
}

export const requestSlotSignal = defineSignal<[SlotRequest]>('requestSlot');
/** requestSlot as an update (version 3 of the migration): the answer comes back at once. */
export const requestSlotUpdate = defineUpdate<SlotAnswer, [SlotRequest]>('requestSlotNow');
/** reserveDestination as an update (version 3): the answer comes back at once. */
export const reserveDestinationUpdate = defineUpdate<ReservationAnswer, [DestinationReservation]>('reserveDestinationNow');
export const reserveDestinationSignal = defineSignal<[DestinationReservation]>('reserveDestination');
export const releaseDestinationSignal = defineSignal<[{ workflowId: string }]>('releaseDestination');
export const releaseSlotSignal = defineSignal<[{ workflowId: string }]>('releaseSlot');
export const slotsQuery = defineQuery<SlotsState>('slots');
/** Sent by the entity to a migration workflow. */
export const slotGrantedSignal = defineSignal<[SlotGrant]>('slotGranted');
export const destinationReservedSignal = defineSignal<[ReservationAnswer]>('destinationReserved');
/**
 * Sent by a fresh slots entity (one that lost its predecessor's state) to every running migration:
 * one holding a lease re-requests it with held: true, one waiting re-sends its request.
 */
export const reassertLeaseSignal = defineSignal<[]>('reassertLease');
/** Sent by the source agent's migrateSend activity. */
export const progressSignal = defineSignal<[TransferProgress]>('transferProgress');

// ---- hostMaintenance: one workflow per host, draining it and bringing it back ----

export const HOST_MAINTENANCE_WORKFLOW = 'hostMaintenance';

/** At most one maintenance of a host runs at a time: the workflow id is derived from the host. */
export function hostMaintenanceWorkflowId(host: string): string {
  return `host-maintenance-${host}`;
}

/**
 * entering: disabling the host; draining: moving its VMs; paused: no new migration starts (running
 * ones go on); cancelling: no new migration, the running ones finish or are aborted; drained: the
 * host is empty and disabled; partial: the drain ended with VMs left (each with its reason);
 * cancelled: the drain was stopped, the host stays disabled; leaving: enabling the host and
 * bringing VMs back; left: the host is enabled again (the run is over).
 */
export const MAINTENANCE_STATUSES = ['entering', 'draining', 'paused', 'cancelling', 'drained', 'partial', 'cancelled', 'leaving', 'left'] as const;
export type MaintenanceStatus = (typeof MAINTENANCE_STATUSES)[number];

/**
 * waiting: not started yet; migrating: a child liveMigration runs; moved: it runs elsewhere now;
 * failed: it cannot move (reason); gone: it is no longer on the host (halted, deleted, moved by
 * someone else); returning / returned / returnFailed: brought back when leaving.
 */
export type MaintenanceVmState = 'waiting' | 'migrating' | 'moved' | 'failed' | 'gone' | 'returning' | 'returned' | 'returnFailed';

export interface MaintenanceVm {
  uuid: string;
  name: string;
  memoryBytes: number;
  state: MaintenanceVmState;
  /** Migrations started for it (a failed one is retried up to maxAttempts). */
  attempts: number;
  /** The child liveMigration's workflow id while it runs or last ran. */
  migration: string | null;
  destHost: string | null;
  bytesSent: number;
  /** Why its last attempt failed, or why it cannot move. */
  reason: { type: string; message: string } | null;
}

export interface MaintenanceView {
  host: string;
  workflowId: string;
  status: MaintenanceStatus;
  /** Why the drain is partial or was cancelled, or how the host left maintenance. */
  reason: string | null;
  startedAt: string;
  updatedAt: string;
  /** Migrations at once (the outbound limit per host). */
  parallelism: number;
  vms: MaintenanceVm[];
  counts: { total: number; moved: number; migrating: number; waiting: number; failed: number; gone: number; returned: number };
  /** Bytes sent by the finished migrations (xapi reports no bytes: estimates, see MigrationOutcome). */
  bytesMoved: number;
  /** Memory of the VMs still to move, migrating ones included. */
  bytesLeft: number;
  /** bytesLeft at the pace seen so far; null before the first VM moved. */
  etaSeconds: number | null;
  /** Whether leaving brings the moved VMs back (set by leave). */
  bringBack: boolean | null;
}

/** A maintenance that has only just begun (nothing listed or moved yet). */
export function newMaintenanceView(init: { host: string; workflowId: string; status: MaintenanceStatus; at: string; parallelism: number }): MaintenanceView {
  return {
    host: init.host,
    workflowId: init.workflowId,
    status: init.status,
    reason: null,
    startedAt: init.at,
    updatedAt: init.at,
    parallelism: init.parallelism,
    vms: [],
    counts: { total: 0, moved: 0, migrating: 0, waiting: 0, failed: 0, gone: 0, returned: 0 },
    bytesMoved: 0,
    bytesLeft: 0,
    etaSeconds: null,
    bringBack: null,
  };
}

export interface HostMaintenanceInput {
  host: string;
  /** Migrations started per VM before it counts as unable to move (default 3). */
  maxAttempts?: number;
  /** Migrations at once; default the outbound limit per host of temporal.yaml. */
  parallelism?: number;
  /** Carried across continue-as-new. */
  view?: MaintenanceView;
  /** History length at which the run continues as new, once no migration runs (default 2000). */
  maxHistory?: number;
}

export interface MaintenanceCancel {
  /** true: abort the running migrations (those past the point of no return finish); false: let them finish. */
  abortRunning: boolean;
}

export interface MaintenanceLeave {
  /** Bring back each VM this drain moved, to this host, as child live migrations. */
  bringBack: boolean;
}

export const maintenanceStatusQuery = defineQuery<MaintenanceView>('maintenanceStatus');
export const pauseMaintenanceUpdate = defineUpdate<MaintenanceView>('pauseMaintenance');
export const resumeMaintenanceUpdate = defineUpdate<MaintenanceView>('resumeMaintenance');
export const cancelMaintenanceUpdate = defineUpdate<MaintenanceView, [MaintenanceCancel]>('cancelMaintenance');
export const leaveMaintenanceUpdate = defineUpdate<MaintenanceView, [MaintenanceLeave]>('leaveMaintenance');
