import { describe, expect, it } from 'vitest';
import { UsageError, parseCommandLine } from '../../cli/args';

const UUID = '11111111-1111-4111-8111-111111111111';

describe('ferry command line', () => {
  it('parses every command with its options', () => {
    expect(parseCommandLine(['--api', 'http://h:1', '--json', 'migrate', UUID.toUpperCase(), '--host', 'xen-b', '--block', 'false', '--force', '--watch'])).toEqual({
      global: { api: 'http://h:1', config: undefined, json: true },
      command: { name: 'migrate', instance: UUID, host: 'xen-b', block: false, force: true, watch: true },
    });
    expect(parseCommandLine(['migrate', UUID]).command).toEqual({ name: 'migrate', instance: UUID, host: undefined, block: 'auto', force: false, watch: false });
    expect(parseCommandLine(['list', '--status', 'running', '--host', 'xen-a', '--instance', UUID, '--open', '--limit', '10']).command).toEqual({
      name: 'list',
      status: 'running',
      host: 'xen-a',
      instance: UUID,
      open: true,
      limit: 10,
    });
    expect(parseCommandLine(['list', '--closed']).command).toMatchObject({ open: false });
    expect(parseCommandLine(['show', UUID]).command).toEqual({ name: 'show', id: UUID });
    expect(parseCommandLine(['watch', UUID]).command).toEqual({ name: 'watch', id: UUID });
    expect(parseCommandLine(['abort', UUID, '--reason', 'window closed']).command).toEqual({ name: 'abort', id: UUID, reason: 'window closed' });
    expect(parseCommandLine(['force-complete', UUID]).command).toEqual({ name: 'force-complete', id: UUID });
    expect(parseCommandLine(['hosts', '--json']).command).toEqual({ name: 'hosts' });
    expect(parseCommandLine(['instances', '--host', 'xen-c']).command).toEqual({ name: 'instances', host: 'xen-c' });
    expect(parseCommandLine([]).command).toEqual({ name: 'help' });
    expect(parseCommandLine(['hosts', '--help']).command).toEqual({ name: 'help' });
  });

  it('refuses what it cannot mean, with a reason', () => {
    const refusals: [string[], RegExp][] = [
      [['frobnicate'], /unknown command/],
      [['migrate'], /needs an instance uuid/],
      [['migrate', 'web-1'], /not an instance uuid/],
      [['migrate', UUID, '--block', 'maybe'], /--block must be/],
      [['migrate', UUID, '--force'], /--force needs --host/],
      [['migrate', UUID, '--host', 'Xen A'], /not a host name/],
      [['migrate', UUID, 'extra'], /unexpected arguments/],
      [['list', '--status', 'done'], /--status must be one of/],
      [['list', '--open', '--closed'], /exclude each other/],
      [['list', '--limit', '0'], /--limit/],
      [['list', '--instance', 'x'], /not a uuid/],
      [['show'], /needs a migration id/],
      [['show', 'abc'], /not a migration id/],
      [['hosts', '--reason', 'x'], /does not take --reason/],
      [['show', UUID, '--watch'], /does not take --watch/],
      [['--bogus', 'hosts'], /Unknown option/],
    ];
    for (const [argv, message] of refusals) {
      expect(() => parseCommandLine(argv), argv.join(' ')).toThrow(UsageError);
      expect(() => parseCommandLine(argv), argv.join(' ')).toThrow(message);
    }
  });
});
