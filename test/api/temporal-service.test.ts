// What the API answers from visibility alone, when a workflow cannot answer its status query.
import { TypedSearchAttributes } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { fallbackView } from '../../api/temporal-service';
import { DestHost, InstanceUuid, MigrationStatus, SourceHost } from '../../lib/search-attributes';
import { novaMigrationId } from '../../workflows/definitions';

const VM = '11111111-1111-4111-8111-111111111111';
const RUN = '01a20c73-e1c7-7d6e-9875-d6b184b50cea';

function info(status: string, attrs: { status?: string; source?: string; dest?: string }) {
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
    searchAttributes: {},
    typedSearchAttributes: new TypedSearchAttributes(pairs),
  } as unknown as Parameters<typeof fallbackView>[0];
}

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
});
