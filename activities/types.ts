// Inputs and results of ferry's activities: what crosses the Temporal boundary between the
// workflow and the workers. No credentials ever travel here.
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
  memoryFreeBytes: number;
}

/** host.migrate_receive's token map (it holds a session handle on the destination, not a password). */
export type MigrateToken = Record<string, string>;

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

/** Where the instance stands on one host, for compensation to decide what to undo. */
export interface InstancePresence {
  host: string;
  present: boolean;
  powerState: InstanceView['powerState'] | null;
  vcpuCap: number | null;
}

export interface GuestSteering {
  instanceUuid: string;
  /** Percent of one vCPU; null removes the cap. */
  vcpuCap: number | null;
}
