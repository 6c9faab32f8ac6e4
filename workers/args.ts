// Command-line flags shared by ferry's processes: --config PATH and --host NAME.
import { parseArgs } from 'node:util';

export function workerArgs(argv = process.argv.slice(2)): { config?: string; host?: string } {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, host: { type: 'string' } },
    strict: true,
  });
  return values;
}
