// The command line of `ferry`, declared with commander: global options, one subcommand each with
// its own --help, and the tree that `ferry completion bash` walks. parseCommandLine is pure (no
// process.exit, no output of its own), so tests check every command line without a server.
import { Argument, Command as Program, CommanderError, InvalidArgumentError, Option } from 'commander';
import { HOST_PATTERN, MigrationStatusEnum, UUID_PATTERN } from '../api/schemas';
import type { NovaMigrationStatus } from '../workflows/definitions';

export class UsageError extends Error {
  override name = 'UsageError';
  constructor(
    message: string,
    /** The usage of the command line's (sub)command, when commander printed it after the error. */
    readonly usage = '',
  ) {
    super(message);
  }
}

export interface GlobalOptions {
  api?: string;
  config?: string;
  json: boolean;
}

export const SHELLS = ['bash'] as const;
export type Shell = (typeof SHELLS)[number];

/** `ferry maintenance <action> <host>`: a host's maintenance (watch follows it until the drain ends or the host left). */
export const MAINTENANCE_COMMANDS = ['show', 'watch', 'pause', 'resume', 'cancel', 'leave'] as const;
export type MaintenanceCommand = (typeof MAINTENANCE_COMMANDS)[number];

export type Command =
  | { name: 'migrate'; instance: string; host?: string; block: boolean | 'auto'; force: boolean; watch: boolean }
  | { name: 'list'; status?: NovaMigrationStatus; host?: string; instance?: string; open?: boolean; limit?: number }
  | { name: 'show'; id: string }
  | { name: 'watch'; id: string }
  | { name: 'abort'; id: string; reason?: string }
  | { name: 'force-complete'; id: string }
  | { name: 'hosts' }
  | { name: 'instances'; host?: string }
  | { name: 'drain'; host: string; watch: boolean; parallelism?: number }
  | { name: 'maintenance'; action: MaintenanceCommand; host: string; abortRunning: boolean; bringBack: boolean }
  | { name: 'resize'; instance: string; flavor: string; watch: boolean }
  | { name: 'cold-migrate'; instance: string; host?: string; watch: boolean }
  | { name: 'confirm' | 'revert'; id: string; watch: boolean }
  | { name: 'cold-show' | 'cold-watch'; id: string }
  | { name: 'cold-list'; instance?: string; open?: boolean; limit?: number }
  | { name: 'completion'; shell: Shell }
  /** --help, `help [command]` or no command at all: commander's help text, to print as is. */
  | { name: 'help'; text: string };

export interface Invocation {
  global: GlobalOptions;
  command: Command;
}

const EPILOG = `
The token comes from $FERRY_TOKEN (read role for reading, operator role for changes).

Exit codes: 0 ok, 1 migration failed/cancelled, 2 usage error, 3 not found,
            4 conflict/refused, 5 API unreachable or 5xx, 6 not authorized.`;

const ID = ['<id>', 'migration id (workflow run id), or an instance uuid for its latest migration'] as const;
const COLD_ID = ['<id>', 'cold migration id (workflow run id), or an instance uuid for its latest resize or cold migration'] as const;

function uuid(what: string) {
  return (value: string): string => {
    if (!UUID_PATTERN.test(value)) throw new InvalidArgumentError(`"${value}" is not ${what} (a UUID).`);
    return value.toLowerCase();
  };
}

function hostName(value: string): string {
  if (!HOST_PATTERN.test(value)) throw new InvalidArgumentError(`"${value}" is not a host name.`);
  return value;
}

function limit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 500) throw new InvalidArgumentError('must be an integer from 1 to 500.');
  return n;
}

/**
 * ferry's commands. `onCommand` receives what was asked (commander calls the action of the one
 * subcommand named); commander itself only parses, validates and prints help.
 */
export function buildProgram(onCommand: (command: Command, global: GlobalOptions) => void = () => undefined): Program {
  const program = new Program('ferry')
    .description("Live-migrate, resize and cold-migrate Xen VMs through ferry's API.")
    .option('--api <url>', 'ferry API (default: $FERRY_API, else http://<api.listen> of temporal.yaml)')
    .option('--config <path>', "temporal.yaml (default: $FERRY_CONFIG, else the project's)")
    .option('--json', 'machine-readable output (watch: one JSON event per line)')
    .helpCommand('help [command]', 'help for a command')
    .addHelpText('after', EPILOG)
    .showSuggestionAfterError(true);

  // Global options may come before or after the command (commander's default).
  const global = (cmd: Program): GlobalOptions => {
    const o = cmd.optsWithGlobals<{ api?: string; config?: string; json?: boolean }>();
    return { api: o.api, config: o.config, json: o.json ?? false };
  };
  const idCommand = (name: 'show' | 'watch' | 'force-complete', description: string) =>
    program
      .command(name)
      .description(description)
      .argument(ID[0], ID[1], uuid('a migration id or instance uuid'))
      .action((id: string, _opts, cmd: Program) => onCommand({ name, id }, global(cmd)));

  program
    .command('migrate')
    .description('start a live migration')
    .argument('<instance-uuid>', 'the instance to move', uuid('an instance uuid'))
    .option('--host <name>', 'destination host (default: the scheduler chooses)', hostName)
    .addOption(new Option('--block <mode>', 'block migration (copy the local disks)').choices(['true', 'false', 'auto']).default('auto'))
    .option('--force', 'skip the destination checks (needs --host)')
    .option('-w, --watch', 'follow it with a progress bar until it ends')
    .action((instance: string, o: { host?: string; block: 'true' | 'false' | 'auto'; force?: boolean; watch?: boolean }, cmd: Program) => {
      if (o.force && !o.host) cmd.error('error: --force needs --host');
      const block = o.block === 'auto' ? 'auto' : o.block === 'true';
      onCommand({ name: 'migrate', instance, host: o.host, block, force: o.force ?? false, watch: o.watch ?? false }, global(cmd));
    });

  program
    .command('list')
    .description('migrations, newest first')
    .addOption(new Option('--status <status>', 'only this status').choices(MigrationStatusEnum.options))
    .option('--host <name>', 'leaving or arriving at this host', hostName)
    .option('--instance <uuid>', 'of this instance', uuid('an instance uuid'))
    .addOption(new Option('--open', 'only running migrations').conflicts('closed'))
    .addOption(new Option('--closed', 'only finished migrations'))
    .option('--limit <n>', 'at most this many (1 to 500; the API defaults to 50)', limit)
    .action((o: { status?: NovaMigrationStatus; host?: string; instance?: string; open?: boolean; closed?: boolean; limit?: number }, cmd: Program) =>
      onCommand(
        { name: 'list', status: o.status, host: o.host, instance: o.instance, open: o.open ? true : o.closed ? false : undefined, limit: o.limit },
        global(cmd),
      ),
    );

  idCommand('show', 'one migration with its progress');
  idCommand('watch', 'live progress until the migration ends (exit 0 completed, 1 otherwise)');

  program
    .command('abort')
    .description('abort a migration: cancel the transfer and roll back')
    .argument(ID[0], ID[1], uuid('a migration id or instance uuid'))
    .option('--reason <text>', 'why (recorded with the abort)')
    .action((id: string, o: { reason?: string }, cmd: Program) => onCommand({ name: 'abort', id, reason: o.reason }, global(cmd)));

  idCommand('force-complete', 'pause the guest on the source so that pre-copy converges');

  program
    .command('hosts')
    .description('hosts: up or down, memory, running migrations')
    .action((_o, cmd: Program) => onCommand({ name: 'hosts' }, global(cmd)));

  program
    .command('instances')
    .description('instances and their running migration')
    .option('--host <name>', 'only on this host', hostName)
    .action((o: { host?: string }, cmd: Program) => onCommand({ name: 'instances', host: o.host }, global(cmd)));

  program
    .command('drain')
    .description('put a host in maintenance: disable it and live-migrate every running VM off it')
    .argument('<host>', 'the host to empty', hostName)
    .option('--parallelism <n>', 'migrations at once (default: the outbound limit per host)', (v: string) => {
      const n = Number(v);
      if (!/^\d+$/.test(v) || n < 1 || n > 64) throw new InvalidArgumentError('must be an integer from 1 to 64.');
      return n;
    })
    .option('-w, --watch', "follow the drain (the whole operation and each VM) until it ends")
    .action((host: string, o: { parallelism?: number; watch?: boolean }, cmd: Program) =>
      onCommand({ name: 'drain', host, watch: o.watch ?? false, parallelism: o.parallelism }, global(cmd)),
    );

  program
    .command('maintenance')
    .description("a host's maintenance: show, watch, pause, resume, cancel (--abort-running), leave (--bring-back)")
    .addArgument(new Argument('<action>', 'what to do').choices(MAINTENANCE_COMMANDS))
    .argument('<host>', 'the host', hostName)
    .option('--abort-running', 'cancel: abort the running migrations (default: let them finish)')
    .option('--bring-back', 'leave: migrate the VMs the drain moved back to the host')
    .action((action: MaintenanceCommand, host: string, o: { abortRunning?: boolean; bringBack?: boolean }, cmd: Program) =>
      onCommand({ name: 'maintenance', action, host, abortRunning: o.abortRunning ?? false, bringBack: o.bringBack ?? false }, global(cmd)),
    );

  program
    .command('resize')
    .description('resize an instance to a flavor (a cold migration to the new size): it ends in VERIFY_RESIZE, then confirm or revert')
    .argument('<instance-uuid>', 'the instance', uuid('an instance uuid'))
    .argument('<flavor>', "the flavor's id or name (temporal.yaml flavors)")
    .option('-w, --watch', 'follow it until it is finished (VERIFY_RESIZE) or failed')
    .action((instance: string, flavor: string, o: { watch?: boolean }, cmd: Program) =>
      onCommand({ name: 'resize', instance, flavor, watch: o.watch ?? false }, global(cmd)),
    );

  program
    .command('cold-migrate')
    .description('move an instance with a short shutdown (Nova migrate): it ends in VERIFY_RESIZE, then confirm or revert')
    .argument('<instance-uuid>', 'the instance', uuid('an instance uuid'))
    .option('--host <name>', 'destination host (default: the scheduler chooses)', hostName)
    .option('-w, --watch', 'follow it until it is finished (VERIFY_RESIZE) or failed')
    .action((instance: string, o: { host?: string; watch?: boolean }, cmd: Program) =>
      onCommand({ name: 'cold-migrate', instance, host: o.host, watch: o.watch ?? false }, global(cmd)),
    );

  for (const [name, description] of [
    ['confirm', 'confirm a finished resize or cold migration: remove the source copy'],
    ['revert', 'revert a finished resize or cold migration: remove the copy, start the source with its old size'],
  ] as const) {
    program
      .command(name)
      .description(description)
      .argument(COLD_ID[0], COLD_ID[1], uuid('a cold migration id or instance uuid'))
      .option('-w, --watch', `follow it until it is ${name === 'confirm' ? 'confirmed' : 'reverted'}`)
      .action((id: string, o: { watch?: boolean }, cmd: Program) => onCommand({ name, id, watch: o.watch ?? false }, global(cmd)));
  }

  for (const [name, description] of [
    ['cold-show', 'one resize or cold migration: sizes, disk copied, downtime'],
    ['cold-watch', 'follow a resize or cold migration until it waits for confirm/revert or ends'],
  ] as const) {
    program
      .command(name)
      .description(description)
      .argument(COLD_ID[0], COLD_ID[1], uuid('a cold migration id or instance uuid'))
      .action((id: string, _o, cmd: Program) => onCommand({ name, id }, global(cmd)));
  }

  program
    .command('cold-list')
    .description('resizes and cold migrations, newest first')
    .option('--instance <uuid>', 'of this instance', uuid('an instance uuid'))
    .addOption(new Option('--open', 'only those in progress or waiting for confirm/revert').conflicts('closed'))
    .addOption(new Option('--closed', 'only confirmed, reverted or failed ones'))
    .option('--limit <n>', 'at most this many (1 to 500; the API defaults to 50)', limit)
    .action((o: { instance?: string; open?: boolean; closed?: boolean; limit?: number }, cmd: Program) =>
      onCommand({ name: 'cold-list', instance: o.instance, open: o.open ? true : o.closed ? false : undefined, limit: o.limit }, global(cmd)),
    );

  program
    .command('completion')
    .description('print the shell completion script (bash: source <(ferry completion bash))')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .action((shell: Shell, _o, cmd: Program) => onCommand({ name: 'completion', shell }, global(cmd)));

  return program;
}

/**
 * Parses argv (without node and the script) into one command. Help is returned as text; every
 * refusal is a UsageError with commander's message.
 */
export function parseCommandLine(argv: string[]): Invocation {
  let result: Invocation | undefined;
  let out = '';
  let err = '';
  let error = '';
  const program = buildProgram((command, global) => {
    result = { global, command };
  });
  for (const cmd of [program, ...program.commands]) {
    cmd.exitOverride();
    cmd.showHelpAfterError(true);
    cmd.configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s), outputError: (s) => (error += s) });
  }
  const globalOnly = (): GlobalOptions => {
    const o = program.opts<{ api?: string; config?: string; json?: boolean }>();
    return { api: o.api, config: o.config, json: o.json ?? false };
  };
  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    // --help and `help [command]` (written to out), and no command at all (commander writes the
    // program's help to err and exits 1): help, exit 0, as before.
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') {
      return { global: globalOnly(), command: { name: 'help', text: out || err } };
    }
    throw new UsageError((error || e.message).replace(/^error: /, '').trim(), err.trim());
  }
  if (!result) return { global: globalOnly(), command: { name: 'help', text: program.helpInformation() } };
  return result;
}
