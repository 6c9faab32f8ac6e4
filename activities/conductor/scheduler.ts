// The scheduler's filter and weigher for live migration (Nova's scheduler, reduced to what Xen needs):
// filter out hosts that cannot take the instance, each with its reason, then weigh by free memory.
import type { HostAttempt, HostView, InstanceView } from '../../workflows/definitions';

export interface ScheduleRequest {
  hosts: HostView[];
  instance: InstanceView;
  sourceHost: string;
  excluded: string[];
  blockMigration: boolean;
  /** Memory already promised to other migrations, per host. */
  reservedBytes: Record<string, number>;
}

export interface ScheduleResult {
  /** Best first. */
  candidates: string[];
  rejected: HostAttempt[];
}

/** Nova's checkCompatibleWithSourceHypervisor: same hypervisor, destination version not older. */
export function compatibilityProblem(source: HostView | undefined, dest: HostView): string | null {
  if (!source?.productVersion || !dest.productVersion) return null;
  if (compareVersions(dest.productVersion, source.productVersion) < 0) {
    return `hypervisor version ${dest.productVersion} is older than the source's ${source.productVersion}`;
  }
  return null;
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

function freeAfterReservations(host: HostView, reservedBytes: Record<string, number>): number {
  return host.memoryFreeBytes - (reservedBytes[host.name] ?? 0);
}

export function schedule(request: ScheduleRequest): ScheduleResult {
  const source = request.hosts.find((h) => h.name === request.sourceHost);
  const rejected: HostAttempt[] = [];
  const fits: HostView[] = [];
  for (const host of request.hosts) {
    if (host.name === request.sourceHost || request.excluded.includes(host.name)) continue;
    const reason = !host.up
      ? `host is down: ${host.downReason ?? 'unknown'}`
      : !host.enabled
        ? 'host is disabled'
        : !request.blockMigration && host.pool !== source?.pool
          ? `host is in pool ${host.pool}, the instance's shared storage is in ${source?.pool ?? 'another pool'}`
          : freeAfterReservations(host, request.reservedBytes) < request.instance.memoryBytes
            ? `not enough free memory: ${freeAfterReservations(host, request.reservedBytes)} bytes free, ${request.instance.memoryBytes} needed`
            : compatibilityProblem(source, host);
    if (reason) rejected.push({ host: host.name, reason });
    else fits.push(host);
  }
  fits.sort((a, b) => freeAfterReservations(b, request.reservedBytes) - freeAfterReservations(a, request.reservedBytes) || a.name.localeCompare(b.name));
  return { candidates: fits.map((h) => h.name), rejected };
}
