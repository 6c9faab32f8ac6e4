// FerryService on a Temporal client. A migration is a liveMigration workflow run: started with a
// deterministic workflow id, listed through visibility (search attributes and memo), steered through
// the requestAbort / requestForceComplete updates. Reads do not replay runs: a closed run is shown
// from its memo (its final view, then kept in memory), a running one from its status query with a
// short deadline (the memo when it does not answer) plus its transfer's latest heartbeat. Hosts and
// instances come from the host inventory (lib/host-inventory.ts).
import { TemporalColdMigrations, type ColdMigrationOperations } from './cold-migration-service';
import { TemporalMaintenance, type MaintenanceOperations } from './maintenance-service';
import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowExecutionDescription,
  type WorkflowExecutionInfo,
} from '@temporalio/client';
import { LRUCache } from 'lru-cache';
import { hostQueue, type FerryConfig } from '../lib/config';
import { executeControlUpdate } from '../lib/control-update';
import type { Logger } from '../lib/logger';
import { InstanceUuid, MigrationStatus } from '../lib/search-attributes';
import { HostInventory, type InventoryHost, type Located } from '../lib/host-inventory';
import { decodeRawPayloads } from '../lib/payload-codec';
import { connectClients } from '../lib/temporal-connection';
import {
  FINAL_STATUSES,
  HOST_SERVICE_WORKFLOW,
  LIVE_MIGRATION_WORKFLOW,
  LiveMigrationInputSchema,
  MIGRATION_SLOTS_WORKFLOW_ID,
  MIGRATION_STATUSES,
  abortUpdate,
  forceCompleteUpdate,
  hostServiceWorkflowId,
  liveMigrationWorkflowId,
  novaMigrationId,
  slotsQuery,
  statusQuery,
  type ClusterView,
  type ControlAccepted,
  type HostServiceChange,
  type HostServiceState,
  type LiveMigrationRequest,
  type MigrationStatusView,
  type NovaMigrationStatus,
  type SlotsState,
} from '../workflows/definitions';
import type { MigrationOutcome } from '../workflows/outcome';
import { decodeOptionalFailureToOptionalError } from '@temporalio/common/lib/internal-non-workflow';
import { migrationUuidOf, readHistory, requestIdOf } from './instance-actions';
import {
  AlreadyMigratingError,
  MigrationNotFoundError,
  RefusedError,
  type FerryService,
  type InstanceAction,
  type MigrationFilter,
  type MigrationSummary,
  type StartedMigration,
} from './ferry-service';
import type { ClosedMigration, MigrationMetricsSource } from './metrics';
import { endedEarly, memoOf, secondsBetween, summaryOf, viewFromInfo, withLiveProgress, type ExecInfo } from './migration-views';
import { UUID_PATTERN } from './schemas';
import { guardTemporal } from './temporal-unavailable';
import { migrationQuery, quote, runIdQuery } from './visibility-query';

/** A running migration's status query gets this long; then its memo answers. */
const LIVE_QUERY_TIMEOUT_MS = 1_000;
/** A closed run from before the memo carried its view: its status query (a replay, once) gets this long. */
const REPLAY_QUERY_TIMEOUT_MS = 10_000;
/** How many closed migrations' views the process keeps (about 1.5 KB each). */
const CLOSED_VIEWS_KEPT = 5_000;
/**
 * A list's visibility rows are shared for this long by every caller asking the same question (one
 * visibility query a second however many poll it); older, the next caller still gets them at once
 * while they are read again, up to LIST_STALE_MS, after which a caller waits for fresh rows.
 */
const LIST_FRESH_MS = 1_000;
const LIST_STALE_MS = 3_000;
/** The slots entity's query gets this long when /metrics is scraped. */
const SLOTS_QUERY_TIMEOUT_MS = 3_000;
/** How long a look-up of an instance the inventory does not know waits for its agent's report, ms. */
const LOCATE_WAIT_MS = 2_000;

function failureReason(err: unknown): string {
  const cause = (err as { cause?: { message?: string } }).cause;
  return cause?.message ?? (err as Error).message ?? String(err);
}

/** Where a migration's run is. */
interface RunRef {
  workflowId: string;
  runId: string;
  /** What visibility or describe() said about it, when the look-up asked. */
  info?: ExecInfo;
}

export class TemporalFerryService implements FerryService, MigrationMetricsSource {
  /** Hosts and instances: the agents' reports to the hostInventory entities (system namespace). */
  private readonly inventory: HostInventory;
  /** Closed runs' final views by run id: a closed run never changes, so these are exact for good. */
  private readonly closedViews = new LRUCache<string, MigrationStatusView>({ max: CLOSED_VIEWS_KEPT });
  /**
   * The workflow id of run ids this process started, listed or showed: a show needs no visibility
   * look-up, and the first one after a start does not wait for visibility to catch up.
   */
  private readonly runs = new LRUCache<string, string>({ max: 20_000 });
  /** The same connection, but the server refuses a status query to a closed run instead of having a worker replay it. */
  private readonly liveReads: Client;
  /** The system namespace: the host inventory and the migrationSlots entity. */
  private readonly system: Client;
  /** Recent list answers by query: the rows and when they were asked for. */
  private readonly lists = new LRUCache<string, { at: number; rows: WorkflowExecutionInfo[] }>({ max: 256 });
  private readonly listing = new Map<string, Promise<WorkflowExecutionInfo[]>>();
  readonly maintenance: MaintenanceOperations;
  readonly coldMigrations: ColdMigrationOperations;

  constructor(
    readonly client: Client,
    private readonly config: FerryConfig,
    private readonly logger: Logger,
    private readonly connection?: Connection,
  ) {
    this.liveReads = new Client({
      connection: client.connection,
      namespace: client.options.namespace,
      dataConverter: client.options.dataConverter,
      workflow: { queryRejectCondition: 'NOT_OPEN' },
    });
    this.system = new Client({ connection: client.connection, namespace: config.temporal.systemNamespace, dataConverter: client.options.dataConverter });
    this.inventory = new HostInventory(this.system, config);
    this.maintenance = new TemporalMaintenance(client, config);
    this.coldMigrations = new TemporalColdMigrations(client, config);
  }

  static async connect(config: FerryConfig, logger: Logger): Promise<TemporalFerryService> {
    const { connection, client } = await connectClients(config);
    return new TemporalFerryService(client, config, logger, connection);
  }

  async close(): Promise<void> {
    await this.connection?.close();
  }

  async startMigration(request: LiveMigrationRequest): Promise<StartedMigration> {
    const input = LiveMigrationInputSchema.parse(request);
    const workflowId = liveMigrationWorkflowId(input.instanceUuid.toLowerCase());
    return guardTemporal('start', async () => {
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
        // Lists read after this start ask visibility again.
        this.lists.clear();
        return { workflowId, runId, novaId: novaMigrationId(runId) };
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) throw new AlreadyMigratingError(input.instanceUuid);
        throw err;
      }
    });
  }

  private remember(runId: string, workflowId: string): void {
    this.runs.set(runId, workflowId);
  }

  /** A migration's run: by run id (known here, then visibility), else by instance uuid (its latest run). */
  private async resolve(id: string): Promise<RunRef | null> {
    if (!UUID_PATTERN.test(id)) return null;
    const lower = id.toLowerCase();
    const known = this.runs.get(lower);
    if (known) return { workflowId: known, runId: lower };
    for await (const info of this.client.workflow.list({ query: runIdQuery(lower), pageSize: 1 })) {
      this.remember(info.runId, info.workflowId);
      return { workflowId: info.workflowId, runId: info.runId, info };
    }
    try {
      const info = await this.client.workflow.getHandle(liveMigrationWorkflowId(lower)).describe();
      return { workflowId: info.workflowId, runId: info.runId, info };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  /** A closed run from its memo (or the views kept here); a running one live. */
  private async show(run: RunRef): Promise<MigrationStatusView> {
    if (run.info && run.info.status.name !== 'RUNNING') return this.closed(run.info);
    const [described, queried] = await Promise.all([
      this.client.workflow.getHandle(run.workflowId, run.runId).describe(),
      this.liveQuery(run.workflowId, run.runId),
    ]);
    if (described.status.name !== 'RUNNING') return this.closed(described);
    return withLiveProgress(await this.decodedHeartbeats(described), queried ?? viewFromInfo(described).view);
  }

  /** Pending activities' heartbeat details come raw from describe(): decoded with this client's codecs. */
  private async decodedHeartbeats(described: WorkflowExecutionDescription): Promise<Pick<WorkflowExecutionDescription, 'raw'>> {
    const codecs = this.client.options.loadedDataConverter.payloadCodecs;
    const pending = described.raw.pendingActivities ?? [];
    if (codecs.length === 0 || pending.length === 0) return described;
    const pendingActivities = await Promise.all(
      pending.map(async (a) => (a.heartbeatDetails?.payloads?.length ? { ...a, heartbeatDetails: { payloads: await decodeRawPayloads(codecs, a.heartbeatDetails.payloads) } } : a)),
    );
    return { raw: { ...described.raw, pendingActivities } as WorkflowExecutionDescription['raw'] };
  }

  /** A running migration's status query, answered by the worker that has it cached; null when it does not answer in time. */
  private async liveQuery(workflowId: string, runId: string): Promise<MigrationStatusView | null> {
    try {
      return await this.liveReads.withDeadline(Date.now() + LIVE_QUERY_TIMEOUT_MS, () =>
        this.liveReads.workflow.getHandle(workflowId, runId).query(statusQuery),
      );
    } catch (err) {
      this.logger.debug({ err, workflowId, runId }, 'status query did not answer; showing the memo');
      return null;
    }
  }

  /** A closed run's final view: kept, else its memo, else (a run older than the memo's view) its status query once. */
  private async closed(info: ExecInfo): Promise<MigrationStatusView> {
    const kept = this.closedViews.get(info.runId);
    if (kept) return kept;
    let { view, final } = viewFromInfo(info);
    if (!final) {
      try {
        const replayed = await this.client.withDeadline(Date.now() + REPLAY_QUERY_TIMEOUT_MS, () =>
          this.client.workflow.getHandle(info.workflowId, info.runId).query(statusQuery),
        );
        view = FINAL_STATUSES.has(replayed.status) ? replayed : endedEarly(replayed, info);
        final = true;
      } catch (err) {
        this.logger.debug({ err, workflowId: info.workflowId }, 'status query of a closed run failed; answering from visibility');
      }
    }
    if (final) this.closedViews.set(info.runId, view);
    return view;
  }

  /** A listed row: closed from its memo (or kept view), running as of its memo (its last change of status or step of progress). */
  private listed(info: ExecInfo): MigrationStatusView {
    this.remember(info.runId, info.workflowId);
    if (info.status.name === 'RUNNING') return viewFromInfo(info).view;
    const kept = this.closedViews.get(info.runId);
    if (kept) return kept;
    const { view, final } = viewFromInfo(info);
    if (final) this.closedViews.set(info.runId, view);
    return view;
  }

  async getMigration(id: string): Promise<MigrationStatusView | null> {
    return guardTemporal('getMigration', async () => {
      const kept = UUID_PATTERN.test(id) ? this.closedViews.get(id.toLowerCase()) : undefined;
      if (kept) return kept;
      try {
        const run = await this.resolve(id);
        return run ? await this.show(run) : null;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      }
    });
  }

  private async rows(filter: MigrationFilter, query = migrationQuery(filter)): Promise<WorkflowExecutionInfo[]> {
    const limit = filter.limit ?? 50;
    const rows: WorkflowExecutionInfo[] = [];
    for await (const info of this.client.workflow.list({ query, pageSize: Math.min(limit, 1000) })) {
      rows.push(info);
      if (rows.length >= limit) break;
    }
    return rows;
  }

  /** A list's rows: shared while fresh, served stale for a moment while read again (see LIST_FRESH_MS). */
  private async listRows(filter: MigrationFilter): Promise<WorkflowExecutionInfo[]> {
    const key = `${filter.limit ?? 50} ${migrationQuery(filter)}`;
    const kept = this.lists.get(key);
    const age = kept ? Date.now() - kept.at : Infinity;
    if (kept && age < LIST_FRESH_MS) return kept.rows;
    let reading = this.listing.get(key);
    if (!reading) {
      const at = Date.now();
      reading = this.rows(filter)
        .then((rows) => {
          this.lists.set(key, { at, rows });
          return rows;
        })
        .finally(() => this.listing.delete(key));
      this.listing.set(key, reading);
    }
    if (kept && age < LIST_STALE_MS) {
      reading.catch(() => undefined);
      return kept.rows;
    }
    return reading;
  }

  /** One visibility query (shared for a second, see listRows()); no row asks its workflow (see listed()). */
  async listMigrations(filter: MigrationFilter): Promise<MigrationStatusView[]> {
    return guardTemporal('listMigrations', async () => {
      const views = (await this.listRows(filter)).map((info) => this.listed(info));
      // A run that recorded its final status is closing: it is no longer in progress.
      return filter.open === true ? views.filter((v) => !FINAL_STATUSES.has(v.status)) : views;
    });
  }

  async listMigrationSummaries(filter: MigrationFilter): Promise<MigrationSummary[]> {
    return guardTemporal('listMigrationSummaries', async () => (await this.rows(filter)).map(summaryOf).filter((m) => filter.open !== true || m.running));
  }

  // ---- what /metrics reads (MigrationMetricsSource) ----------------------------------------

  /** Migrations by Nova status, counted by visibility; a run closed without a final status counts as error. */
  async countMigrations(): Promise<Record<NovaMigrationStatus, number>> {
    return guardTemporal('countMigrations', async () => {
      const all = migrationQuery({});
      const count = async (query: string) => (await this.client.workflow.count(query)).count;
      const finals = [...FINAL_STATUSES].map(quote).join(', ');
      const [byStatus, endedEarly] = await Promise.all([
        Promise.all(
          MIGRATION_STATUSES.map((status) =>
            count(`${all} AND MigrationStatus = ${quote(status)}${FINAL_STATUSES.has(status) ? '' : ` AND ExecutionStatus = 'Running'`}`),
          ),
        ),
        count(`${all} AND ExecutionStatus != 'Running' AND MigrationStatus NOT IN (${finals})`),
      ]);
      const counts = Object.fromEntries(MIGRATION_STATUSES.map((s, i) => [s, byStatus[i] ?? 0])) as Record<NovaMigrationStatus, number>;
      counts.error += endedEarly;
      return counts;
    });
  }

  /** Migrations closed since `since`, with their figures: duration, bytes and downtime (the run's result), queue wait (the memo's timeline). */
  async closedMigrationsSince(since: Date, skip: (runId: string) => boolean = () => false): Promise<ClosedMigration[]> {
    return guardTemporal('closedMigrationsSince', async () => {
      const query = `${migrationQuery({ open: false })} AND CloseTime >= ${quote(since.toISOString())}`;
      const rows = (await this.rows({ limit: 10_000 }, query)).filter((info) => !skip(info.runId));
      const out: ClosedMigration[] = [];
      let next = 0;
      // A few result look-ups at a time: each reads only the run's close event.
      const worker = async () => {
        while (next < rows.length) {
          const info = rows[next++] as WorkflowExecutionInfo;
          out.push(await this.figures(info));
        }
      };
      await Promise.all(Array.from({ length: Math.min(8, rows.length) }, worker));
      return out;
    });
  }

  private async figures(info: ExecInfo): Promise<ClosedMigration> {
    const view = this.listed(info);
    const closedAt = info.closeTime ?? new Date();
    let outcome: MigrationOutcome | null = null;
    if (info.status.name === 'COMPLETED') {
      outcome = (await this.client.workflow
        .getHandle(info.workflowId, info.runId, { followRuns: false })
        .result()
        .catch(() => null)) as MigrationOutcome | null;
    }
    const memo = memoOf(info);
    const timeline = memo?.timeline ?? {};
    // xapi does not report downtime: the stop-and-copy phase as the workflow saw it stands for it.
    const stopAndCopy = secondsBetween(memo?.phases?.stop_and_copy, memo?.phases?.post_migration);
    return {
      runId: info.runId,
      status: view.status,
      closedAt,
      durationSeconds: (closedAt.getTime() - info.startTime.getTime()) / 1000,
      bytes: outcome ? outcome.bytesSent : null,
      downtimeSeconds: outcome?.downtimeMs != null ? outcome.downtimeMs / 1000 : stopAndCopy,
      // A slot granted at once (version 3 asks with an update) never shows queued: no wait.
      queueWaitSeconds: timeline.preparing ? (timeline.queued ? secondsBetween(timeline.queued, timeline.preparing) : 0) : null,
    };
  }

  /** The migrationSlots entity's leases (system namespace); null when there is no entity. */
  async slotUsage(): Promise<SlotsState | null> {
    return guardTemporal('slotUsage', async () => {
      try {
        return await this.system.withDeadline(Date.now() + SLOTS_QUERY_TIMEOUT_MS, () =>
          this.system.workflow.getHandle(MIGRATION_SLOTS_WORKFLOW_ID).query(slotsQuery),
        );
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      }
    });
  }

  private async control(id: string, action: 'abort' | 'force-complete', reason?: string): Promise<ControlAccepted> {
    return guardTemporal(action, async () => {
      const found = await this.resolve(id);
      if (!found) throw new MigrationNotFoundError(`Migration ${id} could not be found.`);
      const handle = this.client.workflow.getHandle(found.workflowId, found.runId);
      const info = found.info ?? (await handle.describe());
      if (info.status.name !== 'RUNNING') {
        const view = await this.closed(info);
        throw new RefusedError(`the migration is already ${view.status}`);
      }
      try {
        if (action === 'abort') return await executeControlUpdate(handle, abortUpdate, reason ?? 'requested through the ferry API');
        return await executeControlUpdate(handle, forceCompleteUpdate);
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

  /** The host inventory (every agent's latest report); `fresh` lists it again instead of using the cache. */
  describeCluster(options: { fresh?: boolean } = {}): Promise<ClusterView> {
    return guardTemporal('host inventory', () => this.inventory.view(options));
  }

  /** Through the inventory's index; a miss lists again for a moment, so that a VM created a moment ago is found. */
  locateInstance(uuid: string): Promise<Located | null> {
    return guardTemporal('host inventory', () => this.inventory.locate(uuid, { waitMs: LOCATE_WAIT_MS }));
  }

  /** One host as its inventory entity holds it now (its agent's latest report), for decisions that refuse. */
  hostNow(name: string): Promise<InventoryHost | null> {
    return guardTemporal('host inventory', () => this.inventory.hostNow(name));
  }

  /**
   * Lists the inventory again until it shows the state the host's agent just reported (it reported
   * before its step returned; visibility follows within moments), at most 5 s: a list right after an
   * update reads its own write, as Nova's (a database) does.
   */
  private async untilListed(state: HostServiceState): Promise<void> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const host = (await this.inventory.view({ fresh: true })).hosts.find((h) => h.name === state.host);
      const listed = host && host.enabled === state.enabled && (host.disabledReason ?? null) === state.disabledReason && (host.forcedDown ?? false) === state.forcedDown;
      if (listed || Date.now() >= deadline) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Nova's os-services update of one host: the hostService workflow runs it on the host's agent
   * (xapi's host.disable / host.enable, the reason in host.other_config) and answers the state xapi
   * then holds. One per host at a time: a start that meets a running one waits for it, then starts.
   * The inventory is read fresh on the next look, since the agent reported before answering.
   */
  updateHostService(host: string, change: HostServiceChange): Promise<HostServiceState> {
    return guardTemporal('host service', async () => {
      const workflowId = hostServiceWorkflowId(host);
      for (let attempt = 0; ; attempt++) {
        try {
          const state = await this.client.workflow.execute(HOST_SERVICE_WORKFLOW, {
            workflowId,
            taskQueue: this.config.taskQueues.conductor,
            args: [{ host, queue: hostQueue(this.config, host), change }],
            workflowExecutionTimeout: '2 minutes',
            staticSummary: `os-services update of host ${host}`,
          });
          await this.untilListed(state as HostServiceState);
          return state as HostServiceState;
        } catch (err) {
          if (err instanceof WorkflowExecutionAlreadyStartedError && attempt < 10) {
            await this.client.workflow.getHandle(workflowId).result().catch(() => undefined);
            continue;
          }
          if (err instanceof WorkflowFailedError) {
            throw new RefusedError(`Compute service of ${host} is unavailable at this time: ${failureReason(err)}`);
          }
          throw err;
        }
      }
    });
  }

  // ---- Nova's instance actions (os-instance-actions): a migration's steps from its history ----

  private instanceAction(view: MigrationStatusView): InstanceAction {
    return {
      action: 'live-migration',
      instanceUuid: view.server_uuid,
      requestId: requestIdOf(view.uuid),
      migrationUuid: view.uuid,
      userId: view.user_id,
      projectId: view.project_id,
      startTime: view.created_at,
      updatedAt: view.updated_at,
      message: view.status === 'failed' || view.status === 'error' ? 'Error' : null,
    };
  }

  /** One visibility query (every run of the instance's workflow id); no history is read. */
  async listInstanceActions(instanceUuid: string): Promise<InstanceAction[]> {
    return guardTemporal('listInstanceActions', async () => {
      const rows = await this.rows({ instanceUuid: instanceUuid.toLowerCase(), limit: 1000 });
      return rows.map((info) => this.instanceAction(this.listed(info)));
    });
  }

  /** The run the request id names (if it migrated this instance), its steps read from its history. */
  async getInstanceAction(instanceUuid: string, requestId: string): Promise<InstanceAction | null> {
    const runId = migrationUuidOf(requestId);
    if (!runId) return null;
    return guardTemporal('getInstanceAction', async () => {
      const run = await this.resolve(runId).catch((err: unknown) => {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      });
      if (!run || run.runId !== runId) return null;
      const view = await this.show(run);
      if (view.server_uuid.toLowerCase() !== instanceUuid.toLowerCase()) return null;
      const history = await this.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      const converter = this.client.options.loadedDataConverter;
      const ended = FINAL_STATUSES.has(view.status);
      const reading = await readHistory(history.events ?? [], {
        hostPrefix: this.config.taskQueues.hostPrefix,
        describeFailure: async (failure) => {
          const messages: string[] = [];
          for (let e: unknown = await decodeOptionalFailureToOptionalError(converter, failure); e instanceof Error; e = e.cause) messages.push(e.message);
          return messages.join(': ');
        },
        conductorResult: ended
          ? { result: view.status === 'completed' ? 'Success' : 'Error', traceback: view.error ? `${view.error.type}: ${view.error.message}` : null }
          : null,
      });
      // Same fields as the list (from the migration's view), plus the steps.
      return { ...this.instanceAction(view), events: reading.events };
    });
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
