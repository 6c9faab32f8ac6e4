import { describe, expect, it } from 'vitest';
import { compareVersions, schedule } from '../../activities/conductor/scheduler';
import type { HostView, InstanceView } from '../../workflows/definitions';

const GiB = 2 ** 30;
const host = (name: string, pool: string, freeGiB: number, extra: Partial<HostView> = {}): HostView => ({
  name, pool, up: true, downReason: null, enabled: true, productVersion: '8.2.1', platformVersion: '3.4.0',
  memoryTotalBytes: 64 * GiB, memoryFreeBytes: freeGiB * GiB, instances: [], ...extra,
});
const instance: InstanceView = {
  uuid: 'u', name: 'vm', powerState: 'Running', host: 'a', memoryBytes: 4 * GiB, vcpus: 2, vcpuCap: null, diskBytes: 0, storage: 'shared',
};

describe('scheduler', () => {
  it('filters with a reason per host and weighs by free memory', () => {
    const result = schedule({
      hosts: [
        host('a', 'p1', 10),
        host('b', 'p1', 8),
        host('c', 'p1', 20),
        host('d', 'p1', 2),
        host('e', 'p2', 30),
        host('f', 'p1', 30, { up: false, downReason: 'no agent' }),
        host('g', 'p1', 30, { productVersion: '8.0.0' }),
      ],
      instance, sourceHost: 'a', excluded: ['x'], blockMigration: false, reservedBytes: { c: 17 * GiB },
    });
    expect(result.candidates).toEqual(['b']);
    const reasons = Object.fromEntries(result.rejected.map((r) => [r.host, r.reason]));
    expect(reasons.c).toMatch(/not enough free memory/);
    expect(reasons.d).toMatch(/not enough free memory/);
    expect(reasons.e).toMatch(/pool p2/);
    expect(reasons.f).toMatch(/down: no agent/);
    expect(reasons.g).toMatch(/older than the source/);
  });

  it('compares versions numerically', () => {
    expect(compareVersions('8.10.0', '8.2.1')).toBe(1);
    expect(compareVersions('8.2', '8.2.0')).toBe(0);
    expect(compareVersions('7.9', '8.0')).toBe(-1);
  });
});
