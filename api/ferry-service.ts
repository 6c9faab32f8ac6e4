// Everything the API needs from Temporal, behind one interface: the routes never touch the SDK.
// api/temporal-service.ts implements it on a Temporal client; unit tests pass a fake.
import type { ColdMigrationOperations } from './cold-migration-service';
import type { MaintenanceOperations } from './maintenance-service';
import type {
  ClusterView,
  ControlAccepted,
  HostServiceChange,
  HostServiceState,
  HostView,
  InstanceView,
  LiveMigrationRequest,
  MigrationStatusView,
  NovaMigrationStatus,
} from '../workflows/definitions';

export interface MigrationFilter {
  status?: NovaMigrationStatus;
  /** Source or destination host. */
  host?: string;
  /** Only migrations leaving this host. */
  sourceHost?: string;
  instanceUuid?: string;
  /** true: running workflows only; false: closed only; absent: both. */
  open?: boolean;
  limit?: number;
}

/** What visibility alone tells about a migration, without asking the workflow. */
export interface MigrationSummary {
  workflowId: string;
  runId: string;
  instanceUuid: string;
  status: NovaMigrationStatus | null;
  sourceHost: string | null;
  destHost: string | null;
  running: boolean;
  startedAt: string;
}

export interface StartedMigration {
  workflowId: string;
  runId: string;
  novaId: number;
}

/** Thrown by the service; the routes turn them into HTTP answers. */
export class MigrationNotFoundError extends Error {
  override name = 'MigrationNotFoundError';
}
export class AlreadyMigratingError extends Error {
  override name = 'AlreadyMigratingError';
  constructor(readonly instanceUuid: string) {
    super(`instance ${instanceUuid} is already migrating`);
  }
}
/** The workflow refused an update (abort, force-complete); the message is its reason. */
export class RefusedError extends Error {
  override name = 'RefusedError';
}
/** Temporal (or the workers behind it) did not answer. */
export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
}

/** One step of a migration, as its workflow history recorded it: Nova's instance action event. */
export interface InstanceActionEvent {
  /** Nova's event name: compute_<step> for a host's step (compute_live_migration, ...), conductor_<step> for the conductor's. */
  event: string;
  /** The host whose agent ran the step; null for the conductor. */
  host: string | null;
  /** ISO 8601: when the step was scheduled, and when it ended (null while it runs). */
  startTime: string;
  finishTime: string | null;
  /** Nova's result: Success, Error, or null while the step runs. */
  result: 'Success' | 'Error' | null;
  /** What went wrong (the failure's message and stack), for an Error; only admins see it (Nova's traceback). */
  traceback: string | null;
}

/**
 * One migration as Nova's instance action (`live-migration`; a resize or cold migration is `resize`
 * or `migrate`, its confirm and revert `confirmResize` and `revertResize`): os-instance-actions and
 * `openstack server event`.
 */
export interface InstanceAction {
  action: 'live-migration' | 'resize' | 'migrate' | 'confirmResize' | 'revertResize';
  instanceUuid: string;
  /** `req-<migration uuid>`: stable, and names the migration it reports. */
  requestId: string;
  /** The migration's uuid (its workflow run id). */
  migrationUuid: string;
  userId: string | null;
  projectId: string | null;
  /** ISO 8601. */
  startTime: string;
  updatedAt: string;
  /** Nova's message: 'Error' when the migration failed or ended in error, else null. */
  message: string | null;
  /** The steps, newest first (Nova's order); only read by getInstanceAction. */
  events?: InstanceActionEvent[];
}

export interface FerryService {
  /** Starts the liveMigration workflow; AlreadyMigratingError when one runs for the instance. */
  startMigration(request: LiveMigrationRequest): Promise<StartedMigration>;
  /** By run id, or by instance uuid (its latest migration); null when unknown. */
  getMigration(id: string): Promise<MigrationStatusView | null>;
  /** Visibility query plus the status query of each row (newest first). */
  listMigrations(filter: MigrationFilter): Promise<MigrationStatusView[]>;
  /** Visibility only: cheap enough for every hosts or servers listing. */
  listMigrationSummaries(filter: MigrationFilter): Promise<MigrationSummary[]>;
  /** The requestAbort update; RefusedError with the workflow's reason. */
  abort(id: string, reason?: string): Promise<ControlAccepted>;
  /** The requestForceComplete update; RefusedError with the workflow's reason. */
  forceComplete(id: string): Promise<ControlAccepted>;
  /** The host inventory (hosts, their VMs, up or down) from the agents' reports; a moment old unless fresh. */
  describeCluster(options?: { fresh?: boolean }): Promise<ClusterView>;
  /** An instance and its host, through the inventory's index; null when no agent reports it. */
  locateInstance(uuid: string): Promise<{ instance: InstanceView; host: HostView } | null>;
  /** One host as its agent last reported it (fresher than describeCluster): confirms a refusal. */
  hostNow(name: string): Promise<HostView | null>;
  /**
   * Nova's os-services update of a host (enable, disable with a reason, forced down), done by its
   * agent in xapi; answers the state xapi then holds. RefusedError when the host's agent does not do it.
   */
  updateHostService(host: string, change: HostServiceChange): Promise<HostServiceState>;
  /** An instance's migrations as Nova's instance actions, newest first, without their events (visibility only). */
  listInstanceActions(instanceUuid: string): Promise<InstanceAction[]>;
  /** One of them by request id, with its events read from the workflow's history; null when unknown. */
  getInstanceAction(instanceUuid: string, requestId: string): Promise<InstanceAction | null>;
  /** Whether Temporal answers and the conductor polls; used by /readyz. */
  checkReady(): Promise<{ ok: boolean; checks: Record<string, string> }>;
  /** Hosts' maintenance: the hostMaintenance workflows (api/maintenance-service.ts). */
  readonly maintenance: MaintenanceOperations;
  /** Resizes and cold migrations: the coldMigration workflows (api/cold-migration-service.ts). */
  readonly coldMigrations: ColdMigrationOperations;
  close(): Promise<void>;
}
