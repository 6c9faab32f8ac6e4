// Command-line parsing for `ferry`: global options, one command, its arguments. Pure, so tests can
// check every command line without a server.
import { parseArgs } from 'node:util';
import { MIGRATION_STATUSES, type NovaMigrationStatus } from '../workflows/definitions';

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface GlobalOptions {
  api?: string;
  config?: string;
  json: boolean;
}

export type Command =
  | { name: 'migrate'; instance: string; host?: string; block: boolean | 'auto'; force: boolean; watch: boolean }
  | { name: 'list'; status?: NovaMigrationStatus; host?: string; instance?: string; open?: boolean; limit?: number }
  | { name: 'show'; id: string }
  | { name: 'watch'; id: string }
  | { name: 'abort'; id: string; reason?: string }
  | { name: 'force-complete'; id: string }
  | { name: 'hosts' }
  | { name: 'instances'; host?: string }
  | { name: 'help' };

export interface Invocation {
  global: GlobalOptions;
  command: Command;
}

export const USAGE = `Usage: ferry [--api URL] [--config temporal.yaml] [--json] <command> [options]

Commands:
  migrate <instance-uuid> [--host NAME] [--block true|false|auto] [--force] [--watch]
                              start a live migration (--watch: follow it with a progress bar)
  list [--status S] [--host NAME] [--instance UUID] [--open|--closed] [--limit N]
                              migrations, newest first
  show <migration-id|instance-uuid>     one migration with its progress
  watch <migration-id|instance-uuid>    live progress bar until the migration ends
  abort <migration-id|instance-uuid> [--reason TEXT]
  force-complete <migration-id|instance-uuid>
  hosts                       hosts: up or down, memory, running migrations
  instances [--host NAME]     instances and their running migration

Options:
  --api URL      ferry API (default: http://<api.listen> from temporal.yaml)
  --config PATH  temporal.yaml (default: $FERRY_CONFIG or the project's)
  --json         machine-readable output (watch: one JSON event per line)
The token comes from $FERRY_TOKEN (read role for reading, operator role for changes).

Exit codes: 0 ok, 1 migration failed/cancelled, 2 usage error, 3 not found,
            4 conflict/refused, 5 API unreachable, 6 not authorized.`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HOST = /^[a-z0-9][a-z0-9-]{0,62}$/;

function needId(positionals: string[], command: string): string {
  const [id, ...extra] = positionals;
  if (id === undefined) throw new UsageError(`${command} needs a migration id or an instance uuid`);
  if (extra.length > 0) throw new UsageError(`${command}: unexpected arguments: ${extra.join(' ')}`);
  if (!UUID.test(id)) throw new UsageError(`${command}: "${id}" is not a migration id or instance uuid (a UUID)`);
  return id.toLowerCase();
}

function hostOption(value: string | undefined): string | undefined {
  if (value !== undefined && !HOST.test(value)) throw new UsageError(`--host "${value}" is not a host name`);
  return value;
}

function noPositionals(positionals: string[], command: string): void {
  if (positionals.length > 0) throw new UsageError(`${command}: unexpected arguments: ${positionals.join(' ')}`);
}

export function parseCommandLine(argv: string[]): Invocation {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        api: { type: 'string' },
        config: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        host: { type: 'string' },
        block: { type: 'string' },
        force: { type: 'boolean', default: false },
        watch: { type: 'boolean', short: 'w', default: false },
        status: { type: 'string' },
        instance: { type: 'string' },
        open: { type: 'boolean' },
        closed: { type: 'boolean' },
        limit: { type: 'string' },
        reason: { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  const global: GlobalOptions = { api: v.api, config: v.config, json: v.json ?? false };
  const [name, ...rest] = positionals;
  if (v.help || name === undefined || name === 'help') return { global, command: { name: 'help' } };

  // Options that only some commands take.
  const allowed: Record<string, string[]> = {
    migrate: ['host', 'block', 'force', 'watch'],
    list: ['status', 'host', 'instance', 'open', 'closed', 'limit'],
    abort: ['reason'],
    instances: ['host'],
  };
  const commandOptions = ['host', 'block', 'force', 'watch', 'status', 'instance', 'open', 'closed', 'limit', 'reason'] as const;
  for (const option of commandOptions) {
    const value = v[option];
    if (value === undefined || value === false) continue;
    if (!(allowed[name] ?? []).includes(option)) throw new UsageError(`${name} does not take --${option}`);
  }

  switch (name) {
    case 'migrate': {
      const [instance, ...extra] = rest;
      if (instance === undefined) throw new UsageError('migrate needs an instance uuid');
      if (extra.length > 0) throw new UsageError(`migrate: unexpected arguments: ${extra.join(' ')}`);
      if (!UUID.test(instance)) throw new UsageError(`migrate: "${instance}" is not an instance uuid`);
      let block: boolean | 'auto' = 'auto';
      if (v.block !== undefined) {
        if (v.block === 'true') block = true;
        else if (v.block === 'false') block = false;
        else if (v.block !== 'auto') throw new UsageError('--block must be true, false or auto');
      }
      const host = hostOption(v.host);
      if (v.force && !host) throw new UsageError('--force needs --host');
      return { global, command: { name, instance: instance.toLowerCase(), host, block, force: v.force ?? false, watch: v.watch ?? false } };
    }
    case 'list': {
      noPositionals(rest, name);
      if (v.status !== undefined && !(MIGRATION_STATUSES as readonly string[]).includes(v.status)) {
        throw new UsageError(`--status must be one of ${MIGRATION_STATUSES.join(', ')}`);
      }
      if (v.instance !== undefined && !UUID.test(v.instance)) throw new UsageError(`--instance "${v.instance}" is not a uuid`);
      if (v.open && v.closed) throw new UsageError('--open and --closed exclude each other');
      let limit: number | undefined;
      if (v.limit !== undefined) {
        limit = Number(v.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new UsageError('--limit must be an integer from 1 to 500');
      }
      return {
        global,
        command: {
          name,
          status: v.status as NovaMigrationStatus | undefined,
          host: hostOption(v.host),
          instance: v.instance?.toLowerCase(),
          open: v.open ? true : v.closed ? false : undefined,
          limit,
        },
      };
    }
    case 'show':
    case 'watch':
    case 'force-complete':
      return { global, command: { name, id: needId(rest, name) } };
    case 'abort':
      return { global, command: { name, id: needId(rest, name), reason: v.reason } };
    case 'hosts':
      noPositionals(rest, name);
      return { global, command: { name } };
    case 'instances':
      noPositionals(rest, name);
      return { global, command: { name, host: hostOption(v.host) } };
    default:
      throw new UsageError(`unknown command "${name}"`);
  }
}
