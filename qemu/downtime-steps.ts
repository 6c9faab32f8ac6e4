// Nova's libvirt driver raises the downtime QEMU may take in steps (nova/virt/libvirt/migration.py
// downtime_steps and update_downtime, nova/virt/libvirt/driver.py _live_migration_data_gb): it
// starts small, so a guest that can converge with a short pause gets one, and grows over time
// so that a busy guest still converges. Pure functions, so the driver's policy is tested without
// a hypervisor.

/** Nova's [libvirt] options, with its defaults. */
export interface DowntimeStepsConfig {
  /** live_migration_downtime: the largest downtime, ms (default 500, minimum 100). */
  downtimeMs: number;
  /** live_migration_downtime_steps (default 10, minimum 3). */
  steps: number;
  /** live_migration_downtime_delay: seconds between steps per GiB to move (default 75, minimum 3). */
  delaySecondsPerGiB: number;
}

export const NOVA_DOWNTIME_DEFAULTS: DowntimeStepsConfig = { downtimeMs: 500, steps: 10, delaySecondsPerGiB: 75 };

export interface DowntimeStep {
  /** Seconds since the migration started from which this step applies. */
  afterSeconds: number;
  downtimeMs: number;
}

const GiB = 1024 ** 3;

/** _live_migration_data_gb: the guest's RAM and each disk moved, each counted as at least 2 GiB. */
export function migrationDataGiB(memoryBytes: number, diskBytes: readonly number[] = []): number {
  const atLeastTwo = (bytes: number) => Math.max(2, bytes / GiB);
  return atLeastTwo(memoryBytes) + diskBytes.reduce((sum, bytes) => sum + atLeastTwo(bytes), 0);
}

/**
 * downtime_steps: steps+1 pairs, the first at 0 s with downtime/steps, the last at steps*delay with
 * the full downtime, in a straight line (Nova truncates both figures to integers; so does this).
 */
export function downtimeSteps(dataGiB: number, config: DowntimeStepsConfig = NOVA_DOWNTIME_DEFAULTS): DowntimeStep[] {
  const delay = Math.trunc(config.delaySecondsPerGiB * dataGiB);
  const base = config.downtimeMs / config.steps;
  const offset = (config.downtimeMs - base) / config.steps;
  return Array.from({ length: config.steps + 1 }, (_, i) => ({ afterSeconds: Math.trunc(delay * i), downtimeMs: Math.trunc(base + offset * i) }));
}

/**
 * update_downtime: the downtime of the last step whose time has passed (strictly), or `current`
 * when no step has (at 0 s exactly, none has: Nova sets the first step before it starts).
 */
export function downtimeFor(steps: readonly DowntimeStep[], elapsedSeconds: number, current: number | null): number | null {
  let step: DowntimeStep | null = null;
  for (const candidate of steps) if (elapsedSeconds > candidate.afterSeconds) step = candidate;
  return step === null ? current : step.downtimeMs;
}
