// Downtime of a cold migration (the coldMigration workflow) of a VM with a 1 GiB disk whose guest
// writes to it, through the whole stack: the base (the disk as it was at the snapshot) crosses while
// the VM runs, so the downtime is the shutdown, the leaf (what the guest wrote since the snapshot),
// the import on the destination (move_vhds_into_sr, SR.scan, VM.create, VDI.resize) and the start.
// The downtime is the workflow's figure (the source agent's clock at the shutdown's start to the
// destination agent's at VM.start, one machine); printed beside it, the lower bound of the leaf's
// transfer (leaf bytes / B) and the whole run's time.
//   node --import tsx bench/cold-migration.ts [--disk-mib 1024] [--write-mibps 4] [--bandwidth 256]
import { parseArgs } from 'node:util';
import { startStack } from '../lib/stack';
import { InstanceUuid } from '../lib/search-attributes';
import { COLD_MIGRATION_WORKFLOW, coldMigrationStatusQuery, coldMigrationWorkflowId, confirmResizeUpdate, type ColdMigrationView } from '../workflows/cold-migration-definitions';
import type { ColdMigrationOutcome } from '../workflows/cold-migration-task';
import { emit, round, runBench } from './report';

const MiB = 2 ** 20;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'disk-mib': { type: 'string' }, 'write-mibps': { type: 'string' }, bandwidth: { type: 'string' } } });
  const diskMiB = Number(values['disk-mib'] ?? 1024);
  const writeMiBps = Number(values['write-mibps'] ?? 4);
  const bandwidth = Number(values.bandwidth ?? 256);
  const stack = await startStack({ bandwidthMiBps: bandwidth });
  try {
    const vm = await stack.sims.host('xen-a').admin.createVm({ nameLabel: 'bench-cold', memoryMiB: 64, diskMiB: [diskMiB], sr: 'local', diskWriteMiBps: writeMiBps });
    const started = Date.now();
    const handle = await stack.client.workflow.start(COLD_MIGRATION_WORKFLOW, {
      taskQueue: stack.config.taskQueues.conductor,
      workflowId: coldMigrationWorkflowId(vm.uuid),
      args: [{ instanceUuid: vm.uuid, flavor: null, host: 'xen-c' }],
      typedSearchAttributes: [{ key: InstanceUuid, value: vm.uuid }],
    });
    let view: ColdMigrationView | null = null;
    for (const deadline = Date.now() + 600_000; ; ) {
      view = await handle.query(coldMigrationStatusQuery).catch(() => view);
      if (view?.status === 'finished') break;
      if (view?.status === 'error') throw new Error(`the cold migration failed: ${view.error?.message}`);
      if (Date.now() > deadline) throw new Error(`the cold migration did not finish in 600 s: ${JSON.stringify(view)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const finishedS = (Date.now() - started) / 1000;
    await handle.executeUpdate(confirmResizeUpdate);
    const outcome = (await handle.result()) as ColdMigrationOutcome;
    const leaf = outcome.transfers.find((t) => t.seqNum === 0);
    const leafBytes = Number(leaf?.plugin.literal_bytes ?? leaf?.bytes ?? 0);
    const base = outcome.transfers.filter((t) => t.seqNum > 0).reduce((a, t) => a + t.bytes, 0);
    emit('cold-migration', {
      disk_mib: diskMiB,
      guest_write_mib_s: writeMiBps,
      bandwidth_mib_s: bandwidth,
      downtime_ms: outcome.downtimeMs,
      base_mib: round(base / MiB, 1),
      leaf_mib: round(leafBytes / MiB, 2),
      leaf_over_B_ms: Math.round((leafBytes / (bandwidth * MiB)) * 1000),
      to_finished_s: round(finishedS, 2),
      status: outcome.status,
    });
    process.stderr.write(`cold migration of a ${diskMiB} MiB disk (guest writing ${writeMiBps} MiB/s) at ${bandwidth} MiB/s: downtime ${outcome.downtimeMs} ms, leaf ${round(leafBytes / MiB, 2)} MiB, finished after ${round(finishedS, 2)} s\n`);
  } finally {
    await stack.stop();
  }
}

runBench(main);
