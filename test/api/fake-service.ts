// An in-memory FerryService for the API and CLI unit tests: a small cluster, migrations that move
// through their statuses when a test says so, and updates that can be refused with a reason.
import type { MaintenanceAction, MaintenanceControl, MaintenanceOperations, StartMaintenanceOptions } from '../../api/maintenance-service';
import { newColdMigrationView, type ColdMigrationFilter, type ColdMigrationOperations } from '../../api/cold-migration-service';
import { COLD_MIGRATION_FINAL, ColdMigrationInputSchema, type ColdMigrationInput, type ColdMigrationView } from '../../workflows/cold-migration-definitions';
import type {
  ClusterView,
  ControlAccepted,
  HostServiceChange,
  HostServiceState,
  HostView,
  InstanceView,
  LiveMigrationRequest,
  MigrationStatusView,
} from '../../workflows/definitions';
import { hostMaintenanceWorkflowId, liveMigrationWorkflowId, newMaintenanceView, newMigrationView, novaMigrationId, type MaintenanceView } from '../../workflows/definitions';
import {
  AlreadyMigratingError,
  MigrationNotFoundError,
  RefusedError,
  type FerryService,
  type InstanceAction,
  type MigrationFilter,
  type MigrationSummary,
  type StartedMigration,
} from '../../api/ferry-service';
import { FINAL_STATUSES } from '../../api/context';

export const VM1 = '11111111-1111-4111-8111-111111111111';
export const VM2 = '22222222-2222-4222-8222-222222222222';
export const VM_HALTED = '33333333-3333-4333-8333-333333333333';
const GiB = 2 ** 30;

export function fakeCluster(): ClusterView {
  const instance = (uuid: string, name: string, host: string, powerState: 'Running' | 'Halted' = 'Running') => ({
    uuid,
    name,
    powerState,
    host,
    memoryBytes: 2 * GiB,
    vcpus: 2,
    vcpuCap: null,
    diskBytes: 10 * GiB,
    storage: 'shared' as const,
  });
  const host = (name: string, pool: string, instances: ReturnType<typeof instance>[], up = true) => ({
    name,
    pool,
    up,
    downReason: up ? null : 'no poller on ferry-host-' + name,
    enabled: true,
    productVersion: '8.2.1',
    platformVersion: '3.4.0',
    memoryTotalBytes: 16 * GiB,
    memoryFreeBytes: 12 * GiB,
    instances,
  });
  return {
    hosts: [
      host('xen-a', 'pool-1', [instance(VM1, 'web-1', 'xen-a'), instance(VM_HALTED, 'db-old', 'xen-a', 'Halted')]),
      host('xen-b', 'pool-1', [instance(VM2, 'web-2', 'xen-b')]),
      host('xen-c', 'pool-2', [], false),
    ],
    observedAt: '2026-11-24T07:00:00.000Z',
  };
}

export function migrationView(runId: string, request: LiveMigrationRequest, source: string): MigrationStatusView {
  return newMigrationView({
    runId,
    workflowId: liveMigrationWorkflowId(request.instanceUuid),
    instanceUuid: request.instanceUuid,
    createdAt: '2026-11-24T07:00:00.000Z',
    sourceHost: source,
    destHost: request.host ?? null,
    blockMigration: request.blockMigration === 'auto' ? null : request.blockMigration,
    requestedBy: request.requestedBy,
  });
}

export class FakeFerryService implements FerryService {
  cluster = fakeCluster();
  readonly migrations: MigrationStatusView[] = [];
  readonly started: LiveMigrationRequest[] = [];
  readonly lastFilters: MigrationFilter[] = [];
  refuseAbort: string | null = null;
  refuseForceComplete: string | null = null;
  ready = true;
  readonly maintenance = new FakeMaintenance();
  readonly coldMigrations: FakeColdMigrations = new FakeColdMigrations(this);
  private counter = 0;
  /** Called on every getMigration; lets a test move a migration along. */
  onGet: ((view: MigrationStatusView) => void) | null = null;

  async startMigration(request: LiveMigrationRequest): Promise<StartedMigration> {
    if (this.migrations.some((m) => m.server_uuid === request.instanceUuid && !FINAL_STATUSES.has(m.status))) {
      throw new AlreadyMigratingError(request.instanceUuid);
    }
    this.counter += 1;
    const runId = `0000000${this.counter}-aaaa-4aaa-8aaa-aaaaaaaaaaaa`.slice(-36);
    const source = this.cluster.hosts.find((h) => h.instances.some((i) => i.uuid === request.instanceUuid))?.name ?? 'xen-a';
    this.started.push(request);
    this.migrations.unshift(migrationView(runId, request, source));
    return { workflowId: liveMigrationWorkflowId(request.instanceUuid), runId, novaId: novaMigrationId(runId) };
  }

  add(view: MigrationStatusView): MigrationStatusView {
    this.migrations.unshift(view);
    return view;
  }

  private find(id: string): MigrationStatusView | undefined {
    return this.migrations.find((m) => m.uuid === id) ?? this.migrations.find((m) => m.server_uuid === id);
  }

  async getMigration(id: string): Promise<MigrationStatusView | null> {
    const view = this.find(id);
    if (view && this.onGet) this.onGet(view);
    return view ? structuredClone(view) : null;
  }

  private matches(m: MigrationStatusView, f: MigrationFilter): boolean {
    return (
      (f.status === undefined || m.status === f.status) &&
      (f.instanceUuid === undefined || m.server_uuid === f.instanceUuid) &&
      (f.host === undefined || m.source_compute === f.host || m.dest_compute === f.host) &&
      (f.sourceHost === undefined || m.source_compute === f.sourceHost) &&
      (f.open === undefined || f.open === !FINAL_STATUSES.has(m.status))
    );
  }

  async listMigrations(filter: MigrationFilter): Promise<MigrationStatusView[]> {
    this.lastFilters.push(filter);
    return this.migrations.filter((m) => this.matches(m, filter)).slice(0, filter.limit ?? 50).map((m) => structuredClone(m));
  }

  async listMigrationSummaries(filter: MigrationFilter): Promise<MigrationSummary[]> {
    return this.migrations
      .filter((m) => this.matches(m, filter))
      .map((m) => ({
        workflowId: m.workflowId,
        runId: m.uuid,
        instanceUuid: m.server_uuid,
        status: m.status,
        sourceHost: m.source_compute,
        destHost: m.dest_compute,
        running: !FINAL_STATUSES.has(m.status),
        startedAt: m.created_at,
      }));
  }

  private control(id: string, refusal: string | null, apply: (m: MigrationStatusView) => void): ControlAccepted {
    const m = this.find(id);
    if (!m) throw new MigrationNotFoundError(`Migration ${id} could not be found.`);
    if (FINAL_STATUSES.has(m.status)) throw new RefusedError(`the migration is already ${m.status}`);
    if (refusal) throw new RefusedError(refusal);
    apply(m);
    return { accepted: true, status: m.status, phase: m.phase };
  }

  async abort(id: string): Promise<ControlAccepted> {
    return this.control(id, this.refuseAbort, (m) => {
      m.phase = 'rolling_back';
    });
  }

  async forceComplete(id: string): Promise<ControlAccepted> {
    return this.control(id, this.refuseForceComplete, (m) => {
      m.forceCompleteRequested = true;
    });
  }

  async describeCluster(): Promise<ClusterView> {
    return structuredClone(this.cluster);
  }

  async locateInstance(uuid: string): Promise<{ instance: InstanceView; host: HostView } | null> {
    const wanted = uuid.toLowerCase();
    for (const host of this.cluster.hosts) {
      const instance = host.instances.find((i) => i.uuid === wanted);
      if (instance) return structuredClone({ instance, host });
    }
    return null;
  }

  async hostNow(name: string): Promise<HostView | null> {
    return structuredClone(this.cluster.hosts.find((h) => h.name === name) ?? null);
  }

  /** os-services: sets the host's service state in the fake cluster (a host that is down refuses, as its agent would not answer). */
  async updateHostService(name: string, change: HostServiceChange): Promise<HostServiceState> {
    const host = this.cluster.hosts.find((h) => h.name === name);
    if (!host) throw new RefusedError(`Compute service of ${name} is unavailable at this time: no such host`);
    if (!host.up) throw new RefusedError(`Compute service of ${name} is unavailable at this time: ${host.downReason ?? 'down'}`);
    const h = host as HostView;
    if (change.enabled === false) Object.assign(h, { enabled: false, disabledReason: change.disabledReason ?? null });
    if (change.enabled === true) Object.assign(h, { enabled: true, disabledReason: null });
    if (change.forcedDown !== undefined) h.forcedDown = change.forcedDown;
    return { host: name, enabled: h.enabled, disabledReason: h.disabledReason ?? null, forcedDown: h.forcedDown ?? false };
  }

  /** A migration's action as the real service builds it from visibility; its events are the ones a test put in `events`. */
  readonly actionEvents = new Map<string, NonNullable<InstanceAction['events']>>();

  private instanceAction(m: MigrationStatusView): InstanceAction {
    return {
      action: 'live-migration',
      instanceUuid: m.server_uuid,
      requestId: `req-${m.uuid}`,
      migrationUuid: m.uuid,
      userId: m.user_id,
      projectId: m.project_id,
      startTime: m.created_at,
      updatedAt: m.updated_at,
      message: m.status === 'failed' || m.status === 'error' ? 'Error' : null,
    };
  }

  async listInstanceActions(instanceUuid: string): Promise<InstanceAction[]> {
    return this.migrations.filter((m) => m.server_uuid === instanceUuid.toLowerCase()).map((m) => this.instanceAction(m));
  }

  async getInstanceAction(instanceUuid: string, requestId: string): Promise<InstanceAction | null> {
    const m = this.migrations.find((v) => v.server_uuid === instanceUuid.toLowerCase() && `req-${v.uuid}` === requestId);
    return m ? { ...this.instanceAction(m), events: structuredClone(this.actionEvents.get(m.uuid) ?? []) } : null;
  }

  async checkReady(): Promise<{ ok: boolean; checks: Record<string, string> }> {
    return this.ready ? { ok: true, checks: { temporal: 'namespace default answers' } } : { ok: false, checks: { temporal: 'connection refused' } };
  }

  async close(): Promise<void> {}
}

/** Maintenance in memory: a start is drained at once; the updates follow the workflow's rules. */
export class FakeMaintenance implements MaintenanceOperations {
  readonly runs = new Map<string, MaintenanceView>();

  async start(host: string, options: StartMaintenanceOptions): Promise<MaintenanceView> {
    const current = this.runs.get(host);
    if (current && current.status !== 'left') throw new RefusedError(`${host} is already in maintenance`);
    const view = newMaintenanceView({ host, workflowId: hostMaintenanceWorkflowId(host), status: 'draining', at: '2026-11-24T07:00:00.000Z', parallelism: options.parallelism ?? 1 });
    this.runs.set(host, view);
    return view;
  }

  async get(host: string): Promise<MaintenanceView | null> {
    return this.runs.get(host) ?? null;
  }

  async control(host: string, action: MaintenanceAction, options: MaintenanceControl = {}): Promise<MaintenanceView | null> {
    const view = this.runs.get(host);
    if (!view) return null;
    const allowed: Record<MaintenanceAction, MaintenanceView['status'][]> = {
      pause: ['draining'],
      resume: ['paused'],
      cancel: ['entering', 'draining', 'paused'],
      leave: ['drained', 'partial', 'cancelled'],
    };
    if (!allowed[action].includes(view.status)) throw new RefusedError(`cannot ${action} a maintenance that is ${view.status}`);
    const next = { pause: 'paused', resume: 'draining', cancel: 'cancelled', leave: 'left' } as const;
    view.status = next[action];
    if (action === 'leave') view.bringBack = options.bringBack ?? false;
    return view;
  }
}

/**
 * Resizes and cold migrations in memory, following the workflow's rules for its updates (and its
 * words: workflows/cold-migration-task.ts validateDecision): confirm and revert only once finished,
 * confirm twice answers the same, revert after confirm is refused.
 * A test moves a run along with `set`.
 */
export class FakeColdMigrations implements ColdMigrationOperations {
  readonly runs: ColdMigrationView[] = [];
  readonly started: ColdMigrationInput[] = [];
  private counter = 0;

  constructor(private readonly service: { cluster: ClusterView }) {}

  async start(request: ColdMigrationInput): Promise<ColdMigrationView> {
    const input = ColdMigrationInputSchema.parse(request);
    if (this.runs.some((r) => r.instanceUuid === input.instanceUuid && !COLD_MIGRATION_FINAL.has(r.status))) throw new AlreadyMigratingError(input.instanceUuid);
    this.counter += 1;
    const runId = `0000000${this.counter}-cccc-4ccc-8ccc-cccccccccccc`.slice(-36);
    const source = this.service.cluster.hosts.find((h) => h.instances.some((i) => i.uuid === input.instanceUuid))?.name ?? null;
    const view = newColdMigrationView({ runId, input, sourceHost: source, at: '2026-11-24T07:00:00.000Z' });
    this.started.push(request);
    this.runs.unshift(view);
    return structuredClone(view);
  }

  /** Moves a run along (status, step, hosts, progress), as the workflow would. */
  set(runId: string, change: Partial<ColdMigrationView>): ColdMigrationView {
    const run = this.runs.find((r) => r.uuid === runId);
    if (!run) throw new Error(`no run ${runId}`);
    Object.assign(run, change);
    return run;
  }

  private find(id: string): ColdMigrationView | undefined {
    const lower = id.toLowerCase();
    return this.runs.find((r) => r.uuid === lower) ?? this.runs.find((r) => r.instanceUuid === lower);
  }

  async get(id: string): Promise<ColdMigrationView | null> {
    const run = this.find(id);
    return run ? structuredClone(run) : null;
  }

  async list(filter: ColdMigrationFilter): Promise<ColdMigrationView[]> {
    return this.runs
      .filter(
        (r) =>
          (filter.instanceUuid === undefined || r.instanceUuid === filter.instanceUuid.toLowerCase()) &&
          (filter.open === undefined || filter.open === !COLD_MIGRATION_FINAL.has(r.status)) &&
          (filter.migrationType === undefined || r.migrationType === filter.migrationType) &&
          (filter.status === undefined || r.status === filter.status),
      )
      .slice(0, filter.limit ?? 50)
      .map((r) => structuredClone(r));
  }

  async confirm(id: string): Promise<ColdMigrationView> {
    const run = this.find(id);
    if (!run) throw new MigrationNotFoundError(`No resize or cold migration ${id} could be found.`);
    if (run.status === 'confirming' || run.status === 'confirmed') return structuredClone(run);
    if (run.status === 'reverting' || run.status === 'reverted') throw new RefusedError('cannot confirm: the resize was already reverted');
    if (run.status !== 'finished') throw new RefusedError(`cannot confirm: the migration is ${run.status}, not finished yet`);
    run.status = 'confirming';
    run.step = 'confirmResize';
    return structuredClone(run);
  }

  async revert(id: string): Promise<ColdMigrationView> {
    const run = this.find(id);
    if (!run) throw new MigrationNotFoundError(`No resize or cold migration ${id} could be found.`);
    if (run.status === 'reverting' || run.status === 'reverted') return structuredClone(run);
    if (run.status === 'confirming' || run.status === 'confirmed') throw new RefusedError('cannot revert: the resize was already confirmed');
    if (run.status !== 'finished') throw new RefusedError(`cannot revert: the migration is ${run.status}, not finished yet`);
    run.status = 'reverting';
    run.step = 'revertResize';
    return structuredClone(run);
  }
}
