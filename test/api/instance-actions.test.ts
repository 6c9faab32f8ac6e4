// Nova's instance action events read from a liveMigration history (api/instance-actions.ts).
import { describe, expect, it } from 'vitest';
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
