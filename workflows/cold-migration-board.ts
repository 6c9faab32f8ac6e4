// What a cold migration shows the world, in one place (as status-board.ts for live migrations): the
// status query's view, the memo (the view itself, so a closed run answers without a replay), the
// search attributes `temporal workflow list` filters on, and the run's current details in the web UI.
import { setCurrentDetails, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import { DestHost, InstanceUuid, MigrationStatus, SourceHost } from '../lib/search-attributes';
import type { ColdMigrationStatus, ColdMigrationStep, ColdMigrationView, InstanceSize } from './cold-migration-definitions';

/** What a cold migration's memo holds. */
export interface ColdMigrationMemo {
  status: ColdMigrationStatus;
  instance: string;
  source: string | null;
  destination: string | null;
  error: string | null;
  /** The status query's answer when the memo was written; in a closed run, the final one. */
  view: ColdMigrationView;
  /** When the migration entered each status (ISO 8601). */
  timeline: Partial<Record<ColdMigrationStatus, string>>;
}

export class ColdMigrationBoard {
  private readonly timeline: Partial<Record<ColdMigrationStatus, string>> = {};

  constructor(readonly view: ColdMigrationView) {
    upsertSearchAttributes([
      { key: InstanceUuid, value: view.instanceUuid },
      { key: MigrationStatus, value: view.status },
    ]);
    this.timeline[view.status] = view.createdAt;
    this.memo();
  }

  get status(): ColdMigrationStatus {
    return this.view.status;
  }

  enter(step: ColdMigrationStep, status?: ColdMigrationStatus): void {
    this.view.step = step;
    const changed = status !== undefined && status !== this.view.status;
    if (changed) this.view.status = status;
    this.touch();
    if (changed) {
      this.timeline[status] ??= this.view.updatedAt;
      upsertSearchAttributes([{ key: MigrationStatus, value: status }]);
      this.memo();
    }
  }

  source(name: string, oldSize: InstanceSize, newSize: InstanceSize): void {
    this.view.sourceHost = name;
    this.view.oldSize = oldSize;
    this.view.newSize = newSize;
    upsertSearchAttributes([{ key: SourceHost, value: name }]);
    this.touch();
  }

  destination(name: string): void {
    this.view.destHost = name;
    upsertSearchAttributes([{ key: DestHost, value: name }]);
    this.touch();
    this.memo();
  }

  disk(processed: number, total: number | null): void {
    this.view.diskProcessedBytes = processed;
    if (total !== null) this.view.diskTotalBytes = total;
    this.touch();
  }

  started(destInstanceUuid: string, downtimeMs: number | null): void {
    this.view.destInstanceUuid = destInstanceUuid;
    this.view.downtimeMs = downtimeMs;
    this.touch();
  }

  autoConfirmAt(at: string | null): void {
    this.view.autoConfirmAt = at;
    this.touch();
    this.memo();
  }

  cleanup(cleanup: { workflowId: string; host: string; steps: string[] }): void {
    this.view.cleanups = [...(this.view.cleanups ?? []), cleanup];
    this.touch();
    this.memo();
  }

  failed(error: { type: string; message: string } | null): void {
    this.view.error = error;
    this.touch();
    this.memo();
  }

  private touch(): void {
    this.view.updatedAt = new Date(Date.now()).toISOString();
    setCurrentDetails(describeForUi(this.view));
  }

  private memo(): void {
    const v = this.view;
    const memo: ColdMigrationMemo = {
      status: v.status,
      instance: v.instanceUuid,
      source: v.sourceHost,
      destination: v.destHost,
      error: v.error?.message ?? null,
      view: JSON.parse(JSON.stringify(v)) as ColdMigrationView,
      timeline: { ...this.timeline },
    };
    upsertMemo(memo as unknown as Record<string, unknown>);
  }
}

function describeForUi(v: ColdMigrationView): string {
  const size = (s: InstanceSize | null) => (s ? `${s.vcpus} vCPU, ${Math.round(s.ramMiB)} MiB, ${Math.round(s.diskBytes / 2 ** 20)} MiB disk` : '?');
  const lines = [
    `**${v.status}** · step \`${v.step}\` · ${v.migrationType}`,
    `instance \`${v.instanceUuid}\`: ${v.sourceHost ?? '?'} → ${v.destHost ?? '?'}`,
    `size: ${size(v.oldSize)} → ${size(v.newSize)}`,
  ];
  if (v.diskTotalBytes) lines.push(`${Math.round(v.diskProcessedBytes / 2 ** 20)} of ${Math.round(v.diskTotalBytes / 2 ** 20)} MiB of disk sent`);
  if (v.downtimeMs !== null) lines.push(`downtime ${v.downtimeMs} ms`);
  if (v.autoConfirmAt) lines.push(`confirms by itself at ${v.autoConfirmAt}`);
  if (v.error) lines.push(`error: ${v.error.message}`);
  for (const c of v.cleanups ?? []) lines.push(`cleanup pending on ${c.host}: ${c.steps.join(', ')} (workflow \`${c.workflowId}\`)`);
  return lines.join('\n\n');
}
