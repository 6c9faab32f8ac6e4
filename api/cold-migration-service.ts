// Resizes and cold migrations through Temporal: the coldMigration workflow (id cold-migration-<instance>,
// workflows/cold-migration-definitions.ts) started, read and steered with its confirmResize and
// revertResize updates. The Nova actions (resize, migrate, confirmResize, revertResize), ferry's
// /v1/cold-migrations routes and the CLI go through this. A running run answers its status query (it
// stays open in VERIFY_RESIZE until confirm or revert); a closed one is shown from its result, its
// memo or, for a run that ended early, what visibility says, and kept (a closed run never changes).
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowExecutionInfo,
} from '@temporalio/client';
import { LRUCache } from 'lru-cache';
import type { FerryConfig } from '../lib/config';
import { executeControlUpdate } from '../lib/control-update';
import { DestHost, InstanceUuid, MigrationStatus, SourceHost } from '../lib/search-attributes';
import {
  COLD_MIGRATION_FINAL,
  COLD_MIGRATION_STATUSES,
  COLD_MIGRATION_WORKFLOW,
  ColdMigrationInputSchema,
  coldMigrationStatusQuery,
  coldMigrationWorkflowId,
  confirmResizeUpdate,
  newColdMigrationView as newRunView,
  revertResizeUpdate,
  type ColdMigrationInput,
  type ColdMigrationStatus,
  type ColdMigrationView,
} from '../workflows/cold-migration-definitions';
import { AlreadyMigratingError, MigrationNotFoundError, RefusedError } from './ferry-service';
import { guardTemporal } from './temporal-unavailable';
import { UUID_PATTERN } from './schemas';
import { quote } from './visibility-query';

export interface ColdMigrationFilter {
  instanceUuid?: string;
  /** true: open runs only (in progress or waiting for confirm/revert); false: closed only. */
  open?: boolean;
  /** Nova's migration_type. */
  migrationType?: 'resize' | 'migration';
  status?: ColdMigrationStatus;
  limit?: number;
}

export interface ColdMigrationOperations {
  /** Starts coldMigration; AlreadyMigratingError when one runs for the instance. Answers the first view. */
  start(input: ColdMigrationInput): Promise<ColdMigrationView>;
  /** By run id, or by instance uuid (its latest run); null when unknown. */
  get(id: string): Promise<ColdMigrationView | null>;
  /** Newest first. */
  list(filter: ColdMigrationFilter): Promise<ColdMigrationView[]>;
  /** The confirmResize update (by run id or instance uuid); RefusedError with the workflow's reason. */
  confirm(id: string): Promise<ColdMigrationView>;
  /** The revertResize update; RefusedError with the workflow's reason. */
  revert(id: string): Promise<ColdMigrationView>;
}


/** The view a run starts with, before the workflow answers its query (the workflow's own first view). */
export function newColdMigrationView(args: { runId: string; input: ColdMigrationInput; sourceHost: string | null; at: string }): ColdMigrationView {
  const { input } = args;
  return newRunView({
    runId: args.runId,
    instanceUuid: input.instanceUuid,
    flavor: input.flavor ?? null,
    createdAt: args.at,
    requestedBy: input.requestedBy,
    sourceHost: args.sourceHost,
    destHost: input.host ?? null,
  });
}

/** A value that is a whole view (the workflow's result or memo), not something older or partial. */
export function isColdMigrationView(value: unknown): value is ColdMigrationView {
  const v = value as Partial<ColdMigrationView> | null;
  return (
    !!v &&
    typeof v === 'object' &&
    typeof v.uuid === 'string' &&
    typeof v.instanceUuid === 'string' &&
    typeof v.step === 'string' &&
    (COLD_MIGRATION_STATUSES as readonly string[]).includes(v.status as string)
  );
}

type Row = Omit<WorkflowExecutionInfo, 'raw'>;

function keyword(info: Row, key: typeof InstanceUuid): string | null {
  const value = info.typedSearchAttributes?.get(key);
  return typeof value === 'string' ? value : null;
}

/** What visibility alone says of a run: its memo's view when it wrote one, else its search attributes. */
export function viewFromRow(info: Row): ColdMigrationView {
  const memo = info.memo as Record<string, unknown> | undefined;
  const recorded = [memo, memo?.view].find(isColdMigrationView);
  const running = info.status.name === 'RUNNING';
  if (recorded && recorded.uuid === info.runId) {
    if (running || COLD_MIGRATION_FINAL.has(recorded.status)) return recorded;
  }
  const attribute = keyword(info, MigrationStatus);
  const status: ColdMigrationStatus =
    attribute && (COLD_MIGRATION_STATUSES as readonly string[]).includes(attribute) && (running || COLD_MIGRATION_FINAL.has(attribute as ColdMigrationStatus))
      ? (attribute as ColdMigrationStatus)
      : running
        ? 'pre-migrating'
        : 'error';
  const instanceUuid = keyword(info, InstanceUuid) ?? info.workflowId.replace(/^cold-migration-/, '');
  const base = recorded ?? newColdMigrationView({ runId: info.runId, input: { instanceUuid }, sourceHost: null, at: info.startTime.toISOString() });
  return {
    ...base,
    uuid: info.runId,
    workflowId: info.workflowId,
    status,
    step: running ? base.step : 'done',
    sourceHost: base.sourceHost ?? keyword(info, SourceHost),
    destHost: base.destHost ?? keyword(info, DestHost),
    error:
      base.error ??
      (status === 'error' ? { type: `Workflow${info.status.name}`, message: `the workflow run ended ${info.status.name.toLowerCase()}; see its history` } : null),
    updatedAt: (info.closeTime ?? info.startTime).toISOString(),
  };
}

/** A running run's status query gets this long; then visibility answers. */
const QUERY_TIMEOUT_MS = 2_000;
/** A closed run without its view in the result or memo: its query (a replay, once) gets this long. */
const REPLAY_TIMEOUT_MS = 10_000;

export class TemporalColdMigrations implements ColdMigrationOperations {
  /** Closed runs' final views by run id. */
  private readonly closed = new LRUCache<string, ColdMigrationView>({ max: 5_000 });
  /** Run ids this process started or saw, with their workflow id. */
  private readonly runs = new LRUCache<string, string>({ max: 20_000 });

  constructor(
    private readonly client: Client,
    private readonly config: FerryConfig,
  ) {}

  start(request: ColdMigrationInput): Promise<ColdMigrationView> {
    const input = ColdMigrationInputSchema.parse(request);
    const workflowId = coldMigrationWorkflowId(input.instanceUuid);
    return guardTemporal('start cold migration', async () => {
      try {
        const handle = await this.client.workflow.start(COLD_MIGRATION_WORKFLOW, {
          workflowId,
          taskQueue: this.config.taskQueues.conductor,
          args: [input],
          typedSearchAttributes: [
            { key: InstanceUuid, value: input.instanceUuid },
            { key: MigrationStatus, value: 'pre-migrating' },
          ],
          staticSummary: input.flavor
            ? `Resize of ${input.instanceUuid} to flavor ${input.flavor.name}`
            : `Cold migration of ${input.instanceUuid}${input.host ? ` to ${input.host}` : ''}`,
        });
        this.runs.set(handle.firstExecutionRunId, workflowId);
        return newColdMigrationView({ runId: handle.firstExecutionRunId, input, sourceHost: null, at: new Date().toISOString() });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) throw new AlreadyMigratingError(input.instanceUuid);
        throw err;
      }
    });
  }

  get(id: string): Promise<ColdMigrationView | null> {
    return guardTemporal('show cold migration', async () => {
      const row = await this.resolve(id);
      return row ? this.show(row) : null;
    });
  }

  list(filter: ColdMigrationFilter): Promise<ColdMigrationView[]> {
    return guardTemporal('list cold migrations', async () => {
      const rows: Row[] = [];
      const limit = filter.limit ?? 50;
      // The status is in visibility (the workflow's MigrationStatus); the type only in its view: read a few more rows then.
      const wanted = filter.migrationType ? Math.min(limit * 4, 1000) : limit;
      for await (const info of this.client.workflow.list({ query: coldMigrationQuery(filter), pageSize: Math.min(wanted, 1000) })) {
        rows.push(info);
        if (rows.length >= wanted) break;
      }
      const views = await Promise.all(rows.map((row) => this.show(row)));
      return views
        .filter((v) => (filter.migrationType === undefined || v.migrationType === filter.migrationType) && (filter.status === undefined || v.status === filter.status))
        .slice(0, limit);
    });
  }

  confirm(id: string): Promise<ColdMigrationView> {
    return guardTemporal('confirm resize', () => this.update(id, 'confirm'));
  }

  revert(id: string): Promise<ColdMigrationView> {
    return guardTemporal('revert resize', () => this.update(id, 'revert'));
  }

  /** A run by run id (visibility, or known here), or an instance's latest run by its uuid (describe). */
  private async resolve(id: string): Promise<Row | null> {
    if (!UUID_PATTERN.test(id)) return null;
    const lower = id.toLowerCase();
    const known = this.runs.get(lower);
    const describe = async (workflowId: string, runId?: string) => {
      try {
        return await this.client.workflow.getHandle(workflowId, runId).describe();
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      }
    };
    if (known) return describe(known, lower);
    const byInstance = await describe(coldMigrationWorkflowId(lower));
    if (byInstance) return byInstance;
    for await (const info of this.client.workflow.list({ query: `WorkflowType = ${quote(COLD_MIGRATION_WORKFLOW)} AND RunId = ${quote(lower)}`, pageSize: 1 })) {
      this.runs.set(info.runId, info.workflowId);
      return info;
    }
    return null;
  }

  private async show(row: Row): Promise<ColdMigrationView> {
    this.runs.set(row.runId, row.workflowId);
    const kept = this.closed.get(row.runId);
    if (kept) return kept;
    const handle = this.client.workflow.getHandle(row.workflowId, row.runId);
    if (row.status.name === 'RUNNING') {
      try {
        const view = await this.client.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () => handle.query(coldMigrationStatusQuery));
        if (isColdMigrationView(view)) return view;
      } catch {
        // The conductor is busy or restarting: visibility answers.
      }
      return viewFromRow(row);
    }
    let view: ColdMigrationView | null = null;
    const fromRow = viewFromRow(row);
    if (COLD_MIGRATION_FINAL.has(fromRow.status) && isColdMigrationView((row.memo as Record<string, unknown> | undefined)?.view ?? row.memo)) view = fromRow;
    if (!view && row.status.name === 'COMPLETED') {
      const result = await handle.result().catch(() => null);
      if (isColdMigrationView(result)) view = result;
    }
    if (!view && row.status.name === 'COMPLETED') {
      view = await this.client
        .withDeadline(Date.now() + REPLAY_TIMEOUT_MS, () => handle.query(coldMigrationStatusQuery))
        .then((v) => (isColdMigrationView(v) && COLD_MIGRATION_FINAL.has(v.status) ? v : null))
        .catch(() => null);
    }
    view ??= fromRow;
    this.closed.set(row.runId, view);
    return view;
  }

  private async update(id: string, action: 'confirm' | 'revert'): Promise<ColdMigrationView> {
    const row = await this.resolve(id);
    if (!row) throw new MigrationNotFoundError(`No resize or cold migration ${id} could be found.`);
    if (row.status.name !== 'RUNNING') return this.ended(await this.show(row), action);
    const handle = this.client.workflow.getHandle(row.workflowId, row.runId);
    try {
      return await executeControlUpdate(handle, action === 'confirm' ? confirmResizeUpdate : revertResizeUpdate);
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) throw new RefusedError((err.cause as Error | undefined)?.message ?? err.message);
      if (err instanceof WorkflowNotFoundError || /already completed/i.test((err as Error).message)) {
        return this.ended(await this.show(await this.client.workflow.getHandle(row.workflowId, row.runId).describe()), action);
      }
      throw err;
    }
  }

  /**
   * A confirm or revert of a run that has ended: the same decision again answers its final view
   * (as the workflow's update does while it runs: a confirm twice is one confirm); anything else is
   * refused with the workflow's words.
   */
  private ended(view: ColdMigrationView, action: 'confirm' | 'revert'): ColdMigrationView {
    if ((action === 'confirm' && view.status === 'confirmed') || (action === 'revert' && view.status === 'reverted')) return view;
    if (view.status === 'confirmed' || view.status === 'reverted') {
      throw new RefusedError(action === 'revert' ? 'cannot revert: the resize was already confirmed' : 'cannot confirm: the resize was already reverted');
    }
    throw new RefusedError(`cannot ${action}: the migration failed (${view.error?.message ?? view.status})`);
  }
}

/** The visibility query of a listing (every value validated or quoted). */
export function coldMigrationQuery(filter: ColdMigrationFilter): string {
  const clauses = [`WorkflowType = ${quote(COLD_MIGRATION_WORKFLOW)}`];
  if (filter.instanceUuid !== undefined) clauses.push(`WorkflowId = ${quote(coldMigrationWorkflowId(filter.instanceUuid))}`);
  // The workflow keeps MigrationStatus current (cold-migration-board.ts); each row's view is checked again.
  if (filter.status !== undefined) clauses.push(`MigrationStatus = ${quote(filter.status)}`);
  if (filter.open === true) clauses.push(`ExecutionStatus = 'Running'`);
  if (filter.open === false) clauses.push(`ExecutionStatus != 'Running'`);
  return clauses.join(' AND ');
}
