// What a live migration shows the world, in one place: the status query's view, the memo the web
// UI's list shows, the search attributes `temporal workflow list` filters on, and the run's current
// details. The task changes it only through these methods, so the four never disagree.
import { setCurrentDetails, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import { DestHost, InstanceUuid, MigrationStatus, SourceHost } from '../lib/search-attributes';
import type { MigrationCleanupView, MigrationPhase, MigrationStatusView, NovaMigrationStatus, TransferProgress } from './definitions';

/** Phases after which an abort can no longer be honoured, and why. */
const NOT_ABORTABLE: Partial<Record<MigrationPhase, string>> = {
  stop_and_copy: 'the VM is paused for stop-and-copy: past the point of no return',
  post_migration: 'the VM already runs on the destination',
  rolling_back: 'the migration is already rolling back',
  done: 'the migration has ended',
};

/** Progress moves the memo only in steps of this fraction: a long transfer writes a bounded history. */
const MEMO_STEP = 0.1;

/** What a live migration's memo holds (runs started before `view` and `timeline` lack them). */
export interface MigrationMemo {
  status: NovaMigrationStatus;
  instance: string;
  source: string | null;
  destination: string | null;
  /** Percent transferred, as of the memo. */
  progress: number | null;
  error: string | null;
  /** Workflow ids of the migrationCleanup runs it left. */
  cleanups: string[];
  /** The status query's answer when the memo was written; in a closed run, the final one. */
  view?: MigrationStatusView;
  /** When the migration entered each status it went through (ISO 8601): queued to preparing is its wait for a slot. */
  timeline?: Partial<Record<NovaMigrationStatus, string>>;
  /**
   * When it entered each phase, as of this memo (ISO 8601): stop_and_copy to post_migration is the
   * stop-and-copy as the workflow saw it, the closest figure to downtime xapi allows.
   */
  phases?: Partial<Record<MigrationPhase, string>>;
}

export class StatusBoard {
  private memoFraction = -1;
  private readonly timeline: Partial<Record<NovaMigrationStatus, string>> = {};
  private readonly phases: Partial<Record<MigrationPhase, string>> = {};

  constructor(readonly view: MigrationStatusView) {
    upsertSearchAttributes([
      { key: InstanceUuid, value: view.server_uuid },
      { key: MigrationStatus, value: view.status },
    ]);
  }

  get phase(): MigrationPhase {
    return this.view.phase;
  }

  get status(): NovaMigrationStatus {
    return this.view.status;
  }

  /** Why an abort would be refused now, or null when it would be accepted. */
  notAbortableReason(): string | null {
    const reason = NOT_ABORTABLE[this.view.phase] ?? null;
    if (reason && this.view.phase === 'rolling_back' && this.view.waitingFor) return `${reason}; waiting for ${this.view.waitingFor}`;
    return reason;
  }

  enter(phase: MigrationPhase, status?: NovaMigrationStatus): void {
    this.view.phase = phase;
    const changed = status !== undefined && status !== this.view.status;
    if (changed) this.view.status = status;
    // Touched first, so that the memo carries this moment's updated_at and abortability.
    this.touch();
    this.phases[phase] ??= this.view.updated_at;
    if (changed) {
      upsertSearchAttributes([{ key: MigrationStatus, value: status }]);
      this.memo();
    }
  }

  source(name: string, memoryBytes: number): void {
    this.view.source_compute = name;
    this.view.source_node = name;
    this.view.memory_total_bytes = memoryBytes;
    upsertSearchAttributes([{ key: SourceHost, value: name }]);
    this.touch();
  }

  destination(name: string, block: boolean): void {
    this.view.dest_compute = name;
    this.view.dest_host = name;
    this.view.dest_node = name;
    this.view.block_migration = block;
    upsertSearchAttributes([{ key: DestHost, value: name }]);
    this.touch();
  }

  progress(p: TransferProgress): void {
    const v = this.view;
    v.progress = p;
    v.memory_total_bytes = p.memoryTotalBytes;
    v.memory_processed_bytes = p.memoryProcessedBytes;
    v.memory_remaining_bytes = p.memoryRemainingBytes;
    v.disk_total_bytes = p.diskTotalBytes;
    v.disk_processed_bytes = p.diskProcessedBytes;
    v.disk_remaining_bytes = p.diskRemainingBytes;
    if (p.transferPhase === 'stop_and_copy' && v.phase === 'precopy') this.enter('stop_and_copy');
    else this.touch();
    if (p.fraction >= this.memoFraction + MEMO_STEP || p.fraction === 1) this.memo();
  }

  failed(error: { type: string; message: string } | null): void {
    this.view.error = error;
    this.touch();
  }

  /** What the migration waits for (null when it no longer waits). */
  waiting(what: string | null): void {
    if (this.view.waitingFor === what) return;
    this.view.waitingFor = what;
    this.touch();
  }

  cleanup(cleanup: MigrationCleanupView): void {
    this.view.cleanups = [...this.view.cleanups, cleanup];
    this.touch();
    this.memo();
  }

  private touch(): void {
    const v = this.view;
    v.updated_at = new Date(Date.now()).toISOString();
    const reason = this.notAbortableReason();
    v.abortable = reason === null;
    v.notAbortableReason = reason;
    setCurrentDetails(describeForUi(v));
  }

  /**
   * The memo is what the web UI and the API show without asking the workflow: a few plain keys for
   * the web UI, the whole status view as it is now (`view`), and when each status began
   * (`timeline`). Written at each change of status, each step of progress and each cleanup, so the
   * memo of a closed run is its final view: the API serves closed runs from it and never replays.
   */
  private memo(): void {
    const v = this.view;
    this.memoFraction = v.progress?.fraction ?? this.memoFraction;
    this.timeline[v.status] ??= v.updated_at;
    const memo: MigrationMemo = {
      status: v.status,
      instance: v.server_uuid,
      source: v.source_compute,
      destination: v.dest_compute,
      progress: v.progress ? Math.floor(v.progress.fraction * 100) : null,
      error: v.error?.message ?? null,
      cleanups: v.cleanups.map((c) => c.workflowId),
      view: JSON.parse(JSON.stringify(v)) as MigrationStatusView,
      timeline: { ...this.timeline },
      phases: { ...this.phases },
    };
    upsertMemo(memo as unknown as Record<string, unknown>);
  }
}

function describeForUi(v: MigrationStatusView): string {
  const lines = [`**${v.status}** · phase \`${v.phase}\``, `instance \`${v.server_uuid}\`: ${v.source_compute ?? '?'} → ${v.dest_compute ?? '?'}`];
  if (v.progress) lines.push(`${Math.floor(v.progress.fraction * 100)}% transferred${v.progress.etaSeconds !== null ? `, about ${Math.ceil(v.progress.etaSeconds)} s left` : ''}`);
  if (v.waitingFor) lines.push(`waiting for ${v.waitingFor}`);
  if (v.policy) lines.push(`policy ${v.policy.name ? `\`${v.policy.name}\`` : '(none)'}: ${v.policy.reason}`);
  if (v.attempts.length) lines.push(`hosts tried: ${v.attempts.map((a) => `${a.host} (${a.reason})`).join('; ')}`);
  if (v.error) lines.push(`error: ${v.error.message}`);
  for (const c of v.cleanups) lines.push(`cleanup pending on ${c.host}: ${c.steps.join(', ')} (workflow \`${c.workflowId}\`)`);
  return lines.join('\n\n');
}
