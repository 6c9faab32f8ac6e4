// A host's maintenance through Temporal: the hostMaintenance workflow (id host-maintenance-<host>)
// started, read and steered with its updates. The API's /v1/hosts/{name}/maintenance routes and the
// CLI's drain and maintenance commands go through this.
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { executeControlUpdate } from '../lib/control-update';
import type { FerryConfig } from '../lib/config';
import { MaintenanceHost, MaintenanceState } from '../lib/search-attributes';
import {
  HOST_MAINTENANCE_WORKFLOW,
  cancelMaintenanceUpdate,
  hostMaintenanceWorkflowId,
  newMaintenanceView,
  leaveMaintenanceUpdate,
  maintenanceStatusQuery,
  pauseMaintenanceUpdate,
  resumeMaintenanceUpdate,
  type MaintenanceStatus,
  type MaintenanceView,
} from '../workflows/definitions';
import { RefusedError } from './ferry-service';
import { guardTemporal } from './temporal-unavailable';


export interface StartMaintenanceOptions {
  maxAttempts?: number;
  parallelism?: number;
}

export type MaintenanceAction = 'pause' | 'resume' | 'cancel' | 'leave';

export interface MaintenanceControl {
  /** cancel: abort the running migrations (default false: let them finish). */
  abortRunning?: boolean;
  /** leave: bring the moved VMs back (default false). */
  bringBack?: boolean;
}

export interface MaintenanceOperations {
  /** Starts hostMaintenance for the host; RefusedError when one runs for it already. */
  start(host: string, options: StartMaintenanceOptions): Promise<MaintenanceView>;
  /** The host's latest maintenance (running: live from its query; closed: its result); null when none. */
  get(host: string): Promise<MaintenanceView | null>;
  /** pause, resume, cancel or leave (the workflow's updates); RefusedError with the workflow's reason; null when none runs. */
  control(host: string, action: MaintenanceAction, options?: MaintenanceControl): Promise<MaintenanceView | null>;
}

const QUERY_TIMEOUT_MS = 2000;

/** The view of a run that can no longer answer (failed, terminated, timed out): from its memo. */
function fromMemo(host: string, info: WorkflowExecutionDescription): MaintenanceView {
  const memo = (info.memo ?? {}) as Partial<MaintenanceView>;
  const at = (info.closeTime ?? info.startTime).toISOString();
  return {
    host,
    workflowId: info.workflowId,
    status: (memo.status as MaintenanceStatus | undefined) ?? 'partial',
    reason: `the maintenance run ended ${info.status.name.toLowerCase()}${memo.reason ? `: ${memo.reason}` : ''}`,
    startedAt: info.startTime.toISOString(),
    updatedAt: at,
    parallelism: 1,
    vms: [],
    counts: memo.counts ?? { total: 0, moved: 0, migrating: 0, waiting: 0, failed: 0, gone: 0, returned: 0 },
    bytesMoved: memo.bytesMoved ?? 0,
    bytesLeft: memo.bytesLeft ?? 0,
    etaSeconds: null,
    bringBack: null,
  };
}

export class TemporalMaintenance implements MaintenanceOperations {
  constructor(
    private readonly client: Client,
    private readonly config: FerryConfig,
  ) {}

  start(host: string, options: StartMaintenanceOptions): Promise<MaintenanceView> {
    return guardTemporal('start maintenance', () => this.startNow(host, options));
  }

  get(host: string): Promise<MaintenanceView | null> {
    return guardTemporal('show maintenance', () => this.read(host));
  }

  control(host: string, action: MaintenanceAction, options: MaintenanceControl = {}): Promise<MaintenanceView | null> {
    return guardTemporal(`${action} maintenance`, () => this.update(host, action, options));
  }

  private async startNow(host: string, options: StartMaintenanceOptions): Promise<MaintenanceView> {
    const workflowId = hostMaintenanceWorkflowId(host);
    try {
      const handle = await this.client.workflow.start(HOST_MAINTENANCE_WORKFLOW, {
        taskQueue: this.config.taskQueues.conductor,
        workflowId,
        args: [{ host, ...options }],
        typedSearchAttributes: [
          { key: MaintenanceHost, value: host },
          { key: MaintenanceState, value: 'entering' },
        ],
        staticSummary: `maintenance of ${host}: drain, then wait for leave`,
      });
      return newMaintenanceView({
        host,
        workflowId: handle.workflowId,
        status: 'entering',
        at: new Date().toISOString(),
        parallelism: options.parallelism ?? this.config.migration.limits.outboundPerHost,
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw new RefusedError(`${host} is already in maintenance (workflow ${workflowId}); leave it first`);
      throw err;
    }
  }

  /** The host's latest maintenance run, or null when it never had one. */
  private async describeLatest(host: string): Promise<WorkflowExecutionDescription | null> {
    try {
      return await this.client.workflow.getHandle(hostMaintenanceWorkflowId(host)).describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  private async read(host: string): Promise<MaintenanceView | null> {
    const info = await this.describeLatest(host);
    if (!info) return null;
    const run = this.client.workflow.getHandle(info.workflowId, info.runId);
    if (info.status.name === 'RUNNING') {
      return this.client.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () => run.query(maintenanceStatusQuery)).catch(() => fromMemo(host, info));
    }
    if (info.status.name === 'COMPLETED') return (await run.result()) as MaintenanceView;
    return fromMemo(host, info);
  }

  private async update(host: string, action: MaintenanceAction, options: MaintenanceControl): Promise<MaintenanceView | null> {
    const info = await this.describeLatest(host);
    if (!info) return null;
    if (info.status.name !== 'RUNNING') throw new RefusedError(`${host} is not in maintenance (its last maintenance run is ${info.status.name.toLowerCase()})`);
    const run = this.client.workflow.getHandle(info.workflowId, info.runId);
    try {
      switch (action) {
        case 'pause':
          return await executeControlUpdate(run, pauseMaintenanceUpdate);
        case 'resume':
          return await executeControlUpdate(run, resumeMaintenanceUpdate);
        case 'cancel':
          return await executeControlUpdate(run, cancelMaintenanceUpdate, { abortRunning: options.abortRunning ?? false });
        case 'leave':
          return await executeControlUpdate(run, leaveMaintenanceUpdate, { bringBack: options.bringBack ?? false });
      }
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) throw new RefusedError((err.cause as Error | undefined)?.message ?? err.message);
      if (err instanceof WorkflowNotFoundError || /already completed/i.test((err as Error).message)) throw new RefusedError(`${host}'s maintenance has just ended`);
      throw err;
    }
  }
}
