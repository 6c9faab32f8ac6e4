// A migration's view from what Temporal keeps (memo, search attributes, run status, heartbeat),
// without asking the workflow.
import { TypedSearchAttributes, defaultPayloadConverter } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { fallbackView, secondsBetween, summaryOf, viewFromInfo, withLiveProgress } from '../../api/migration-views';
import { MigrationSchema } from '../../api/schemas';
import { DestHost, InstanceUuid, MigrationStatus, SourceHost } from '../../lib/search-attributes';
import { newMigrationView, novaMigrationId, type MigrationStatusView, type TransferProgress } from '../../workflows/definitions';
import type { MigrationMemo } from '../../workflows/status-board';

const VM = '11111111-1111-4111-8111-111111111111';
const RUN = '01a20c73-e1c7-7d6e-9875-d6b184b50cea';

type Info = Parameters<typeof fallbackView>[0];

function info(status: string, attrs: { status?: string; source?: string; dest?: string }, memo?: Partial<MigrationMemo>): Info {
  const pairs = [{ key: InstanceUuid, value: VM }];
  if (attrs.status) pairs.push({ key: MigrationStatus, value: attrs.status });
  if (attrs.source) pairs.push({ key: SourceHost, value: attrs.source });
  if (attrs.dest) pairs.push({ key: DestHost, value: attrs.dest });
  return {
    type: 'liveMigration',
    workflowId: `live-migration-${VM}`,
    runId: RUN,
    taskQueue: 'ferry-conductor',
    status: { code: 0, name: status },
    historyLength: 10,
    startTime: new Date('2026-11-24T07:00:00Z'),
    closeTime: status === 'RUNNING' ? undefined : new Date('2026-11-24T07:01:00Z'),
    memo,
    searchAttributes: {},
    typedSearchAttributes: new TypedSearchAttributes(pairs),
  } as unknown as Info;
}

function recorded(patch: Partial<MigrationStatusView>): MigrationStatusView {
  return {
    ...newMigrationView({ runId: RUN, workflowId: `live-migration-${VM}`, instanceUuid: VM, createdAt: '2026-11-24T07:00:00.000Z', sourceHost: 'xen-a' }),
    memory_total_bytes: 512 * 2 ** 20,
    ...patch,
  };
}

function memo(view: MigrationStatusView): Partial<MigrationMemo> {
  return { status: view.status, instance: VM, source: view.source_compute, destination: view.dest_compute, progress: null, error: null, cleanups: [], view };
}

describe('viewFromInfo', () => {
  it('a closed run whose memo holds its final view: that view, final', () => {
    const final = recorded({ status: 'completed', phase: 'done', dest_compute: 'xen-b', updated_at: '2026-11-24T07:00:59.000Z', abortable: false, notAbortableReason: 'the migration has ended' });
    const built = viewFromInfo(info('COMPLETED', { status: 'completed', source: 'xen-a', dest: 'xen-b' }, memo(final)));
    expect(built).toEqual({ view: final, final: true });
  });

  it('a memo view from before migration policies: policy null, so it still matches the Migration schema', () => {
    const { policy: _policy, ...older } = recorded({ status: 'completed', phase: 'done', dest_compute: 'xen-b' });
    const built = viewFromInfo(info('COMPLETED', { status: 'completed', source: 'xen-a', dest: 'xen-b' }, memo(older as MigrationStatusView)));
    expect(built.view.policy).toBeNull();
    expect(MigrationSchema.safeParse(built.view).success).toBe(true);
  });

  it('a run terminated before it said how it ended: its last view, ended in error, final', () => {
    const last = recorded({ status: 'running', phase: 'precopy' });
    const built = viewFromInfo(info('TERMINATED', { status: 'running' }, memo(last)));
    expect(built.final).toBe(true);
    expect(built.view).toMatchObject({ status: 'error', phase: 'done', abortable: false, error: { type: 'WorkflowTERMINATED' }, memory_total_bytes: 512 * 2 ** 20 });
  });

  it('a closed run from before the memo carried its view: what visibility knows, not final (the API asks the run once)', () => {
    const built = viewFromInfo(info('COMPLETED', { status: 'completed', source: 'xen-a', dest: 'xen-b' }, { status: 'completed', source: 'xen-a', destination: 'xen-b', error: null }));
    expect(built.final).toBe(false);
    expect(built.view).toMatchObject({ status: 'completed', phase: 'done', dest_compute: 'xen-b' });
  });

  it('a running migration: its memo view, with status and hosts from the search attributes', () => {
    const last = recorded({ status: 'preparing', phase: 'scheduling', progress: null });
    const built = viewFromInfo(info('RUNNING', { status: 'preparing', source: 'xen-a', dest: 'xen-c' }, memo(last)));
    expect(built.final).toBe(false);
    expect(built.view).toMatchObject({ status: 'preparing', phase: 'scheduling', source_compute: 'xen-a', dest_compute: 'xen-c', dest_host: 'xen-c', abortable: true });
  });

  it('a run that recorded its final status but has not closed yet is no longer in progress', () => {
    const last = recorded({ status: 'completed', phase: 'done' });
    expect(summaryOf(info('RUNNING', { status: 'completed' }, memo(last)))).toMatchObject({ status: 'completed', running: false });
    expect(summaryOf(info('RUNNING', { status: 'running' }, memo(last)))).toMatchObject({ running: true });
  });

  it('a migration too young to have a memo: accepted, validating, abortable', () => {
    const built = viewFromInfo(info('RUNNING', { status: 'accepted' }));
    expect(built).toMatchObject({ final: false, view: { status: 'accepted', phase: 'validating', abortable: true, server_uuid: VM, uuid: RUN } });
  });

  it('ignores a memo view of another run (a reset copies the memo)', () => {
    const other = { ...recorded({ status: 'completed', phase: 'done' }), uuid: 'another-run' };
    expect(viewFromInfo(info('COMPLETED', { status: 'completed' }, memo(other))).final).toBe(false);
  });
});

describe('withLiveProgress', () => {
  const beat = (fraction: number): TransferProgress => ({
    fraction,
    memoryTotalBytes: 100,
    memoryProcessedBytes: fraction * 100,
    memoryRemainingBytes: (1 - fraction) * 100,
    diskTotalBytes: 0,
    diskProcessedBytes: 0,
    diskRemainingBytes: 0,
    fractionPerSecond: 0.1,
    etaSeconds: 5,
    transferPhase: 'precopy',
  });
  const described = (progress: TransferProgress) =>
    ({
      raw: {
        pendingActivities: [{ activityType: { name: 'migrateSend' }, heartbeatDetails: { payloads: [defaultPayloadConverter.toPayload({ progress })] } }],
      },
    }) as unknown as Parameters<typeof withLiveProgress>[0];

  it('takes the transfer heartbeat when it is ahead of the view', () => {
    const view = recorded({ status: 'running', phase: 'precopy', progress: beat(0.1) });
    expect(withLiveProgress(described(beat(0.42)), view)).toMatchObject({ progress: { fraction: 0.42 }, memory_processed_bytes: 42 });
    expect(withLiveProgress(described(beat(0.05)), view).progress?.fraction).toBe(0.1);
    expect(withLiveProgress(described(beat(0.42)), { ...view, phase: 'post_migration' }).progress?.fraction).toBe(0.1);
  });
});

describe('fallbackView', () => {
  it('tells what visibility knows: ids, hosts, the recorded status', () => {
    const view = fallbackView(info('COMPLETED', { status: 'completed', source: 'xen-a', dest: 'xen-b' }));
    expect(view).toMatchObject({
      id: novaMigrationId(RUN),
      uuid: RUN,
      server_uuid: VM,
      status: 'completed',
      phase: 'done',
      source_compute: 'xen-a',
      dest_compute: 'xen-b',
      created_at: '2026-11-24T07:00:00.000Z',
      updated_at: '2026-11-24T07:01:00.000Z',
      abortable: false,
      error: null,
    });
  });

  it('a run that ended without recording a final status is failed, cancelled or in error by how it ended', () => {
    expect(fallbackView(info('TERMINATED', { status: 'running' })).status).toBe('error');
    expect(fallbackView(info('FAILED', { status: 'preparing' })).status).toBe('failed');
    expect(fallbackView(info('CANCELLED', {})).status).toBe('cancelled');
    expect(fallbackView(info('TIMED_OUT', { status: 'running' })).error?.type).toBe('WorkflowTIMED_OUT');
    const running = fallbackView(info('RUNNING', { status: 'running', source: 'xen-a' }));
    expect(running).toMatchObject({ status: 'running', phase: 'validating', notAbortableReason: 'the workflow does not answer its status query' });
  });

  it("takes an older run's memo error", () => {
    expect(fallbackView(info('FAILED', { status: 'failed' }, { status: 'failed', error: 'no valid host' })).error).toEqual({ type: 'Error', message: 'no valid host' });
  });
});

describe('secondsBetween', () => {
  it('is the time between two timeline entries, null when one is missing', () => {
    expect(secondsBetween('2026-11-24T07:00:00.000Z', '2026-11-24T07:00:02.500Z')).toBe(2.5);
    expect(secondsBetween(undefined, '2026-11-24T07:00:02.500Z')).toBeNull();
  });
});
