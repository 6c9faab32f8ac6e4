import { describe, expect, it } from 'vitest';
import { bar, formatBytes, formatDuration, hostTable, migrationDetails, migrationTable, outcomeLine, progressLine, totals, webUiUrl } from '../../cli/render';
import { migrationView } from '../api/fake-service';
import type { MigrationStatusView, TransferProgress } from '../../workflows/definitions';

const MiB = 2 ** 20;
const RUN = '0aaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const VM = '11111111-1111-4111-8111-111111111111';

function precopy(): MigrationStatusView {
  const progress: TransferProgress = {
    memoryTotalBytes: 1024 * MiB,
    memoryProcessedBytes: 512 * MiB,
    memoryRemainingBytes: 512 * MiB,
    diskTotalBytes: 0,
    diskProcessedBytes: 0,
    diskRemainingBytes: 0,
    fraction: 0.5,
    fractionPerSecond: 0.125,
    etaSeconds: 4,
    transferPhase: 'precopy',
  };
  return {
    ...migrationView(RUN, { instanceUuid: VM, host: 'xen-b', blockMigration: false, force: false, options: {} }, 'xen-a'),
    status: 'running',
    phase: 'precopy',
    progress,
  };
}

describe('rendering', () => {
  it('formats bytes, durations and bars', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(300 * MiB)).toBe('300 MiB');
    expect(formatBytes(2.5 * 1024 * MiB)).toBe('2.5 GiB');
    expect(formatBytes(null)).toBe('-');
    expect(formatDuration(4.2)).toBe('5s');
    expect(formatDuration(125)).toBe('2m05s');
    expect(formatDuration(null)).toBe('-');
    expect(bar(0.5, 10)).toBe('█████░░░░░');
    expect(bar(2, 4)).toBe('████');
  });

  it('draws the progress line: route, phase, bar, estimated bytes, ETA', () => {
    const line = progressLine(precopy(), 10);
    expect(line).toBe('xen-a → xen-b  precopy  █████░░░░░  50%  ~512 MiB of 1.0 GiB  ETA 4s');
    const scheduling = { ...precopy(), phase: 'scheduling' as const, progress: null, dest_compute: null };
    expect(progressLine(scheduling)).toBe('xen-a → (scheduling)  scheduling');
    expect(progressLine({ ...precopy(), progress: { ...precopy().progress!, vcpuCap: 30 } })).toContain('vCPU cap 30%');
    expect(progressLine({ ...precopy(), progress: { ...precopy().progress!, guestPaused: true } })).toContain('guest paused');
  });

  it('falls back to Nova\'s byte fields when there is no live progress', () => {
    const view = { ...precopy(), progress: null, memory_total_bytes: 100, memory_processed_bytes: 25, memory_remaining_bytes: 75, disk_total_bytes: 0, disk_processed_bytes: 0, disk_remaining_bytes: 0 };
    expect(totals(view)).toEqual({ processed: 25, total: 100, remaining: 75, fraction: 0.25 });
  });

  it('says how a migration ended', () => {
    const done = { ...precopy(), status: 'completed' as const, phase: 'done' as const, progress: { ...precopy().progress!, transferPhase: 'done' as const } };
    expect(outcomeLine(done)).toBe(`completed: ${VM} now runs on xen-b, 1.0 GiB moved`);
    const failed = { ...precopy(), status: 'failed' as const, error: { type: 'NoValidHost', message: 'No valid host was found.' } };
    expect(outcomeLine(failed)).toBe(`failed: NoValidHost: No valid host was found. (${VM} stays on xen-a)`);
  });

  it('prints tables and details', () => {
    const table = migrationTable([precopy()]);
    expect(table.split('\n')[0]).toMatch(/^ID\s+INSTANCE\s+STATUS\s+PHASE\s+ROUTE\s+PROGRESS\s+CREATED$/);
    expect(table).toContain(`${RUN}  ${VM}  running  precopy  xen-a → xen-b  50%`);
    expect(migrationTable([])).toBe('no migrations');
    const details = migrationDetails(precopy(), 'http://ui/x');
    expect(details).toContain(`Migration   ${RUN}`);
    expect(details).toContain('Web UI      http://ui/x');
    const left = migrationDetails({ ...precopy(), waitingFor: 'xen-c to remove what arrived', cleanups: [{ workflowId: 'migration-cleanup-r-xen-c', host: 'xen-c', steps: ['rollbackLiveMigrationAtDestination'] }] });
    expect(left).toContain('Waiting for xen-c to remove what arrived');
    expect(left).toContain('Cleanup     rollbackLiveMigrationAtDestination on xen-c, pending in migration-cleanup-r-xen-c');
    const hosts = hostTable([
      { name: 'xen-a', pool: 'p1', up: true, downReason: null, memoryTotalBytes: 16 * 1024 * MiB, memoryFreeBytes: 8 * 1024 * MiB, instanceCount: 3, migrations: { outbound: ['x'], inbound: [] } },
      { name: 'xen-c', pool: 'p2', up: false, downReason: 'no agent polls its queue', memoryTotalBytes: 0, memoryFreeBytes: 0, instanceCount: 0, migrations: { outbound: [], inbound: [] } },
    ]);
    expect(hosts).toContain('xen-a  p1    up     8.0 GiB / 16.0 GiB  3    1    0');
    expect(hosts).toContain('DOWN');
    expect(hosts).toContain('no agent polls its queue');
    expect(webUiUrl('http://127.0.0.1:8233/', 'default', `live-migration-${VM}`, RUN)).toBe(
      `http://127.0.0.1:8233/namespaces/default/workflows/live-migration-${VM}/${RUN}/history`,
    );
  });
});
