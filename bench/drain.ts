// Draining a host of 8 VMs with the hostMaintenance workflow, through the whole stack: the makespan
// (the workflow's start to its `drained` status, both on the workflow's clock, so it includes
// disabling the host and listing its VMs) over the lower bound Σmem/B of the source's link
// (DESIGN section 5: the simulator paces each host's outgoing link, so however many transfers
// share it, the host sends its VMs' memory no faster than B).
//
// The cluster: one pool of 5 hosts on shared storage (src and d1..d4), so each VM moves with
// pool_migrate and only its memory crosses the link; idle guests (D = 0: pre-copy sends each page
// once). The limits: outbound per host as --parallelism (default 2), inbound 2 per host, 8 in the
// cluster, so the source's link is the bottleneck, not the destinations. The VMs: 8 of mixed sizes
// (32 to 128 MiB, 656 MiB in all). Also printed: the same bound with the bytes the simulator really
// sent (its admin figures), and the drain's own overhead per VM.
//   node --import tsx bench/drain.ts [--bandwidth 128] [--parallelism 2]
import { parseArgs } from 'node:util';
import { startStack, type Stack } from '../lib/stack';
import { HOST_MAINTENANCE_WORKFLOW, hostMaintenanceWorkflowId, maintenanceStatusQuery, type MaintenanceView } from '../workflows/definitions';
import { emit, round, runBench } from './report';

const MiB = 2 ** 20;
const SIZES_MIB = [32, 48, 64, 64, 96, 96, 128, 128];

async function drained(stack: Stack, workflowId: string): Promise<MaintenanceView> {
  const handle = stack.client.workflow.getHandle(workflowId);
  const deadline = Date.now() + 300_000;
  for (;;) {
    const view = await handle.query(maintenanceStatusQuery).catch(() => null);
    if (view && (view.status === 'drained' || view.status === 'partial')) return view;
    if (Date.now() > deadline) throw new Error(`the drain did not end in 300 s: ${JSON.stringify(view?.counts)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { bandwidth: { type: 'string' }, parallelism: { type: 'string' } } });
  const bandwidth = Number(values.bandwidth ?? 128);
  const parallelism = Number(values.parallelism ?? 2);
  const stack = await startStack({
    hosts: ['src', 'd1', 'd2', 'd3', 'd4'].map((name) => ({ name, pool: 'p1', memoryMiB: 4096 })),
    bandwidthMiBps: bandwidth,
    migration: { limits: { outboundPerHost: parallelism, inboundPerHost: 2, cluster: 8 }, autoConverge: { enabled: false, stepSeconds: 1, capSteps: [50] } },
  });
  try {
    const src = stack.sims.host('src').admin;
    const vms: string[] = [];
    for (const [i, size] of SIZES_MIB.entries()) vms.push((await src.createVm({ nameLabel: `drain-${i}`, memoryMiB: size, sr: 'shared' })).uuid);
    // The inventory must list them before the drain looks.
    for (const deadline = Date.now() + 30_000; ; ) {
      const listed = await stack.systemClient.workflow
        .getHandle('host-inventory-src')
        .query<{ report: { state: { instances: { uuid: string }[] } | null } | null }>('hostState')
        .catch(() => null);
      const uuids = new Set(listed?.report?.state?.instances.map((i) => i.uuid) ?? []);
      if (vms.every((u) => uuids.has(u))) break;
      if (Date.now() > deadline) throw new Error('the inventory never listed the VMs');
      await new Promise((r) => setTimeout(r, 100));
    }
    const workflowId = hostMaintenanceWorkflowId('src');
    await stack.client.workflow.start(HOST_MAINTENANCE_WORKFLOW, { taskQueue: stack.config.taskQueues.conductor, workflowId, args: [{ host: 'src' }] });
    const view = await drained(stack, workflowId);
    if (view.status !== 'drained') throw new Error(`the drain ended ${view.status}: ${view.reason}`);
    const makespanS = (Date.parse(view.updatedAt) - Date.parse(view.startedAt)) / 1000;
    const sumBytes = SIZES_MIB.reduce((a, b) => a + b, 0) * MiB;
    const boundS = sumBytes / (bandwidth * MiB);
    const figures = (await src.migrations()).filter((m) => vms.includes(m.vmUuid) && m.status === 'success');
    const sentBytes = figures.reduce((a, m) => a + m.bytesSent, 0);
    const sentBoundS = sentBytes / (bandwidth * MiB);
    emit('drain', {
      vms: SIZES_MIB.length,
      memory_mib: SIZES_MIB,
      sum_mib: sumBytes / MiB,
      bandwidth_mib_s: bandwidth,
      parallelism,
      makespan_s: round(makespanS, 2),
      lower_bound_sum_M_over_B_s: round(boundS, 2),
      ratio: round(makespanS / boundS, 3),
      sent_mib: round(sentBytes / MiB, 1),
      ratio_to_sent_over_B: round(makespanS / sentBoundS, 3),
      overhead_per_vm_ms: Math.round(((makespanS - sentBoundS) * 1000) / SIZES_MIB.length),
    });
    process.stderr.write(`drain of ${SIZES_MIB.length} VMs (${sumBytes / MiB} MiB) at ${bandwidth} MiB/s, ${parallelism} at once: ${round(makespanS, 2)} s over ${round(boundS, 2)} s = ${round(makespanS / boundS, 3)}\n`);
  } finally {
    await stack.stop();
  }
}

runBench(main);
