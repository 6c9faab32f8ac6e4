// query-migrate read into Nova's fields, without QEMU: the figures libvirt's job info carries.
import { describe, expect, it } from 'vitest';
import { migrationCapabilities, migrationInfoSchema, migrationProgress } from '../../qemu/migration';

describe('migration progress', () => {
  it("maps ram.total/transferred/remaining onto Nova's memory_* and computes instance.progress", () => {
    const info = migrationInfoSchema.parse({
      status: 'active',
      'total-time': 1079,
      'expected-downtime': 300,
      'setup-time': 19,
      ram: { total: 67641344, transferred: 36932101, remaining: 16910336, 'dirty-pages-rate': 3080, 'dirty-sync-count': 2, mbps: 268.4 },
    });
    const p = migrationProgress(info, { totalBytes: 16 << 20, processedBytes: 4 << 20, remainingBytes: 12 << 20 });
    expect(p).toMatchObject({
      status: 'active',
      memory_total: 67641344,
      memory_processed: 36932101,
      memory_remaining: 16910336,
      disk_total: 16 << 20,
      disk_processed: 4 << 20,
      disk_remaining: 12 << 20,
      progressPercent: 75,
      totalTimeMs: 1079,
      downtimeMs: null,
      expectedDowntimeMs: 300,
      dirtyPagesPerSecond: 3080,
      dirtySyncCount: 2,
    });
  });

  it('reads a migration that has not started, and a failed one with its reason', () => {
    expect(migrationProgress(migrationInfoSchema.parse({}))).toMatchObject({ status: 'none', memory_total: 0, progressPercent: 0, error: null });
    expect(migrationProgress(migrationInfoSchema.parse({ status: 'failed', 'error-desc': 'Unable to write to socket' }))).toMatchObject({ status: 'failed', error: 'Unable to write to socket' });
  });

  it('asks for the capabilities the policy needs, all named so a retry also turns them off', () => {
    expect(migrationCapabilities({ autoConverge: true })).toEqual({ events: true, 'auto-converge': true, 'postcopy-ram': false, 'pause-before-switchover': false });
    expect(migrationCapabilities({ postcopy: true, pauseBeforeSwitchover: true })).toEqual({ events: true, 'auto-converge': false, 'postcopy-ram': true, 'pause-before-switchover': true });
  });
});
