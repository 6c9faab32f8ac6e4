// The Temporal side of cold migrations without a server: the visibility query a listing sends, and
// the view a visibility row gives when the workflow does not answer (its memo's view, else its
// search attributes), as pure functions.
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { coldMigrationQuery, isColdMigrationView, newColdMigrationView, viewFromRow } from '../../api/cold-migration-service';
import { DestHost, InstanceUuid, MigrationStatus, SourceHost } from '../../lib/search-attributes';
import { VM1 } from './fake-service';

const RUN = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

function row(status: string, attributes: Record<string, string>, memo?: Record<string, unknown>): Omit<WorkflowExecutionInfo, 'raw'> {
  const keys = { InstanceUuid, MigrationStatus, SourceHost, DestHost } as const;
  return {
    type: 'coldMigration',
    workflowId: `cold-migration-${VM1}`,
    runId: RUN,
    taskQueue: 'ferry-conductor',
    status: { code: 0, name: status },
    historyLength: 10,
    startTime: new Date('2026-11-24T07:00:00.000Z'),
    executionTime: undefined,
    closeTime: status === 'RUNNING' ? undefined : new Date('2026-11-24T07:10:00.000Z'),
    memo,
    searchAttributes: {},
    typedSearchAttributes: new TypedSearchAttributes(Object.entries(attributes).map(([k, value]) => ({ key: keys[k as keyof typeof keys], value }))),
    parentExecution: undefined,
    rootExecution: undefined,
    historySize: 100,
  } as unknown as Omit<WorkflowExecutionInfo, 'raw'>;
}

describe('cold migrations in visibility', () => {
  it('queries by type, workflow id, status and open/closed, every value quoted', () => {
    expect(coldMigrationQuery({})).toBe("WorkflowType = 'coldMigration'");
    expect(coldMigrationQuery({ instanceUuid: VM1.toUpperCase(), status: 'confirmed', open: false })).toBe(
      `WorkflowType = 'coldMigration' AND WorkflowId = 'cold-migration-${VM1}' AND MigrationStatus = 'confirmed' AND ExecutionStatus != 'Running'`,
    );
    expect(coldMigrationQuery({ instanceUuid: "x' OR 1=1", open: true })).toBe("WorkflowType = 'coldMigration' AND WorkflowId = 'cold-migration-x\\' or 1=1' AND ExecutionStatus = 'Running'");
  });

  it("a row's view: the memo's view when it has one, else the search attributes; a run closed without a final status is an error", () => {
    const recorded = { ...newColdMigrationView({ runId: RUN, input: { instanceUuid: VM1 }, sourceHost: 'xen-a', at: '2026-11-24T07:00:00.000Z' }), status: 'finished' as const, step: 'verifyResize' as const };
    expect(isColdMigrationView(recorded)).toBe(true);
    expect(isColdMigrationView({ status: 'finished' })).toBe(false);
    expect(viewFromRow(row('RUNNING', { MigrationStatus: 'finished' }, { status: 'finished', view: recorded }))).toEqual(recorded);

    const bare = viewFromRow(row('RUNNING', { InstanceUuid: VM1, MigrationStatus: 'migrating', SourceHost: 'xen-a', DestHost: 'xen-c' }));
    expect(bare).toMatchObject({ uuid: RUN, instanceUuid: VM1, status: 'migrating', sourceHost: 'xen-a', destHost: 'xen-c', error: null });

    const terminated = viewFromRow(row('TERMINATED', { InstanceUuid: VM1, MigrationStatus: 'migrating' }, { status: 'migrating', view: { ...recorded, status: 'migrating' } }));
    expect(terminated).toMatchObject({ status: 'error', step: 'done', error: { type: 'WorkflowTERMINATED' }, updatedAt: '2026-11-24T07:10:00.000Z' });
    const confirmed = { ...recorded, status: 'confirmed' as const, step: 'done' as const };
    expect(viewFromRow(row('COMPLETED', { MigrationStatus: 'confirmed' }, { status: 'confirmed', view: confirmed }))).toEqual(confirmed);
  });
});
