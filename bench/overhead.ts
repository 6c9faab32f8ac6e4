// Orchestration overhead of a live migration (issue 11, item 3): a tiny VM (1 MiB of memory; a
// 1 MiB local disk for migrate_send) live-migrated through the whole stack (lib/stack.ts: a Temporal
// dev server, the simulated hosts, the conductor and one agent per host, each a real process),
// `--runs` times per kind, the kinds interleaved so that noise falls on both alike:
//   pool_migrate   xen-a <-> xen-b, one pool, shared storage
//   migrate_send   xen-a <-> xen-c, across pools, storage moves
// Each kind has --vms VMs taken in turn, each going back and forth, so that a VM is at rest when it
// moves again (the host inventory has seen its last move; bench/profile.ts's straight_back case shows
// what a VM sent back the moment it arrived costs) and the hosts hold as many VMs at the 50th run as
// at the first. For each run:
//   e2e       from just before the workflow's start request to its result in the client's hand;
//   transfer  the simulator's own time for the transfer (its admin figures: task start to the VM
//             resumed on the destination), which ferry cannot make shorter;
//   overhead  e2e - transfer: what ferry's steps and Temporal's round trips cost.
// One JSON line per kind with p50/p95 of each; targets: overhead p50 < 250 ms, p95 < 500 ms.
// The first round of each kind's VMs is not counted (the first migrations pay for JIT, connections,
// and a fresh slots entity's grace).
// With --memory-mib 64 it also gives what bench/migration-e2e.ts used to: a larger VM's share
// of transfer in its end-to-end time.
//   node --import tsx bench/overhead.ts [--runs 50] [--vms 4] [--memory-mib 1] [--kinds pool_migrate,migrate_send]
import { parseArgs } from 'node:util';
import { startStack } from '../lib/stack';
import { timedMigration, type TimedMigration } from './migrations';
import { emit, round, runBench, summarize } from './report';

const TARGET = { p50Ms: 250, p95Ms: 500 };

const KINDS = {
  pool_migrate: { peer: 'xen-b', sr: 'shared' as const, diskMiB: [] as number[] },
  migrate_send: { peer: 'xen-c', sr: 'local' as const, diskMiB: [1] },
};
type Kind = keyof typeof KINDS;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '50' },
      vms: { type: 'string', default: '4' },
      'memory-mib': { type: 'string', default: '1' },
      kinds: { type: 'string', default: 'pool_migrate,migrate_send' },
    },
  });
  const runs = Number(values.runs);
  const fleet = Number(values.vms);
  const memoryMiB = Number(values['memory-mib']);
  const kinds = values.kinds.split(',').map((k) => {
    if (!(k in KINDS)) throw new Error(`unknown kind ${k}: ${Object.keys(KINDS).join(', ')}`);
    return k as Kind;
  });
  const stack = await startStack({ bandwidthMiBps: 512 });
  try {
    // --vms VMs per kind on xen-a, each going back and forth to its peer.
    const vms = new Map<Kind, { uuid: string; at: string }[]>();
    for (const kind of kinds) {
      const { sr, diskMiB } = KINDS[kind];
      const list: { uuid: string; at: string }[] = [];
      for (let i = 0; i < fleet; i++) {
        const vm = await stack.sims.host('xen-a').admin.createVm({ nameLabel: `bench-overhead-${kind}-${i}`, memoryMiB, sr, diskMiB });
        list.push({ uuid: vm.uuid, at: 'xen-a' });
      }
      vms.set(kind, list);
    }
    const results = new Map<Kind, TimedMigration[]>(kinds.map((k) => [k, []]));
    for (let i = 0; i < fleet + runs; i++) {
      for (const kind of kinds) {
        const vm = (vms.get(kind) as { uuid: string; at: string }[])[i % fleet] as { uuid: string; at: string };
        const dest = vm.at === 'xen-a' ? KINDS[kind].peer : 'xen-a';
        const run = await timedMigration(stack, vm.uuid, vm.at, dest);
        vm.at = dest;
        if (i >= fleet) results.get(kind)?.push(run);
      }
    }
    for (const kind of kinds) {
      const list = results.get(kind) as TimedMigration[];
      const overhead = summarize(list.map((r) => r.overheadMs));
      emit('overhead', {
        kind,
        runs: list.length,
        memoryMiB,
        diskMiB: KINDS[kind].diskMiB.reduce((a, b) => a + b, 0),
        bandwidthMiBps: stack.config.simulator.bandwidthMiBps,
        overheadP50Ms: overhead.p50,
        overheadP95Ms: overhead.p95,
        targetP50Ms: TARGET.p50Ms,
        targetP95Ms: TARGET.p95Ms,
        withinTarget: overhead.p50 < TARGET.p50Ms && overhead.p95 < TARGET.p95Ms,
        e2eP50Ms: summarize(list.map((r) => r.e2eMs)).p50,
        transferP50Ms: summarize(list.map((r) => Number(r.transfer.totalMs))).p50,
        transferShareP50: round(summarize(list.map((r) => Number(r.transfer.totalMs) / r.e2eMs), 3).p50, 3),
        overheadMs: overhead,
        e2eMs: summarize(list.map((r) => r.e2eMs)),
        // Temporal's own start and close times of the run: the client's extra is the start request and the result's delivery.
        serverMs: summarize(list.map((r) => r.serverMs)),
        transferMs: summarize(list.map((r) => Number(r.transfer.totalMs))),
      });
    }
  } finally {
    await stack.stop();
  }
}

runBench(main);
