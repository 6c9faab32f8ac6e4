// The API's Prometheus metrics on a fake source: migrations by status, each closed migration
// observed once however often /metrics is scraped, slots per host, and a failing read that leaves
// its metrics out instead of failing the scrape.
import { describe, expect, it } from 'vitest';
import { ApiMetrics, type ClosedMigration, type MigrationMetricsSource } from '../../api/metrics';
import type { NovaMigrationStatus, SlotsState } from '../../workflows/definitions';

const limits = { outboundPerHost: 1, inboundPerHost: 2, cluster: 5 };

class FakeSource implements MigrationMetricsSource {
  counts: Partial<Record<NovaMigrationStatus, number>> = { running: 2, completed: 7, error: 1 };
  closed: ClosedMigration[] = [];
  slots: SlotsState | null = null;
  failCounts = false;
  sinceAsked: Date[] = [];

  async countMigrations(): Promise<Record<NovaMigrationStatus, number>> {
    if (this.failCounts) throw new Error('visibility is down');
    return this.counts as Record<NovaMigrationStatus, number>;
  }

  async closedMigrationsSince(since: Date, skip: (runId: string) => boolean = () => false): Promise<ClosedMigration[]> {
    this.sinceAsked.push(since);
    return this.closed.filter((m) => m.closedAt >= since && !skip(m.runId));
  }

  async slotUsage(): Promise<SlotsState | null> {
    return this.slots;
  }
}

function closed(runId: string, patch: Partial<ClosedMigration> = {}): ClosedMigration {
  return { runId, status: 'completed', closedAt: new Date(Date.now() + 1000), durationSeconds: 42, bytes: 64 * 2 ** 20, downtimeSeconds: 0.12, queueWaitSeconds: 3, ...patch };
}

describe('ApiMetrics', () => {
  it('counts migrations by status from the source, every status present', async () => {
    const text = await new ApiMetrics({ source: new FakeSource() }).render();
    expect(text).toContain('# TYPE ferry_migrations gauge');
    expect(text).toContain('ferry_migrations{status="running"} 2');
    expect(text).toContain('ferry_migrations{status="completed"} 7');
    expect(text).toContain('ferry_migrations{status="queued"} 0');
  });

  it('observes each closed migration once, however many scrapes see it', async () => {
    const source = new FakeSource();
    const metrics = new ApiMetrics({ source });
    source.closed = [closed('run-1'), closed('run-2', { status: 'cancelled', bytes: 2 ** 20, downtimeSeconds: null, queueWaitSeconds: null })];
    await metrics.render();
    const text = await metrics.render();
    expect(text).toContain('ferry_migration_duration_seconds_count{status="completed"} 1');
    expect(text).toContain('ferry_migration_duration_seconds_count{status="cancelled"} 1');
    expect(text).toContain('ferry_migration_duration_seconds_sum{status="completed"} 42');
    expect(text).toContain('ferry_migration_bytes_count{status="completed"} 1');
    expect(text).toContain('ferry_migration_bytes_bucket{le="67108864",status="completed"} 1');
    expect(text).toContain('ferry_migration_downtime_seconds_count 1');
    expect(text).toContain('ferry_migration_downtime_seconds_bucket{le="0.25"} 1');
    expect(text).toContain('ferry_migration_queue_wait_seconds_count 1');
    // The second scrape looked back from the latest close, not from the beginning of time.
    expect(source.sinceAsked[1]?.getTime()).toBeGreaterThanOrEqual(source.sinceAsked[0]?.getTime() ?? Infinity);
  });

  it('shares one read between overlapping scrapes', async () => {
    const source = new FakeSource();
    const metrics = new ApiMetrics({ source });
    source.closed = [closed('run-1')];
    await Promise.all([metrics.render(), metrics.render(), metrics.render()]);
    expect(await metrics.render()).toContain('ferry_migration_duration_seconds_count{status="completed"} 1');
  });

  it('shows slots in use per host, every configured host present, and the limits', async () => {
    const source = new FakeSource();
    source.slots = {
      queue: [{ workflowId: 'w3', sourceHost: 'xen-a', memoryBytes: 1, limits }],
      holders: [
        { workflowId: 'w1', sourceHost: 'xen-a', destHost: 'xen-b', memoryBytes: 1 },
        { workflowId: 'w2', sourceHost: 'xen-c', destHost: 'xen-b', memoryBytes: 1 },
      ],
      limits,
    };
    const text = await new ApiMetrics({ source, hosts: ['xen-a', 'xen-b', 'xen-d'] }).render();
    expect(text).toContain('ferry_migration_slots_in_use{host="xen-a",direction="outbound"} 1');
    expect(text).toContain('ferry_migration_slots_in_use{host="xen-b",direction="inbound"} 2');
    expect(text).toContain('ferry_migration_slots_in_use{host="xen-c",direction="outbound"} 1');
    expect(text).toContain('ferry_migration_slots_in_use{host="xen-d",direction="inbound"} 0');
    expect(text).toContain('ferry_migration_slots_waiting 1');
    expect(text).toContain('ferry_migration_slot_limit{scope="cluster"} 5');
  });

  it('a read that fails leaves its metrics out and counts the failure; the rest is served', async () => {
    const source = new FakeSource();
    const metrics = new ApiMetrics({ source });
    expect(await metrics.render()).toContain('ferry_migrations{status="running"} 2');
    source.failCounts = true;
    const text = await metrics.render();
    expect(text).not.toContain('ferry_migrations{status="running"}');
    expect(text).toContain('ferry_api_metrics_read_errors_total{read="migration_counts"} 1');
    expect(text).toContain('ferry_migration_slots_waiting 0');
  });

  it('without a source: request and process metrics only', async () => {
    const text = await new ApiMetrics().render();
    expect(text).toContain('# TYPE ferry_api_request_duration_seconds histogram');
    expect(text).toContain('process_resident_memory_bytes');
    expect(text).not.toContain('ferry_migrations{');
  });
});
