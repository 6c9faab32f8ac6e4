// FerryService on a Temporal client. A migration is a liveMigration workflow run: started with a
// deterministic workflow id, listed through visibility (search attributes), read through the status
// query, steered through the requestAbort / requestForceComplete updates. Hosts and instances come
// from the describeCluster workflow.
import { randomUUID } from 'node:crypto';
import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowExecutionDescription,
  type WorkflowExecutionInfo,
  type WorkflowHandle,
} from '@temporalio/client';
import { arrayFromPayloads, defaultPayloadConverter } from '@temporalio/common';
import type { TransferHeartbeat } from '../activities/types';
import type { FerryConfig } from '../lib/config';
import { executeControlUpdate } from '../lib/control-update';
import type { Logger } from '../lib/logger';
import { DestHost, InstanceUuid, MigrationStatus, SourceHost } from '../lib/search-attributes';
import { connectionOptions } from '../lib/temporal-connection';
import {
  DESCRIBE_CLUSTER_WORKFLOW,
  FINAL_STATUSES,
  LIVE_MIGRATION_WORKFLOW,
  LiveMigrationInputSchema,
  MIGRATION_STATUSES,
  abortUpdate,
  forceCompleteUpdate,
  liveMigrationWorkflowId,
  newMigrationView,
  novaMigrationId,
  statusQuery,
  type ClusterView,
  type ControlAccepted,
  type LiveMigrationRequest,
  type MigrationStatusView,
  type NovaMigrationStatus,
} from '../workflows/definitions';
import {
  AlreadyMigratingError,
  BackendUnavailableError,
  MigrationNotFoundError,
  RefusedError,
  type FerryService,
  type MigrationFilter,
  type MigrationSummary,
  type StartedMigration,
} from './ferry-service';
import { UUID_PATTERN } from './schemas';
import { migrationQuery, runIdQuery } from './visibility-query';

const QUERY_TIMEOUT_MS = 5_000;
const CLUSTER_CACHE_MS = 2_000;
const CLUSTER_TIMEOUT = '30s';

/** A visibility row or a describe() answer: both carry what the fallbacks need. */
type ExecInfo = Omit<WorkflowExecutionInfo, 'raw'>;

function isUnavailable(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown; message?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === 14 || e.code === 4) return true; // UNAVAILABLE, DEADLINE_EXCEEDED
    if (typeof e.message === 'string' && /ECONNREFUSED|UNAVAILABLE|Deadline exceeded|transport/i.test(e.message)) return true;
  }
  return false;
}

function failureReason(err: unknown): string {
  const cause = (err as { cause?: { message?: string } }).cause;
  return cause?.message ?? (err as Error).message ?? String(err);
}

function executionStatus(info: Pick<ExecInfo, 'status'>): NovaMigrationStatus {
  switch (info.status.name) {
    case 'RUNNING':
      return 'running';
    case 'COMPLETED':
      return 'completed';
    case 'CANCELLED':
      return 'cancelled';
    case 'FAILED':
      return 'failed';
    default:
      return 'error'; // TERMINATED, TIMED_OUT, CONTINUED_AS_NEW, UNKNOWN
  }
}

export class TemporalFerryService implements FerryService {
  private clusterCache: { at: number; view: ClusterView } | null = null;
  private clusterInFlight: Promise<ClusterView> | null = null;
  /** Run ids this process started, so that the first GET does not wait for visibility to catch up. */
  private readonly recentRuns = new Map<string, string>();

  constructor(
    readonly client: Client,
    private readonly config: FerryConfig,
    private readonly logger: Logger,
    private readonly connection?: Connection,
  ) {}

  static async connect(config: FerryConfig, logger: Logger): Promise<TemporalFerryService> {
    const connection = await Connection.connect(connectionOptions(config));
    const client = new Client({ connection, namespace: config.temporal.namespace });
    return new TemporalFerryService(client, config, logger, connection);
  }

  async close(): Promise<void> {
    await this.connection?.close();
  }

  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isUnavailable(err)) throw new BackendUnavailableError(`Temporal did not answer (${what}): ${(err as Error).message}`);
      throw err;
    }
  }

  async startMigration(request: LiveMigrationRequest): Promise<StartedMigration> {
    const input = LiveMigrationInputSchema.parse(request);
    const workflowId = liveMigrationWorkflowId(input.instanceUuid.toLowerCase());
    return this.guard('start', async () => {
      try {
        const handle = await this.client.workflow.start(LIVE_MIGRATION_WORKFLOW, {
          workflowId,
          taskQueue: this.config.taskQueues.conductor,
          args: [input],
          typedSearchAttributes: [
            { key: InstanceUuid, value: input.instanceUuid.toLowerCase() },
            { key: MigrationStatus, value: 'accepted' },
          ],
          staticSummary: `Live migration of ${input.instanceUuid}${input.host ? ` to ${input.host}` : ''}`,
        });
        const runId = handle.firstExecutionRunId;
        this.remember(runId, workflowId);
        return { workflowId, runId, novaId: novaMigrationId(runId) };
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) throw new AlreadyMigratingError(input.instanceUuid);
        throw err;
      }
    });
  }

  private remember(runId: string, workflowId: string): void {
    this.recentRuns.set(runId, workflowId);
    if (this.recentRuns.size > 1000) {
      const oldest = this.recentRuns.keys().next().value;
      if (oldest !== undefined) this.recentRuns.delete(oldest);
    }
  }

  /** The handle of a migration: by run id (recent, then visibility), else by instance uuid (latest run). */
  private async resolve(id: string): Promise<{ handle: WorkflowHandle; info?: ExecInfo } | null> {
    if (!UUID_PATTERN.test(id)) return null;
    const lower = id.toLowerCase();
    const recent = this.recentRuns.get(lower);
    if (recent) return { handle: this.client.workflow.getHandle(recent, lower) };
    for await (const info of this.client.workflow.list({ query: runIdQuery(lower), pageSize: 1 })) {
      return { handle: this.client.workflow.getHandle(info.workflowId, info.runId), info };
    }
    const byInstance = this.client.workflow.getHandle(liveMigrationWorkflowId(lower));
    try {
      const info = await byInstance.describe();
      return { handle: this.client.workflow.getHandle(info.workflowId, info.runId), info };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  private async view(handle: WorkflowHandle, info?: ExecInfo): Promise<MigrationStatusView> {
    let view: MigrationStatusView;
    try {
      view = await this.client.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () => handle.query(statusQuery));
    } catch (err) {
      this.logger.debug({ err, workflowId: handle.workflowId }, 'status query failed; answering from visibility');
      const described = info ?? (await handle.describe());
      return fallbackView(described);
    }
    if (FINAL_STATUSES.has(view.status)) return view;
    const described = await handle.describe();
    if (described.status.name !== 'RUNNING') {
      // Terminated (or timed out) before the migration said how it ended: its last view says running.
      const name = described.status.name;
      return {
        ...view,
        status: executionStatus(described),
        phase: 'done',
        error: view.error ?? { type: `Workflow${name}`, message: `the workflow run was ${name.toLowerCase()} before the migration ended; see its history` },
        abortable: false,
        notAbortableReason: `the workflow run was ${name.toLowerCase()}`,
      };
    }
    return view.phase === 'precopy' || view.phase === 'stop_and_copy' ? this.withLiveProgress(described, view) : view;
  }

  /**
   * The workflow hears of a transfer's progress only in steps (its history stays bounded); the
   * transfer's latest heartbeat, which Temporal keeps with the pending activity, has it now.
   */
  private withLiveProgress(described: WorkflowExecutionDescription, view: MigrationStatusView): MigrationStatusView {
    const transfer = described.raw.pendingActivities?.find((a) => a.activityType?.name === 'migrateSend');
    const payloads = transfer?.heartbeatDetails?.payloads;
    if (!payloads?.length) return view;
    const [beat] = arrayFromPayloads(defaultPayloadConverter, payloads) as [TransferHeartbeat | undefined];
    const p = beat?.progress;
    if (!p || p.fraction < (view.progress?.fraction ?? 0)) return view;
    return {
      ...view,
      progress: { ...view.progress, ...p },
      memory_processed_bytes: p.memoryProcessedBytes,
      memory_remaining_bytes: p.memoryRemainingBytes,
      disk_processed_bytes: p.diskProcessedBytes,
      disk_remaining_bytes: p.diskRemainingBytes,
    };
  }

  async getMigration(id: string): Promise<MigrationStatusView | null> {
    return this.guard('getMigration', async () => {
      const found = await this.resolve(id);
      return found ? this.view(found.handle, found.info) : null;
    });
  }

  private async rows(filter: MigrationFilter): Promise<WorkflowExecutionInfo[]> {
    const limit = filter.limit ?? 50;
    const rows: WorkflowExecutionInfo[] = [];
    for await (const info of this.client.workflow.list({ query: migrationQuery(filter), pageSize: Math.min(limit, 100) })) {
      rows.push(info);
      if (rows.length >= limit) break;
    }
    return rows;
  }

  async listMigrations(filter: MigrationFilter): Promise<MigrationStatusView[]> {
    return this.guard('listMigrations', async () => {
      const rows = await this.rows(filter);
      const views: MigrationStatusView[] = new Array(rows.length);
      // A few status queries at a time: each one may need a worker to replay a closed run.
      let next = 0;
      const worker = async () => {
        while (next < rows.length) {
          const i = next++;
          const info = rows[i] as WorkflowExecutionInfo;
          views[i] = await this.view(this.client.workflow.getHandle(info.workflowId, info.runId), info);
        }
      };
      await Promise.all(Array.from({ length: Math.min(8, rows.length) }, worker));
      return views;
    });
  }

  async listMigrationSummaries(filter: MigrationFilter): Promise<MigrationSummary[]> {
    return this.guard('listMigrationSummaries', async () => (await this.rows(filter)).map(summaryOf));
  }

  private async control(id: string, action: 'abort' | 'force-complete', reason?: string): Promise<ControlAccepted> {
    return this.guard(action, async () => {
      const found = await this.resolve(id);
      if (!found) throw new MigrationNotFoundError(`Migration ${id} could not be found.`);
      const info = found.info ?? (await found.handle.describe());
      if (info.status.name !== 'RUNNING') {
        const view = await this.view(found.handle, info);
        throw new RefusedError(`the migration is already ${view.status}`);
      }
      try {
        if (action === 'abort') return await executeControlUpdate(found.handle, abortUpdate, reason ?? 'requested through the ferry API');
        return await executeControlUpdate(found.handle, forceCompleteUpdate);
      } catch (err) {
        if (err instanceof WorkflowUpdateFailedError) throw new RefusedError(failureReason(err));
        if (err instanceof WorkflowNotFoundError || /already completed/i.test((err as Error).message)) {
          throw new RefusedError('the migration has just finished');
        }
        throw err;
      }
    });
  }

  abort(id: string, reason?: string): Promise<ControlAccepted> {
    return this.control(id, 'abort', reason);
  }

  forceComplete(id: string): Promise<ControlAccepted> {
    return this.control(id, 'force-complete');
  }

  /** One describeCluster run at a time, its answer reused for a moment: listings call this a lot. */
  async describeCluster(options: { fresh?: boolean } = {}): Promise<ClusterView> {
    if (options.fresh) {
      // Wait for a run that started before this call, so that its answer is not older than the caller's question.
      await this.clusterInFlight?.catch(() => undefined);
      this.clusterCache = null;
    }
    if (this.clusterCache && Date.now() - this.clusterCache.at < CLUSTER_CACHE_MS) return this.clusterCache.view;
    this.clusterInFlight ??= this.guard('describeCluster', async () => {
      try {
        const view = await this.client.workflow.execute(DESCRIBE_CLUSTER_WORKFLOW, {
          workflowId: `describe-cluster-${randomUUID()}`,
          taskQueue: this.config.taskQueues.conductor,
          args: [],
          workflowExecutionTimeout: CLUSTER_TIMEOUT,
          staticSummary: 'ferry API: describe the cluster',
        });
        this.clusterCache = { at: Date.now(), view: view as ClusterView };
        return view as ClusterView;
      } catch (err) {
        if (err instanceof WorkflowFailedError) {
          throw new BackendUnavailableError(`describeCluster did not answer (is the conductor worker running?): ${failureReason(err)}`);
        }
        throw err;
      }
    }).finally(() => {
      this.clusterInFlight = null;
    });
    return this.clusterInFlight;
  }

  async checkReady(): Promise<{ ok: boolean; checks: Record<string, string> }> {
    const { namespace } = this.config.temporal;
    const checks: Record<string, string> = {};
    let ok: boolean;
    try {
      await this.client.withDeadline(Date.now() + 3_000, () => this.client.workflowService.describeNamespace({ namespace }));
      checks.temporal = `namespace ${namespace} answers at ${this.config.temporal.address}`;
    } catch (err) {
      return { ok: false, checks: { temporal: `${this.config.temporal.address}: ${(err as Error).message}` } };
    }
    try {
      const queue = this.config.taskQueues.conductor;
      const answer = await this.client.withDeadline(Date.now() + 3_000, () =>
        this.client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: queue }, taskQueueType: 1 }),
      );
      const pollers = answer.pollers?.length ?? 0;
      checks.conductor = pollers > 0 ? `${pollers} poller(s) on ${queue}` : `no worker polls ${queue}`;
      ok = pollers > 0;
    } catch (err) {
      checks.conductor = (err as Error).message;
      ok = false;
    }
    return { ok, checks };
  }
}

function keyword(info: ExecInfo, key: typeof InstanceUuid): string | null {
  const value = info.typedSearchAttributes?.get(key);
  return typeof value === 'string' ? value : null;
}

function statusOf(info: ExecInfo): NovaMigrationStatus {
  const fromAttribute = keyword(info, MigrationStatus);
  const running = info.status.name === 'RUNNING';
  if (fromAttribute && (MIGRATION_STATUSES as readonly string[]).includes(fromAttribute)) {
    const status = fromAttribute as NovaMigrationStatus;
    // A run that ended without recording its final status (terminated, timed out) is an error.
    if (running || FINAL_STATUSES.has(status)) return status;
  }
  return executionStatus(info);
}

function summaryOf(info: ExecInfo): MigrationSummary {
  return {
    workflowId: info.workflowId,
    runId: info.runId,
    instanceUuid: keyword(info, InstanceUuid) ?? info.workflowId.replace(/^live-migration-/, ''),
    status: statusOf(info),
    sourceHost: keyword(info, SourceHost),
    destHost: keyword(info, DestHost),
    running: info.status.name === 'RUNNING',
    startedAt: info.startTime.toISOString(),
  };
}

/** What visibility knows when the workflow cannot answer its status query. */
export function fallbackView(info: ExecInfo): MigrationStatusView {
  const summary = summaryOf(info);
  const status = summary.status ?? executionStatus(info);
  const final = !summary.running;
  return {
    ...newMigrationView({
      runId: info.runId,
      workflowId: info.workflowId,
      instanceUuid: summary.instanceUuid,
      createdAt: info.startTime.toISOString(),
      updatedAt: (info.closeTime ?? info.startTime).toISOString(),
      status,
      phase: final ? 'done' : 'validating',
      sourceHost: summary.sourceHost,
      destHost: summary.destHost,
    }),
    error:
      status === 'failed' || status === 'error'
        ? { type: `Workflow${info.status.name}`, message: 'the status query did not answer; see the workflow history' }
        : null,
    abortable: false,
    notAbortableReason: final ? `the migration is ${status}` : 'the workflow does not answer its status query',
  };
}
