// Command-line flags shared by ferry's processes: --config PATH and --host NAME (repeatable: one
// agent process may serve many hosts, each on its own task queue with its own XenAPI session).
import { parseArgs } from 'node:util';

export function workerArgs(argv = process.argv.slice(2)): { config?: string; hosts: string[] } {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, host: { type: 'string', multiple: true } },
    strict: true,
  });
  return { config: values.config, hosts: (values.host ?? []).flatMap((h) => h.split(',')).filter(Boolean) };
}
