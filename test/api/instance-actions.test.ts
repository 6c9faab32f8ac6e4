// Nova's instance action events read from a liveMigration history (api/instance-actions.ts).
import { describe, expect, it } from 'vitest';
import { VM1, VM2 } from './fake-service';
import { READ, nova, serverPerTest } from './helpers';
import { CONDUCTOR_EVENT, migrationUuidOf, novaEventName, readHistory, requestIdOf } from '../../api/instance-actions';

/** Event times are Longs in the proto types; numbers read the same. */
type History = Parameters<typeof readHistory>[0];

const at = (s: number) => ({ eventTime: { seconds: 1_800_000_000 + s, nanos: 0 } });
const iso = (s: number) => new Date((1_800_000_000 + s) * 1000).toISOString();
const scheduled = (id: number, s: number, type: string, queue: string) => ({
  eventId: id,
  ...at(s),
  activityTaskScheduledEventAttributes: { activityType: { name: type }, taskQueue: { name: queue } },
});

describe('instance actions from a history', () => {
  it('names steps as Nova does and skips the conductor’s bookkeeping', () => {
    expect(novaEventName('migrateSend', 'ferry-host-xen-a', 'ferry-host-')).toBe('compute_live_migration');
    expect(novaEventName('checkCanLiveMigrateDestination', 'ferry-host-xen-b', 'ferry-host-')).toBe('compute_check_can_live_migrate_destination');
    expect(novaEventName('postLiveMigrationAtDestination', 'ferry-host-xen-b', 'ferry-host-')).toBe('compute_post_live_migration_at_destination');
    expect(novaEventName('rollbackLiveMigration', 'ferry-host-xen-a', 'ferry-host-')).toBe('compute_rollback_live_migration');
    expect(novaEventName('findDestination', 'ferry-conductor', 'ferry-host-')).toBe('conductor_select_destinations');
    expect(novaEventName('migrationPolicy', 'ferry-conductor', 'ferry-host-')).toBeNull();
    const uuid = '0b6b0a3e-58a4-4a5b-9c52-7a5d3b1e2f10';
    expect(migrationUuidOf(requestIdOf(uuid))).toBe(uuid);
    expect(migrationUuidOf('req-nope')).toBeNull();
  });

  it('gives each step its host, times and result, newest first, with the failure for admins', async () => {
    const history = [
      { eventId: 1, ...at(0), workflowExecutionStartedEventAttributes: {} },
      scheduled(5, 1, 'checkCanLiveMigrateDestination', 'ferry-host-xen-b'),
      { eventId: 7, ...at(2), activityTaskCompletedEventAttributes: { scheduledEventId: 5 } },
      scheduled(8, 3, 'migrateSend', 'ferry-host-xen-a'),
      scheduled(9, 3, 'migrationPolicy', 'ferry-conductor'),
      { eventId: 11, ...at(9), activityTaskFailedEventAttributes: { scheduledEventId: 8, failure: { message: 'VM_BAD_POWER_STATE' } } },
      scheduled(12, 10, 'rollbackLiveMigration', 'ferry-host-xen-a'),
      { eventId: 14, ...at(11), activityTaskCompletedEventAttributes: { scheduledEventId: 12 } },
      { eventId: 16, ...at(12), workflowExecutionCompletedEventAttributes: {} },
    ];
    const reading = await readHistory(history as unknown as History, {
      hostPrefix: 'ferry-host-',
      describeFailure: async (f) => `decoded: ${f.message}`,
      conductorResult: { result: 'Error', traceback: 'MigrationError: VM_BAD_POWER_STATE' },
    });
    expect(reading.events).toEqual([
      { event: 'compute_rollback_live_migration', host: 'xen-a', startTime: iso(10), finishTime: iso(11), result: 'Success', traceback: null },
      { event: 'compute_live_migration', host: 'xen-a', startTime: iso(3), finishTime: iso(9), result: 'Error', traceback: 'decoded: VM_BAD_POWER_STATE' },
      { event: 'compute_check_can_live_migrate_destination', host: 'xen-b', startTime: iso(1), finishTime: iso(2), result: 'Success', traceback: null },
      { event: CONDUCTOR_EVENT, host: null, startTime: iso(0), finishTime: iso(12), result: 'Error', traceback: 'MigrationError: VM_BAD_POWER_STATE' },
    ]);
    expect(reading.startTime).toBe(iso(0));
  });

  it('leaves a running step and a running conductor without a finish or result', async () => {
    const history = [{ eventId: 1, ...at(0), workflowExecutionStartedEventAttributes: {} }, scheduled(5, 1, 'migrateSend', 'ferry-host-xen-a')];
    const reading = await readHistory(history as unknown as History, {
      hostPrefix: 'ferry-host-',
      describeFailure: async () => '',
      conductorResult: null,
    });
    expect(reading.events.map((e) => [e.event, e.finishTime, e.result])).toEqual([
      ['compute_live_migration', null, null],
      [CONDUCTOR_EVENT, null, null],
    ]);
  });
});

describe('GET /v2.1/servers/{id}/os-instance-actions', () => {
  const server = serverPerTest();
  const setUp = async () => {
    const { app, service } = server();
    const first = await service.startMigration({ instanceUuid: VM1, host: 'xen-b', blockMigration: 'auto', force: false, options: {}, requestedBy: { userId: 'u1', projectId: 'p1' } });
    (service.migrations[0] as { status: string }).status = 'failed';
    const second = await service.startMigration({ instanceUuid: VM1, host: null, blockMigration: 'auto', force: false, options: {}, requestedBy: { userId: 'u2', projectId: 'p1' } });
    service.migrations[0]!.created_at = '2026-11-24T07:05:00.000Z';
    service.migrations[0]!.updated_at = '2026-11-24T07:06:00.000Z';
    service.actionEvents.set(first.runId, [
      { event: 'compute_live_migration', host: 'xen-a', startTime: '2026-11-24T07:00:02.000Z', finishTime: '2026-11-24T07:00:09.000Z', result: 'Error', traceback: 'VM_BAD_POWER_STATE' },
    ]);
    return { app, first, second };
  };

  it('lists one live-migration action per migration, newest first, with updated_at from 2.58', async () => {
    const { app, first, second } = await setUp();
    const old = await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/os-instance-actions`, headers: nova('2.1', READ) });
    expect(old.statusCode).toBe(200);
    expect(old.json().instanceActions).toEqual([
      { action: 'live-migration', instance_uuid: VM1, request_id: `req-${second.runId}`, user_id: 'u2', project_id: 'p1', start_time: '2026-11-24T07:05:00.000000', message: null },
      { action: 'live-migration', instance_uuid: VM1, request_id: `req-${first.runId}`, user_id: 'u1', project_id: 'p1', start_time: '2026-11-24T07:00:00.000000', message: 'Error' },
    ]);
    const paged = await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/os-instance-actions?limit=1`, headers: nova('2.58', READ) });
    expect(paged.json().instanceActions.map((a: { request_id: string }) => a.request_id)).toEqual([`req-${second.runId}`]);
    expect(paged.json().instanceActions[0].updated_at).toBe('2026-11-24T07:06:00.000000');
    expect(paged.json().links[0].href).toContain(`marker=req-${second.runId}`);
    const next = await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/os-instance-actions?limit=1&marker=req-${second.runId}`, headers: nova('2.58', READ) });
    expect(next.json().instanceActions.map((a: { request_id: string }) => a.request_id)).toEqual([`req-${first.runId}`]);
    const since = await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/os-instance-actions?changes-since=2026-11-24T07:05:30Z`, headers: nova('2.58', READ) });
    expect(since.json().instanceActions).toHaveLength(1);
    expect((await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/os-instance-actions?changes-before=2026-11-24T07:05:30Z`, headers: nova('2.58', READ) })).statusCode).toBe(400);
    // A marker that names no action: 404 (Nova answers 400; a schema-valid request is never a 400 here).
    expect((await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/os-instance-actions?marker=req-nope`, headers: nova('2.58', READ) })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: `/v2.1/servers/${VM2}/os-instance-actions`, headers: nova('2.58', READ) })).json()).toEqual({ instanceActions: [] });
    expect((await app.inject({ method: 'GET', url: '/v2.1/servers/no-such/os-instance-actions', headers: nova('2.58', READ) })).statusCode).toBe(404);
  });

  it('shows events to admins always and to readers from 2.51, the traceback and host to admins only', async () => {
    const { app, first } = await setUp();
    const url = `/v2.1/servers/${VM1}/os-instance-actions/req-${first.runId}`;
    const readerOld = await app.inject({ method: 'GET', url, headers: nova('2.50', READ) });
    expect(readerOld.statusCode).toBe(200);
    expect(readerOld.json().instanceAction.events).toBeUndefined();
    const reader = (await app.inject({ method: 'GET', url, headers: nova('2.62', READ) })).json().instanceAction;
    expect(reader.events).toEqual([
      { event: 'compute_live_migration', start_time: '2026-11-24T07:00:02.000000', finish_time: '2026-11-24T07:00:09.000000', result: 'Error', hostId: expect.stringMatching(/^[0-9a-f]{56}$/) },
    ]);
    const admin = (await app.inject({ method: 'GET', url, headers: nova('2.62') })).json().instanceAction;
    expect(admin.events[0]).toMatchObject({ traceback: 'VM_BAD_POWER_STATE', host: 'xen-a', hostId: reader.events[0].hostId });
    expect(admin).toMatchObject({ request_id: `req-${first.runId}`, message: 'Error', user_id: 'u1', project_id: 'p1' });
    expect((await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/os-instance-actions/req-unknown`, headers: nova('2.62') })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: `/v2.1/servers/${VM2}/os-instance-actions/req-${first.runId}`, headers: nova('2.62') })).statusCode).toBe(404);
  });
});
