// What `ferry` prints: tables, a migration's details, and the one-line progress bar with phase,
// bytes, rate, ETA and the expected downtime. Pure functions of the API's answers.
import type { z } from 'zod';
import type { MaintenanceSchema } from '../api/routes/v1-maintenance';
import type { HostSchema, InstanceSchema, MigrationSchema } from '../api/schemas';

/** A migration as the API shows it (api/schemas.ts). */
export type Migration = z.infer<typeof MigrationSchema>;

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value.toFixed(0) : value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '-';
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export interface Totals {
  processed: number;
  total: number;
  remaining: number;
  fraction: number;
}

export function totals(view: Migration): Totals | null {
  const p = view.progress;
  if (p) {
    const total = p.memoryTotalBytes + p.diskTotalBytes;
    const processed = p.memoryProcessedBytes + p.diskProcessedBytes;
    const remaining = p.memoryRemainingBytes + p.diskRemainingBytes;
    const fraction = p.transferPhase === 'done' ? 1 : p.fraction > 0 ? p.fraction : total > 0 ? processed / total : 0;
    return { processed, total, remaining, fraction: Math.min(1, Math.max(0, fraction)) };
  }
  if (view.memory_total_bytes !== null) {
    const total = (view.memory_total_bytes ?? 0) + (view.disk_total_bytes ?? 0);
    const processed = (view.memory_processed_bytes ?? 0) + (view.disk_processed_bytes ?? 0);
    const remaining = (view.memory_remaining_bytes ?? 0) + (view.disk_remaining_bytes ?? 0);
    if (total === 0) return null;
    return { processed, total, remaining, fraction: view.status === 'completed' ? 1 : Math.min(1, processed / total) };
  }
  return null;
}

export function bar(fraction: number, width: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

function route(view: Migration): string {
  if (!view.source_compute) return '(locating the instance)';
  return `${view.source_compute} → ${view.dest_compute ?? '(scheduling)'}`;
}

function phaseText(view: Migration): string {
  return view.phase.replace(/_/g, '-');
}

/** One line: route, phase, bar, percent, bytes (estimated from xapi's task progress), ETA. */
export function progressLine(view: Migration, barWidth = 24): string {
  const parts = [route(view), phaseText(view)];
  const t = totals(view);
  const p = view.progress;
  if (t) {
    parts.push(`${bar(t.fraction, barWidth)} ${String(Math.floor(t.fraction * 100)).padStart(3)}%`);
    parts.push(`~${formatBytes(t.processed)} of ${formatBytes(t.total)}`);
  }
  if (p && view.status !== 'completed') {
    parts.push(`ETA ${formatDuration(p.etaSeconds)}`);
    if (p.vcpuCap !== undefined) parts.push(`vCPU cap ${p.vcpuCap}%`);
    if (p.guestPaused) parts.push('guest paused');
  }
  if (view.forceCompleteRequested && view.status === 'running') parts.push('force-complete requested');
  return parts.join('  ');
}

/** The last line of watch: how it ended. */
export function outcomeLine(view: Migration): string {
  const p = view.progress;
  if (view.status === 'completed') {
    const moved = p ? `, ${formatBytes(p.memoryTotalBytes + p.diskTotalBytes)} moved` : '';
    return `completed: ${view.server_uuid} now runs on ${view.dest_compute ?? '?'}${moved}`;
  }
  const why = view.error ? `: ${view.error.type}: ${view.error.message}` : '';
  return `${view.status}${why} (${view.server_uuid} stays on ${view.source_compute ?? '?'})`;
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function migrationTable(views: Migration[]): string {
  if (views.length === 0) return 'no migrations';
  return table(
    ['ID', 'INSTANCE', 'STATUS', 'PHASE', 'ROUTE', 'PROGRESS', 'CREATED'],
    views.map((v) => {
      const t = totals(v);
      return [v.uuid, v.server_uuid, v.status, v.phase, route(v), t ? `${Math.floor(t.fraction * 100)}%` : '-', v.created_at];
    }),
  );
}

export function migrationDetails(view: Migration, uiUrl?: string): string {
  const t = totals(view);
  const lines = [
    `Migration   ${view.uuid}  (Nova id ${view.id})`,
    `Workflow    ${view.workflowId}`,
    `Instance    ${view.server_uuid}`,
    `Status      ${view.status} (phase ${view.phase})`,
    `Route       ${route(view)}${view.block_migration === null ? '' : view.block_migration ? ', with storage' : ', shared storage'}`,
    `Memory      ${formatBytes(view.memory_processed_bytes)} of ${formatBytes(view.memory_total_bytes)} (${formatBytes(view.memory_remaining_bytes)} remaining)`,
    `Disk        ${formatBytes(view.disk_processed_bytes)} of ${formatBytes(view.disk_total_bytes)} (${formatBytes(view.disk_remaining_bytes)} remaining)`,
  ];
  if (view.progress) lines.push(`Progress    ${progressLine(view)}`);
  else if (t) lines.push(`Progress    ${Math.floor(t.fraction * 100)}%`);
  if (view.policy) lines.push(`Policy      ${view.policy.name ?? '(none)'}: ${view.policy.reason}`);
  if (view.attempts.length > 0) lines.push(`Tried       ${view.attempts.map((a) => `${a.host}: ${a.reason}`).join('; ')}`);
  if (view.error) lines.push(`Error       ${view.error.type}: ${view.error.message}`);
  if (view.waitingFor) lines.push(`Waiting for ${view.waitingFor}`);
  for (const c of view.cleanups) lines.push(`Cleanup     ${c.steps.join(', ')} on ${c.host}, pending in ${c.workflowId}`);
  lines.push(`Abortable   ${view.abortable ? 'yes' : `no${view.notAbortableReason ? ` (${view.notAbortableReason})` : ''}`}`);
  lines.push(`Created     ${view.created_at}   Updated ${view.updated_at}`);
  if (uiUrl) lines.push(`Web UI      ${uiUrl}`);
  return lines.join('\n');
}

/** What the host table shows of a host of GET /v1/hosts. */
export type HostRow = Pick<
  z.infer<typeof HostSchema>,
  'name' | 'pool' | 'up' | 'downReason' | 'memoryTotalBytes' | 'memoryFreeBytes' | 'instanceCount' | 'migrations'
>;

export function hostTable(hosts: HostRow[]): string {
  return table(
    ['HOST', 'POOL', 'STATE', 'FREE MEMORY', 'VMS', 'OUT', 'IN', 'NOTE'],
    hosts.map((h) => [
      h.name,
      h.pool,
      h.up ? 'up' : 'DOWN',
      h.up ? `${formatBytes(h.memoryFreeBytes)} / ${formatBytes(h.memoryTotalBytes)}` : '-',
      String(h.instanceCount),
      String(h.migrations.outbound.length),
      String(h.migrations.inbound.length),
      h.downReason ?? '',
    ]),
  );
}

/** What the instance table shows of an instance of GET /v1/instances. */
export type InstanceRow = Pick<z.infer<typeof InstanceSchema>, 'uuid' | 'name' | 'powerState' | 'host' | 'memoryBytes'> & {
  migration: Pick<NonNullable<z.infer<typeof InstanceSchema>['migration']>, 'id' | 'status'> | null;
};

export function instanceTable(instances: InstanceRow[]): string {
  if (instances.length === 0) return 'no instances';
  return table(
    ['UUID', 'NAME', 'STATE', 'HOST', 'MEMORY', 'MIGRATION'],
    instances.map((i) => [i.uuid, i.name, i.powerState, i.host, formatBytes(i.memoryBytes), i.migration ? `${i.migration.status ?? '?'} ${i.migration.id}` : '']),
  );
}

/** The Temporal web UI page of a workflow run. */
export function webUiUrl(uiBase: string, namespace: string, workflowId: string, runId: string): string {
  return `${uiBase.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}/history`;
}

/** A host's maintenance as the API shows it (api/routes/v1-maintenance.ts). */
export type Maintenance = z.infer<typeof MaintenanceSchema>;

/** The whole operation on one line: status, VMs moved of all, running, left, failed, bytes and time left. */
export function maintenanceLine(m: Maintenance, width = 20): string {
  const c = m.counts;
  const settled = c.moved + c.failed + c.gone + c.returned;
  const fraction = c.total > 0 ? settled / c.total : m.status === 'drained' || m.status === 'left' ? 1 : 0;
  return [
    `${m.host} ${m.status.padEnd(10)}`,
    bar(fraction, width),
    `${c.moved + c.returned}/${c.total} moved`,
    `${c.migrating} running`,
    `${c.waiting} left`,
    `${c.failed} failed`,
    `${formatBytes(m.bytesMoved)} sent`,
    `ETA ${m.etaSeconds === 0 ? '0s' : formatDuration(m.etaSeconds)}`,
  ].join('  ');
}

/** The operation's line, then one line per VM: state, size, where it went, and why it did not. */
export function maintenanceDetails(m: Maintenance): string {
  const rows = m.vms.map((vm) =>
    [
      `  ${vm.state.padEnd(12)}`,
      vm.name.padEnd(24),
      formatBytes(vm.memoryBytes).padStart(9),
      vm.destHost ? `-> ${vm.destHost}` : '',
      vm.attempts > 1 ? `(${vm.attempts} attempts)` : '',
      vm.reason && (vm.state === 'failed' || vm.state === 'waiting' || vm.state === 'returnFailed') ? `${vm.reason.type}: ${vm.reason.message}` : '',
    ]
      .filter(Boolean)
      .join(' '),
  );
  return [maintenanceLine(m), ...(m.reason ? [`  ${m.reason}`] : []), ...rows].join('\n');
}
