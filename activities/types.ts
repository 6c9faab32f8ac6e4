// Inputs and results of ferry's activities: what crosses the Temporal boundary between the
// workflow and the workers. No credentials ever travel here.
import type { FerryConfig } from '../lib/config';
import type { ConvergencePolicy, ConvergenceState } from '../workflows/convergence';
import type { HostView, InstanceView, TransferProgress } from '../workflows/definitions';

export type { HostView, InstanceView, TransferProgress };

/** What a host agent reports about its own host. */
export type HostReport = Omit<HostView, 'up' | 'downReason'> & { hostUuid: string };

export interface InstanceRef {
  instanceUuid: string;
}

/** Destination facts the source needs to build vdi_map and vif_map. */
export interface DestinationFacts {
  host: string;
  hostUuid: string;
  /** SR the destination puts moved disks on (its local SR), as a ref of the destination's pool. */
  srRef: string;
  /** Network the destination attaches VIFs to, as a ref of the destination's pool. */
  networkRef: string;
  /**
   * The network temporal.yaml names for the destination's migration traffic (migrationNetwork), as a
   * ref of its pool: VM.pool_migrate's `network` option. Absent: xapi's default (the host's address).
   */
  migrationNetworkRef?: string;
  memoryFreeBytes: number;
}

/** host.migrate_receive's token map (it holds a session handle on the destination, not a password). */
export type MigrateToken = Record<string, string>;

/** The session a host.migrate_receive token holds (its session_id), to log out. */
export interface LogoutMigrateReceiveInput {
  sessionId: string;
}

export interface CheckDestinationInput {
  instance: InstanceView;
  sourceHost: { name: string; pool: string };
  blockMigration: boolean;
}

export interface AssertCanMigrateInput {
  instanceUuid: string;
  destination: DestinationFacts;
  blockMigration: boolean;
  token: MigrateToken | null;
  samePool: boolean;
}

export interface MigrateSendInput extends AssertCanMigrateInput {
  /** The workflow to send progress signals to. */
  workflowId: string;
  /**
   * The convergence policy the agent applies while it follows the task (version 2 of the workflow):
   * vCPU caps and force-complete through the dom0 plugin, the completion and progress timeouts.
   * Absent (version 1), the workflow watches and the agent reports every second.
   */
  convergence?: ConvergencePolicy;
  /**
   * Version 3: signal nothing while the transfer is young (but its hand-over) and never 'done'; the
   * workflow takes the final figures from the result.
   */
  quietStart?: boolean;
}

/** What a migrateSend attempt heartbeats: a retry resumes the policy where the last attempt was. */
export interface TransferHeartbeat {
  progress: TransferProgress;
  convergence: ConvergenceState;
  steering: { vcpuCap: number | null; paused: boolean };
}

export interface MigrateSendResult {
  bytesSent: number;
  downtimeMs: number | null;
  memoryTotalBytes: number;
  diskTotalBytes: number;
  transferMs: number;
  /** True when a retried activity found the VM already gone from the source (an earlier attempt finished). */
  alreadyDone: boolean;
}

/**
 * Where the instance stands, as seen from one host's pool database, for compensation to decide
 * what to undo. In one pool both hosts see the same record: `runningHere` tells them apart.
 */
export interface InstancePresence {
  host: string;
  /** Its domain runs here, or it is halted and counted as this host's. */
  present: boolean;
  /** Its domain runs (or is paused) on this host. */
  runningHere: boolean;
  /** Power state of the pool's record; null when the pool does not know the VM. */
  powerState: InstanceView['powerState'] | null;
  /** Name of the host the pool's record says it is resident on, if any. */
  residentOn: string | null;
  /** The migration task in the VM's current_operations, while one runs. */
  migrationTask: string | null;
  vcpuCap: number | null;
}

export interface RollbackAtDestinationInput {
  instanceUuid: string;
  /** The source's pool: in the same pool there is one VM record, and it is never destroyed. */
  sourcePool?: string;
}

/** How the source puts the guest back after a failed or aborted transfer. */
export interface RollbackSourceInput {
  instanceUuid: string;
  /** Unpause the domain ferry paused (force-complete). */
  resume: boolean;
  /** The cap the domain ran with before auto-converge (null: uncapped). */
  vcpuCap: number | null;
}

export interface GuestSteering {
  instanceUuid: string;
  /** Percent of one vCPU; null removes the cap. */
  vcpuCap: number | null;
}

/** A host as a migration carries it: what the inventory knew of it, without its VMs. */
export type HostSummary = Omit<HostView, 'instances'> & { queue: string };

export interface PlanLiveMigrationInput {
  instanceUuid: string;
  requestedHost: string | null;
  /** Hosts that just said the instance is not theirs: the plan waits for the inventory to show it elsewhere. */
  notOn?: string[];
}

export interface LiveMigrationPlan {
  /** temporal.yaml's migration policy, read once per migration so the workflow stays deterministic. */
  policy: FerryConfig['migration'];
  source: HostSummary;
  requested: HostSummary | null;
}

export interface ScheduleDestinationsInput {
  instance: InstanceView;
  source: HostSummary;
  /** Hosts already tried (and the source): not candidates again. */
  excluded: string[];
  blockMigration: boolean;
  /** Memory already promised to other migrations, per host. */
  reservedBytes: Record<string, number>;
  /** How many candidates to answer, best first. */
  limit: number;
}

export interface ScheduledDestinations {
  candidates: HostSummary[];
  /** Why hosts were filtered out, at most a few (rejectedMore counts the rest). */
  rejected: Array<{ host: string; reason: string }>;
  rejectedMore: number;
  /** Hosts that passed the filters beyond the limit. */
  moreCandidates: number;
}
