import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError, buildProgram, parseCommandLine } from '../../cli/args';
import { bashCompletion } from '../../cli/completion';

const UUID = '11111111-1111-4111-8111-111111111111';

describe('ferry command line', () => {
  it('parses every command with its options, global options before or after the command', () => {
    expect(parseCommandLine(['--api', 'http://h:1', '--json', 'migrate', UUID.toUpperCase(), '--host', 'xen-b', '--block', 'false', '--force', '--watch'])).toEqual({
      global: { api: 'http://h:1', config: undefined, json: true },
      command: { name: 'migrate', instance: UUID, host: 'xen-b', block: false, force: true, watch: true },
    });
    expect(parseCommandLine(['migrate', UUID]).command).toEqual({ name: 'migrate', instance: UUID, host: undefined, block: 'auto', force: false, watch: false });
    expect(parseCommandLine(['migrate', UUID, '--block', 'true', '-w']).command).toMatchObject({ block: true, watch: true });
    expect(parseCommandLine(['list', '--status', 'running', '--host', 'xen-a', '--instance', UUID, '--open', '--limit', '10']).command).toEqual({
      name: 'list',
      status: 'running',
      host: 'xen-a',
      instance: UUID,
      open: true,
      limit: 10,
    });
    expect(parseCommandLine(['list', '--closed']).command).toMatchObject({ open: false });
    expect(parseCommandLine(['list']).command).toEqual({ name: 'list', status: undefined, host: undefined, instance: undefined, open: undefined, limit: undefined });
    expect(parseCommandLine(['show', UUID]).command).toEqual({ name: 'show', id: UUID });
    expect(parseCommandLine(['watch', UUID]).command).toEqual({ name: 'watch', id: UUID });
    expect(parseCommandLine(['abort', UUID, '--reason', 'window closed']).command).toEqual({ name: 'abort', id: UUID, reason: 'window closed' });
    expect(parseCommandLine(['force-complete', UUID]).command).toEqual({ name: 'force-complete', id: UUID });
    expect(parseCommandLine(['hosts', '--json'])).toEqual({ global: { api: undefined, config: undefined, json: true }, command: { name: 'hosts' } });
    expect(parseCommandLine(['instances', '--host', 'xen-c', '--config', '/etc/ferry.yaml']).global.config).toBe('/etc/ferry.yaml');
    expect(parseCommandLine(['instances', '--host', 'xen-c']).command).toEqual({ name: 'instances', host: 'xen-c' });
    expect(parseCommandLine(['completion', 'bash']).command).toEqual({ name: 'completion', shell: 'bash' });
  });

  it('help: the program with no command or --help, each command with --help or `help <command>`', () => {
    for (const argv of [[], ['--help'], ['-h'], ['help'], ['--json']]) {
      const { command } = parseCommandLine(argv);
      expect(command.name, argv.join(' ')).toBe('help');
      const text = (command as { text: string }).text;
      expect(text).toMatch(/^Usage: ferry \[options\] \[command\]/);
      for (const name of ['migrate', 'list', 'show', 'watch', 'abort', 'force-complete', 'hosts', 'instances', 'completion']) expect(text).toContain(`\n  ${name} `);
      expect(text).toContain('Exit codes: 0 ok');
    }
    const migrate = parseCommandLine(['migrate', '--help']).command as { name: string; text: string };
    expect(migrate.text).toMatch(/^Usage: ferry migrate \[options\] <instance-uuid>/);
    expect(migrate.text).toMatch(/--block <mode>.*\(choices: "true",\s+"false", "auto", default: "auto"\)/s);
    expect((parseCommandLine(['help', 'list']).command as { text: string }).text).toMatch(/^Usage: ferry list \[options\][^]*--status <status>/);
    expect((parseCommandLine(['hosts', '--help']).command as { text: string }).text).toMatch(/^Usage: ferry hosts \[options\]/);
  });

  it('refuses what it cannot mean, with a reason and the usage of the command', () => {
    const refusals: [string[], RegExp, RegExp][] = [
      [['frobnicate'], /unknown command 'frobnicate'/, /^Usage: ferry \[options\] \[command\]/],
      [['migrat', UUID], /Did you mean migrate\?/, /^Usage: ferry/],
      [['migrate'], /missing required argument 'instance-uuid'/, /^Usage: ferry migrate/],
      [['migrate', 'web-1'], /"web-1" is not an instance uuid/, /^Usage: ferry migrate/],
      [['migrate', UUID, '--block', 'maybe'], /Allowed choices are true, false, auto/, /^Usage: ferry migrate/],
      [['migrate', UUID, '--force'], /--force needs --host/, /^Usage: ferry migrate/],
      [['migrate', UUID, '--host', 'Xen A'], /not a host name/, /^Usage: ferry migrate/],
      [['migrate', UUID, 'extra'], /too many arguments/, /^Usage: ferry migrate/],
      [['list', '--status', 'done'], /Allowed choices are accepted, queued/, /^Usage: ferry list/],
      [['list', '--open', '--closed'], /'--open' cannot be used with option '--closed'/, /^Usage: ferry list/],
      [['list', '--limit', '0'], /integer from 1 to 500/, /^Usage: ferry list/],
      [['list', '--limit', '5x'], /integer from 1 to 500/, /^Usage: ferry list/],
      [['list', '--instance', 'x'], /not an instance uuid/, /^Usage: ferry list/],
      [['show'], /missing required argument 'id'/, /^Usage: ferry show/],
      [['show', 'abc'], /not a migration id or instance uuid/, /^Usage: ferry show/],
      [['hosts', '--reason', 'x'], /unknown option '--reason'/, /^Usage: ferry hosts/],
      [['show', UUID, '--watch'], /unknown option '--watch'/, /^Usage: ferry show/],
      [['--bogus', 'hosts'], /unknown option '--bogus'/, /^Usage: ferry/],
      [['completion', 'fish'], /Allowed choices are bash/, /^Usage: ferry completion/],
    ];
    for (const [argv, message, usage] of refusals) {
      let error: unknown;
      try {
        parseCommandLine(argv);
      } catch (err) {
        error = err;
      }
      expect(error, argv.join(' ')).toBeInstanceOf(UsageError);
      expect((error as UsageError).message, argv.join(' ')).toMatch(message);
      expect((error as UsageError).message, argv.join(' ')).not.toMatch(/^error:/);
      expect((error as UsageError).usage, argv.join(' ')).toMatch(usage);
    }
  });
});

describe('bash completion', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-completion-'));
  const script = join(dir, 'ferry.bash');
  writeFileSync(script, bashCompletion(buildProgram()));

  /** What bash's completion offers for the words typed so far (the last one is being completed). */
  function complete(...words: string[]): string[] {
    const out = execFileSync(
      'bash',
      ['-c', 'source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ferry_completion; printf "%s\\n" "${COMPREPLY[@]}"', script, 'ferry', ...words],
      { encoding: 'utf8' },
    );
    return out.split('\n').filter((l) => l !== '');
  }

  it('is valid bash and registers itself for ferry', () => {
    execFileSync('bash', ['-n', script]);
    expect(execFileSync('bash', ['-c', 'source "$0"; complete -p ferry', script], { encoding: 'utf8' }).trim()).toBe('complete -F _ferry_completion ferry');
  });

  it('completes every command of the tree, each command\'s options and their choices', () => {
    const program = buildProgram();
    const names = program.commands.map((c) => c.name());
    expect(complete('')).toEqual([...names, 'help']);
    expect(complete('for')).toEqual(['force-complete']);
    expect(complete('--')).toEqual(['--api', '--config', '--json', '--help']);
    // Every option of every command, from commander's tree: nothing to keep in step by hand.
    for (const cmd of program.commands) {
      const offered = complete(cmd.name(), '-');
      for (const option of cmd.options) expect(offered, `${cmd.name()} ${option.long}`).toContain(option.long);
      expect(offered).toContain('--json');
    }
    expect(complete('migrate', UUID, '--block', '')).toEqual(['true', 'false', 'auto']);
    expect(complete('--api', 'http://x', 'list', '--status', 'c')).toEqual(['completed', 'cancelled']);
    expect(complete('migrate', UUID, '--host', '')).toEqual([]);
    expect(complete('completion', '')).toEqual(['bash']);
    expect(complete('help', 'ho')).toEqual(['hosts']);
    expect(complete('--config', join(dir, 'ferry.b'))).toEqual([script]);
  });
});
