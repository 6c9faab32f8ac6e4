// End-to-end time of a live migration through the whole stack (dev server, simulators, conductor,
// agents), and how much of it was the data transfer. One JSON line per run.
//   node --import tsx bench/migration-e2e.ts [--runs 3] [--memory-mib 64]
import { parseArgs } from 'node:util';
import { startStack } from '../lib/stack';
import { startMigration } from '../test/e2e/helpers';
import type { MigrationOutcome } from '../workflows/outcome';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, 'memory-mib': { type: 'string', default: '64' } } });
  const runs = Number(values.runs);
  const memoryMiB = Number(values['memory-mib']);
  const stack = await startStack({ bandwidthMiBps: 512 });
  try {
    for (let i = 0; i < runs; i++) {
      for (const kind of ['pool_migrate', 'migrate_send'] as const) {
        const vm = await stack.sims.host('xen-a').admin.createVm({
          nameLabel: `bench-${kind}-${i}`,
          memoryMiB,
          diskMiB: kind === 'migrate_send' ? [16] : [],
          sr: kind === 'migrate_send' ? 'local' : 'shared',
          dirtyRateMiBps: 16,
        });
        const started = performance.now();
        const handle = await startMigration(stack, { instanceUuid: vm.uuid, host: kind === 'migrate_send' ? 'xen-c' : 'xen-b' });
        const outcome = (await handle.result()) as MigrationOutcome;
        const e2eMs = performance.now() - started;
        console.log(
          JSON.stringify({
            bench: 'migration-e2e',
            kind,
            memoryMiB,
            bandwidthMiBps: stack.config.simulator.bandwidthMiBps,
            status: outcome.status,
            e2eMs: Math.round(e2eMs),
            transferMs: outcome.transferMs,
            transferShare: Number((outcome.transferMs / e2eMs).toFixed(2)),
            bytesSent: outcome.bytesSent,
            downtimeMs: outcome.downtimeMs,
          }),
        );
      }
    }
  } finally {
    await stack.stop();
  }
}

void main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
