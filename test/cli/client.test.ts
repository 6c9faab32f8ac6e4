import { describe, expect, it } from 'vitest';
import { UnexpectedAnswerError, parseEventStream } from '../../cli/client';
import { migrationView } from '../api/fake-service';

const RUN = '0aaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const VM = '11111111-1111-4111-8111-111111111111';
const view = migrationView(RUN, { instanceUuid: VM, host: 'xen-b', blockMigration: false, force: false, options: {} }, 'xen-a');

describe('the progress stream, parsed by eventsource-parser and checked with the route schemas', () => {
  it('reads migration, error and end events, comments and a last event without its blank line', () => {
    const text = [
      ': keep-alive',
      '',
      `event: migration\ndata: ${JSON.stringify(view)}`,
      '',
      'event: error\ndata: {"code":"unavailable","message":"Temporal did not answer"}',
      '',
      `event: end\ndata: ${JSON.stringify({ ...view, status: 'completed', phase: 'done' })}`,
    ].join('\n');
    const events = parseEventStream(text);
    expect(events.map((e) => e.event)).toEqual(['migration', 'error', 'end']);
    expect(events[0]).toEqual({ event: 'migration', data: view });
    expect(events[1]).toEqual({ event: 'error', data: { code: 'unavailable', message: 'Temporal did not answer' } });
    expect(events[2]?.data).toMatchObject({ status: 'completed' });
  });

  it('an event ferry does not send, data that is not JSON or not a Migration: an error naming what is wrong', () => {
    expect(() => parseEventStream('event: party\ndata: {}\n\n')).toThrow(UnexpectedAnswerError);
    expect(() => parseEventStream('data: {}\n\n')).toThrow(/not a MigrationEvent/);
    expect(() => parseEventStream('event: end\ndata: {nope\n\n')).toThrow(/the data of a "end" event is not JSON/);
    expect(() => parseEventStream(`event: migration\ndata: ${JSON.stringify({ ...view, status: 'done' })}\n\n`)).toThrow(/a "migration" event does not match its schema: status: /);
  });
});
