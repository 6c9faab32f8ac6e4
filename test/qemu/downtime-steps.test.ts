// Nova's downtime steps, ported: the figures of Nova's own docstring and unit tests.
import { describe, expect, it } from 'vitest';
import { downtimeFor, downtimeSteps, migrationDataGiB } from '../../qemu/downtime-steps';

describe("Nova's downtime steps", () => {
  it('gives the progression of downtime_steps docstring (10 steps, 30 s per GiB, 3 GiB, 400 ms)', () => {
    const steps = downtimeSteps(3, { downtimeMs: 400, steps: 10, delaySecondsPerGiB: 30 });
    expect(steps.map((s) => [s.afterSeconds, s.downtimeMs])).toEqual([
      [0, 40], [90, 76], [180, 112], [270, 148], [360, 184], [450, 220], [540, 256], [630, 292], [720, 328], [810, 364], [900, 400],
    ]);
  });

  it('counts RAM and each disk as at least 2 GiB', () => {
    expect(migrationDataGiB(512 * 1024 ** 2)).toBe(2);
    expect(migrationDataGiB(4 * 1024 ** 3, [1024 ** 3, 3 * 1024 ** 3])).toBe(4 + 2 + 3);
  });

  it('moves to a step once its time has passed, never back', () => {
    const steps = downtimeSteps(2, { downtimeMs: 500, steps: 10, delaySecondsPerGiB: 3 });
    expect(steps[1]).toEqual({ afterSeconds: 6, downtimeMs: 95 });
    expect(downtimeFor(steps, 0, null)).toBeNull();
    expect(downtimeFor(steps, 1, null)).toBe(50);
    expect(downtimeFor(steps, 6, 50)).toBe(50);
    expect(downtimeFor(steps, 6.5, 50)).toBe(95);
    expect(downtimeFor(steps, 1000, 95)).toBe(500);
  });
});
