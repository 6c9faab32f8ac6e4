// Command-line flags shared by ferry's processes: --config PATH, --host NAME (repeatable: one
// agent process may serve many hosts, each on its own task queue with its own XenAPI session) and
// --metrics HOST:PORT (where the Temporal SDK's Prometheus exporter serves /metrics).
import { parseArgs } from 'node:util';

export function workerArgs(argv = process.argv.slice(2)): { config?: string; hosts: string[]; metrics?: string } {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, host: { type: 'string', multiple: true }, metrics: { type: 'string' } },
    strict: true,
  });
  return { config: values.config, hosts: (values.host ?? []).flatMap((h) => h.split(',')).filter(Boolean), metrics: values.metrics };
}
