// What `ferry` prints of resizes and cold migrations: the one-line progress (status, step, bar of the
// disk bytes copied), the details (sizes before and after, downtime, auto-confirm) and the table.
// Pure functions of the API's answers (api/cold-views.ts).
import type { z } from 'zod';
import type { ColdMigrationSchema } from '../api/cold-views';
import { bar, formatBytes, table } from './render';

export type ColdMigration = z.infer<typeof ColdMigrationSchema>;

function route(view: ColdMigration): string {
  if (!view.sourceHost) return '(locating the instance)';
  return `${view.sourceHost} → ${view.destHost ?? '(scheduling)'}`;
}

function sizeText(size: ColdMigration['oldSize']): string {
  if (!size) return '-';
  return `${size.vcpus} vCPU, ${formatBytes(size.ramMiB * 2 ** 20)} memory, ${formatBytes(size.diskBytes)} disk`;
}

/** What the operation is: a resize to a flavor, or a cold migration. */
function kind(view: ColdMigration): string {
  return view.newFlavor ? `resize to ${view.newFlavor.name}` : 'cold migration';
}

/** Nova's server status the view stands for. */
export function serverStatus(view: ColdMigration): string {
  switch (view.status) {
    case 'finished':
    case 'confirming':
      return 'VERIFY_RESIZE';
    case 'reverting':
      return 'REVERT_RESIZE';
    case 'confirmed':
    case 'reverted':
      return 'ACTIVE';
    case 'error':
      return 'ERROR';
    default:
      return 'RESIZE';
  }
}

function fraction(view: ColdMigration): number | null {
  if (!view.diskTotalBytes) return null;
  if (['finished', 'confirming', 'confirmed'].includes(view.status)) return 1;
  return Math.min(1, view.diskProcessedBytes / view.diskTotalBytes);
}

/** One line: route, status and step, bar of the disk bytes copied, downtime once known. */
export function coldProgressLine(view: ColdMigration, barWidth = 24): string {
  const parts = [route(view), `${view.status} (${view.step})`];
  const f = fraction(view);
  if (f !== null) {
    parts.push(`${bar(f, barWidth)} ${String(Math.floor(f * 100)).padStart(3)}%`);
    parts.push(`${formatBytes(view.diskProcessedBytes)} of ${formatBytes(view.diskTotalBytes)}`);
  }
  if (view.downtimeMs !== null) parts.push(`downtime ${(view.downtimeMs / 1000).toFixed(1)}s`);
  return parts.join('  ');
}

/** The last line of a watch: what happened and what to do next. */
export function coldOutcomeLine(view: ColdMigration): string {
  const downtime = view.downtimeMs !== null ? `, downtime ${(view.downtimeMs / 1000).toFixed(1)}s` : '';
  switch (view.status) {
    case 'finished': {
      const auto = view.autoConfirmAt ? `, confirmed by itself at ${view.autoConfirmAt}` : '';
      return `finished: ${view.instanceUuid} runs on ${view.destHost ?? '?'} (VERIFY_RESIZE${downtime}); ferry confirm ${view.instanceUuid} or ferry revert ${view.instanceUuid}${auto}`;
    }
    case 'confirmed':
      return `confirmed: ${view.instanceUuid} stays on ${view.destHost ?? '?'}; the source copy is removed`;
    case 'reverted':
      return `reverted: ${view.instanceUuid} runs on ${view.sourceHost ?? '?'} again with its old size`;
    case 'error':
      return `error${view.error ? `: ${view.error.type}: ${view.error.message}` : ''} (${view.instanceUuid} stays on ${view.sourceHost ?? '?'})`;
    default:
      return `${view.status}: ${coldProgressLine(view)}`;
  }
}

export function coldDetails(view: ColdMigration, uiUrl?: string): string {
  const lines = [
    `Cold migration ${view.uuid}  (${kind(view)})`,
    `Workflow    ${view.workflowId}`,
    `Instance    ${view.instanceUuid}  (server ${serverStatus(view)})`,
    `Status      ${view.status} (step ${view.step})`,
    `Route       ${route(view)}`,
    `Size        ${sizeText(view.oldSize)}${view.newSize ? ` → ${sizeText(view.newSize)}` : ''}`,
    `Disk        ${formatBytes(view.diskProcessedBytes)} of ${formatBytes(view.diskTotalBytes)} copied`,
    `Downtime    ${view.downtimeMs === null ? '-' : `${(view.downtimeMs / 1000).toFixed(2)}s`}`,
  ];
  if (view.destInstanceUuid) lines.push(`Copy        ${view.destInstanceUuid} on ${view.destHost ?? '?'}`);
  if (view.autoConfirmAt) lines.push(`Auto-confirm ${view.autoConfirmAt}`);
  if (view.error) lines.push(`Error       ${view.error.type}: ${view.error.message}`);
  lines.push(`Created     ${view.createdAt}   Updated ${view.updatedAt}`);
  if (uiUrl) lines.push(`Web UI      ${uiUrl}`);
  return lines.join('\n');
}

export function coldTable(views: ColdMigration[]): string {
  if (views.length === 0) return 'no resizes or cold migrations';
  return table(
    ['ID', 'INSTANCE', 'TYPE', 'FLAVOR', 'STATUS', 'STEP', 'ROUTE', 'DOWNTIME', 'CREATED'],
    views.map((v) => [
      v.uuid,
      v.instanceUuid,
      v.migrationType,
      v.newFlavor?.name ?? '-',
      v.status,
      v.step,
      route(v),
      v.downtimeMs === null ? '-' : `${(v.downtimeMs / 1000).toFixed(1)}s`,
      v.createdAt,
    ]),
  );
}
