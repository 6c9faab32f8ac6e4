// The API's Prometheus metrics, with prom-client: the requests it answers (a latency histogram by
// route and status code), what it started and steered, the process's own figures, and the
// migrations as Temporal knows them, read when /metrics is scraped: how many are in each status
// (visibility counts), the duration, bytes, downtime and wait for a slot of each migration that
// closed since this process started (each observed once), and the slots in use per host (the
// migrationSlots entity's query).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MIGRATION_STATUSES, type NovaMigrationStatus, type SlotsState } from '../workflows/definitions';

/** A migration that closed, with the figures the histograms want. */
export interface ClosedMigration {
  runId: string;
  status: NovaMigrationStatus;
  closedAt: Date;
  durationSeconds: number;
  /** Bytes sent by the transfer (the run's result); null when it did not return one. */
  bytes: number | null;
  downtimeSeconds: number | null;
  /** From queued to preparing (the memo's timeline; 0 when granted at once); null when unknown or never granted. */
  queueWaitSeconds: number | null;
}

/** Where the migration metrics come from: api/temporal-service.ts, or a fake in unit tests. */
export interface MigrationMetricsSource {
  countMigrations(): Promise<Record<NovaMigrationStatus, number>>;
  /** Migrations closed at or after `since`; runs for which `skip` is true may be left out. */
  closedMigrationsSince(since: Date, skip?: (runId: string) => boolean): Promise<ClosedMigration[]>;
  slotUsage(): Promise<SlotsState | null>;
}

export interface ApiMetricsOptions {
  source?: MigrationMetricsSource;
  /** Hosts whose slot gauges exist even while they hold nothing (temporal.yaml's hosts). */
  hosts?: string[];
  /** Every Temporal read of a scrape gives up after this long (default 5 s). */
  scrapeTimeoutMs?: number;
}

/** Visibility may record a close a little after it happened: every scrape looks back this far. */
const CLOSE_LOOKBACK_MS = 5 * 60_000;

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const MIB = 2 ** 20;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class ApiMetrics {
  readonly registry = new Registry();

  readonly requestDuration = new Histogram({
    name: 'ferry_api_request_duration_seconds',
    help: 'HTTP requests answered, by method, route and status code: time to answer in seconds.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });
  readonly migrationsStarted = new Counter({
    name: 'ferry_api_migrations_started_total',
    help: 'Migrations started through this API process: live, resize and cold.',
    registers: [this.registry],
  });
  readonly controlRequests = new Counter({
    name: 'ferry_api_control_requests_total',
    help: 'Abort, force-complete, confirm and revert requests, by action and outcome (accepted, refused).',
    labelNames: ['action', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly backendErrors = new Counter({
    name: 'ferry_api_backend_errors_total',
    help: 'Requests that failed because Temporal did not answer, by route.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly streams = new Counter({
    name: 'ferry_api_progress_streams_total',
    help: 'Progress event streams (SSE) opened.',
    registers: [this.registry],
  });

  private readonly migrations = new Gauge({
    name: 'ferry_migrations',
    help: 'Migrations by Nova status, as Temporal visibility counts them (a run ended without a final status counts as error).',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: 'ferry_migration_duration_seconds',
    help: 'Migrations closed since this process started, by final status: from request to end, in seconds.',
    labelNames: ['status'] as const,
    buckets: [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200],
    registers: [this.registry],
  });
  private readonly bytes = new Histogram({
    name: 'ferry_migration_bytes',
    help: 'Bytes sent by each migration that returned a result (xapi reports a fraction: an estimate of memory plus moved disks), by final status.',
    labelNames: ['status'] as const,
    buckets: [MIB, 16 * MIB, 64 * MIB, 256 * MIB, 1024 * MIB, 4096 * MIB, 16384 * MIB, 65536 * MIB, 262144 * MIB],
    registers: [this.registry],
  });
  private readonly downtime = new Histogram({
    name: 'ferry_migration_downtime_seconds',
    help: 'Measured downtime of each completed migration (the VM paused between source and destination), in seconds.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly queueWait = new Histogram({
    name: 'ferry_migration_queue_wait_seconds',
    help: 'How long each closed migration waited in status queued for its slot, in seconds.',
    buckets: [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
    registers: [this.registry],
  });
  private readonly slotsInUse = new Gauge({
    name: 'ferry_migration_slots_in_use',
    help: 'Migration slots held per host (migrationSlots entity): outbound from it, inbound to it.',
    labelNames: ['host', 'direction'] as const,
    registers: [this.registry],
  });
  private readonly slotsWaiting = new Gauge({
    name: 'ferry_migration_slots_waiting',
    help: 'Migrations waiting for a slot (status queued).',
    registers: [this.registry],
  });
  private readonly slotLimit = new Gauge({
    name: 'ferry_migration_slot_limit',
    help: 'The limits the slots entity applies: outbound_per_host, inbound_per_host, cluster.',
    labelNames: ['scope'] as const,
    registers: [this.registry],
  });
  private readonly scrapeErrors = new Counter({
    name: 'ferry_api_metrics_read_errors_total',
    help: 'Reads from Temporal for /metrics that failed (their metrics are absent from that scrape), by what was read.',
    labelNames: ['read'] as const,
    registers: [this.registry],
  });

  private readonly source?: MigrationMetricsSource;
  private readonly hosts: string[];
  private readonly scrapeTimeoutMs: number;
  private readonly startedAt = Date.now();
  /** Closed runs already observed, with their close time; forgotten once out of the look-back. */
  private readonly seen = new Map<string, number>();
  private latestClose = this.startedAt;
  private refreshing: Promise<void> | null = null;

  constructor(options: ApiMetricsOptions = {}) {
    this.source = options.source;
    this.hosts = options.hosts ?? [];
    this.scrapeTimeoutMs = options.scrapeTimeoutMs ?? 5_000;
    collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text, after reading what Temporal knows now. */
  async render(): Promise<string> {
    // Scrapes that overlap share one read, so a closed migration is observed once.
    this.refreshing ??= this.refresh().finally(() => {
      this.refreshing = null;
    });
    await this.refreshing;
    return this.registry.metrics();
  }

  private async refresh(): Promise<void> {
    const source = this.source;
    if (!source) return;
    const read = async (what: string, fn: () => Promise<void>, reset: () => void) => {
      try {
        await withTimeout(fn(), this.scrapeTimeoutMs, what);
      } catch {
        reset();
        this.scrapeErrors.inc({ read: what });
      }
    };
    await Promise.all([
      read('migration_counts', () => this.readCounts(source), () => this.migrations.reset()),
      read('closed_migrations', () => this.observeClosed(source), () => undefined),
      read('slots', () => this.readSlots(source), () => {
        this.slotsInUse.reset();
        this.slotsWaiting.reset();
        this.slotLimit.reset();
      }),
    ]);
  }

  private async readCounts(source: MigrationMetricsSource): Promise<void> {
    const counts = await source.countMigrations();
    for (const status of MIGRATION_STATUSES) this.migrations.set({ status }, counts[status] ?? 0);
  }

  private async observeClosed(source: MigrationMetricsSource): Promise<void> {
    const since = Math.max(this.startedAt, this.latestClose - CLOSE_LOOKBACK_MS);
    const closed = await source.closedMigrationsSince(new Date(since), (runId) => this.seen.has(runId));
    for (const m of closed) {
      if (this.seen.has(m.runId)) continue;
      const closedAt = m.closedAt.getTime();
      this.seen.set(m.runId, closedAt);
      this.latestClose = Math.max(this.latestClose, closedAt);
      this.duration.observe({ status: m.status }, m.durationSeconds);
      if (m.bytes !== null) this.bytes.observe({ status: m.status }, m.bytes);
      if (m.downtimeSeconds !== null && m.status === 'completed') this.downtime.observe(m.downtimeSeconds);
      if (m.queueWaitSeconds !== null) this.queueWait.observe(m.queueWaitSeconds);
    }
    for (const [runId, at] of this.seen) if (at < since) this.seen.delete(runId);
  }

  private async readSlots(source: MigrationMetricsSource): Promise<void> {
    const state = await source.slotUsage();
    this.slotsInUse.reset();
    const held = new Map<string, { outbound: number; inbound: number }>(this.hosts.map((h) => [h, { outbound: 0, inbound: 0 }]));
    const of = (host: string) => held.get(host) ?? held.set(host, { outbound: 0, inbound: 0 }).get(host)!;
    for (const h of state?.holders ?? []) {
      of(h.sourceHost).outbound += 1;
      if (h.destHost) of(h.destHost).inbound += 1;
    }
    for (const [host, n] of held) {
      this.slotsInUse.set({ host, direction: 'outbound' }, n.outbound);
      this.slotsInUse.set({ host, direction: 'inbound' }, n.inbound);
    }
    this.slotsWaiting.set(state?.queue.length ?? 0);
    this.slotLimit.reset();
    if (state?.limits) {
      this.slotLimit.set({ scope: 'outbound_per_host' }, state.limits.outboundPerHost);
      this.slotLimit.set({ scope: 'inbound_per_host' }, state.limits.inboundPerHost);
      this.slotLimit.set({ scope: 'cluster' }, state.limits.cluster);
    }
  }
}
