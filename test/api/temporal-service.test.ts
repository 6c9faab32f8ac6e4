// TemporalFerryService's migration reads on a fake Temporal client: what it asks Temporal for, and
// what it answers without asking.
import type { Client } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TemporalFerryService } from '../../api/temporal-service';
import { InstanceUuid, MigrationStatus } from '../../lib/search-attributes';
import { newMigrationView, type MigrationStatusView } from '../../workflows/definitions';
import { testConfig } from './helpers';

const VM = '11111111-1111-4111-8111-111111111111';

function row(runId: string, status: 'RUNNING' | 'COMPLETED', view: MigrationStatusView) {
  return {
    type: 'liveMigration',
    workflowId: `live-migration-${VM}`,
    runId,
    taskQueue: 'ferry-conductor',
    status: { code: status === 'RUNNING' ? 1 : 2, name: status },
    historyLength: 150,
    startTime: new Date('2026-11-24T07:00:00Z'),
    closeTime: status === 'RUNNING' ? undefined : new Date('2026-11-24T07:00:02Z'),
    memo: { status: view.status, instance: VM, source: 'xen-a', destination: 'xen-b', progress: null, error: null, cleanups: [], view },
    searchAttributes: {},
    typedSearchAttributes: new TypedSearchAttributes([
      { key: InstanceUuid, value: VM },
      { key: MigrationStatus, value: view.status },
    ]),
  };
}

function view(runId: string, patch: Partial<MigrationStatusView>): MigrationStatusView {
  return { ...newMigrationView({ runId, workflowId: `live-migration-${VM}`, instanceUuid: VM, createdAt: '2026-11-24T07:00:00.000Z', sourceHost: 'xen-a', destHost: 'xen-b' }), ...patch };
}

const DONE = '01a20c73-e1c7-7d6e-9875-d6b184b50ce1';
const RUNNING = '01a20c73-e1c7-7d6e-9875-d6b184b50ce2';

function fakeTemporal() {
  const calls = { list: 0, describe: 0, query: 0, start: 0 };
  let release: (() => void) | null = null;
  const state = { slowList: false };
  const rows = [
    row(RUNNING, 'RUNNING', view(RUNNING, { status: 'running', phase: 'precopy' })),
    row(DONE, 'COMPLETED', view(DONE, { status: 'completed', phase: 'done', abortable: false, notAbortableReason: 'the migration has ended' })),
  ];
  const client = {
    connection: undefined,
    options: { namespace: 'default' },
    withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn(),
    workflow: {
      list: () =>
        (async function* () {
          calls.list += 1;
          if (state.slowList) await new Promise<void>((r) => (release = r));
          yield* rows;
        })(),
      getHandle: () => ({
        describe: async () => {
          calls.describe += 1;
          throw new Error('describe was not expected');
        },
        query: async () => {
          calls.query += 1;
          throw new Error('query was not expected');
        },
      }),
      start: async () => {
        calls.start += 1;
        return { firstExecutionRunId: '01a20c73-e1c7-7d6e-9875-d6b184b50ce3' };
      },
    },
  } as unknown as Client;
  const service = new TemporalFerryService(client, testConfig, pino({ level: 'silent' }));
  return { service, calls, state, finishList: () => release?.() };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('TemporalFerryService reads', () => {
  it('lists from the memo in one visibility query, and shows a listed closed migration without asking Temporal', async () => {
    const { service, calls } = fakeTemporal();
    const listed = await service.listMigrations({ limit: 100 });
    expect(listed.map((m) => [m.uuid, m.status, m.phase])).toEqual([
      [RUNNING, 'running', 'precopy'],
      [DONE, 'completed', 'done'],
    ]);
    expect(await service.getMigration(DONE)).toMatchObject({ uuid: DONE, status: 'completed', phase: 'done' });
    expect(calls).toEqual({ list: 1, describe: 0, query: 0, start: 0 });
  });

  it('shares a list for a second, serves it at once while reading it again, and waits once it is old', async () => {
    const { service, calls, state, finishList } = fakeTemporal();
    const now = vi.spyOn(Date, 'now');
    now.mockReturnValue(1_000_000);
    await service.listMigrations({ limit: 100 });
    await service.listMigrations({ limit: 100 });
    expect(calls.list).toBe(1);
    // A second and a half later: the rows at once, and one read again behind them.
    now.mockReturnValue(1_001_500);
    state.slowList = true;
    expect(await service.listMigrations({ limit: 100 })).toHaveLength(2);
    expect(await service.listMigrations({ limit: 100 })).toHaveLength(2);
    expect(calls.list).toBe(2);
    finishList();
    await new Promise((r) => setTimeout(r, 10));
    // Five seconds after the last read: the caller waits for fresh rows.
    now.mockReturnValue(1_006_600);
    state.slowList = false;
    await service.listMigrations({ limit: 100 });
    expect(calls.list).toBe(3);
    // Another question is another list.
    await service.listMigrations({ limit: 100, open: true });
    expect(calls.list).toBe(4);
  });

  it('a migration started here makes the next list ask visibility again', async () => {
    const { service, calls } = fakeTemporal();
    await service.listMigrations({ limit: 100 });
    await service.startMigration({ instanceUuid: VM, host: null, blockMigration: 'auto', force: false, options: {} });
    await service.listMigrations({ limit: 100 });
    expect(calls).toMatchObject({ list: 2, start: 1 });
  });

  it('an open list leaves out a migration whose status is final (a run may still be closing after it)', async () => {
    const { service } = fakeTemporal();
    const open = await service.listMigrations({ limit: 100, open: true });
    expect(open.map((m) => m.uuid)).toEqual([RUNNING]);
  });
});
