// The load test (GitHub issue 10, item 8): many migrations requested at once through the real
// stack, against the concurrency limits. It checks every run ends clean, that the concurrency seen
// never passes a limit (the slots entity sampled every 100 ms, and the migrateSend activities'
// intervals read from every run's history), and that each source host's queue is served oldest
// first (request order as the slots entity received the requests, grant order as each migration
// received its grant).
import type { WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import type { Payload } from '@temporalio/common';
import type { EncryptionCodec } from '../../lib/payload-codec';
import type { StackHost, StackOptions, Stack } from '../../lib/stack';
import { payloadCodec } from '../../lib/temporal-connection';
import {
  MIGRATION_SLOTS_WORKFLOW_ID,
  type MigrationLimits,
  type MigrationStatusView,
  type SlotRequest,
} from '../../workflows/definitions';
import { leftovers, slots, startMigration } from '../e2e/helpers';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export const LOAD_LIMITS: MigrationLimits = { outboundPerHost: 1, inboundPerHost: 2, cluster: 5 };

export interface LoadShape {
  /** Pools and their members, in order. */
  pools: string[][];
  migrations: number;
}

/** 10 hosts: three pools of two and four hosts alone. */
export const FULL_LOAD: LoadShape = {
  pools: [['xen-01', 'xen-02'], ['xen-03', 'xen-04'], ['xen-05', 'xen-06'], ['xen-07'], ['xen-08'], ['xen-09'], ['xen-10']],
  migrations: 50,
};

/** 6 hosts: two pools of two and two hosts alone. */
export const SMALL_LOAD: LoadShape = {
  pools: [['xen-01', 'xen-02'], ['xen-03', 'xen-04'], ['xen-05'], ['xen-06']],
  migrations: 20,
};

export function loadStackOptions(shape: LoadShape): StackOptions {
  const hosts: StackHost[] = shape.pools.flatMap((members, i) => members.map((name) => ({ name, pool: `pool-${i + 1}` })));
  return {
    hosts,
    bandwidthMiBps: 128,
    migration: { limits: LOAD_LIMITS, autoConverge: { enabled: false } },
  };
}

export interface LoadReport {
  migrations: number;
  statuses: Record<string, number>;
  makespanS: number;
  /** Highest concurrency observed, and the limit. */
  maxObserved: {
    sampledHolders: number;
    sampledPerSource: number;
    sampledPerDest: number;
    transfersOverall: number;
    transfersPerSource: number;
    transfersPerDest: number;
  };
  samples: number;
  /** Why each run that did not complete ended as it did. */
  failures: string[];
  /** Pairs served out of order on a source host (an older request that fit was passed over). */
  fifoViolations: string[];
  fifoPairsChecked: number;
  problems: string[];
}

const toMs = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  t ? Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : 0;

/** A raw history's first payload as JSON, decrypted first when the stack encrypts payloads (temporal.encryption). */
function decode<T>(codec: EncryptionCodec | undefined, payloads: Payload[] | null | undefined): T | undefined {
  const payload = payloads?.[0];
  const data = payload && (codec ? codec.decrypt(payload) : payload).data;
  return data ? (JSON.parse(Buffer.from(data).toString('utf8')) as T) : undefined;
}

/** Highest number of intervals open at once. */
function maxOverlap(intervals: [number, number][]): number {
  const points = intervals.flatMap(([a, b]): [number, number][] => [[a, 1], [b, -1]]);
  // An interval closing at the instant another opens does not overlap it.
  points.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let open = 0;
  let max = 0;
  for (const [, d] of points) max = Math.max(max, (open += d));
  return max;
}

function maxBy<K>(items: { key: K; iv: [number, number] }[]): number {
  const groups = new Map<K, [number, number][]>();
  for (const { key, iv } of items) groups.set(key, [...(groups.get(key) ?? []), iv]);
  return Math.max(0, ...[...groups.values()].map(maxOverlap));
}

/** Every run of the slots entity (it continues as new), oldest first, as one list of events. */
async function entityEvents(stack: Stack): Promise<HistoryEvent[]> {
  const runs: { runId: string; start: number }[] = [];
  for await (const w of stack.systemClient.workflow.list({ query: `WorkflowId = '${MIGRATION_SLOTS_WORKFLOW_ID}'` })) {
    runs.push({ runId: w.runId, start: w.startTime.getTime() });
  }
  runs.sort((a, b) => a.start - b.start);
  const events: HistoryEvent[] = [];
  for (const r of runs) {
    const history = await stack.systemClient.workflow.getHandle(MIGRATION_SLOTS_WORKFLOW_ID, r.runId).fetchHistory();
    events.push(...(history.events ?? []));
  }
  return events;
}

/**
 * Creates `shape.migrations` VMs spread over the hosts (8 to 16 MiB; shared storage on pools of two
 * every other VM, else a 4 MiB local disk), requests all their migrations at once (every fifth to a
 * named host, the others to the scheduler's choice), and measures.
 */
export async function runLoad(stack: Stack, shape: LoadShape, log: (line: string) => void = () => undefined): Promise<LoadReport> {
  const problems: string[] = [];
  const hosts = shape.pools.flat();
  const poolOf = new Map(shape.pools.flatMap((members, i) => members.map((m): [string, number] => [m, i])));
  const vms: { uuid: string; host: string; requested: string | null }[] = [];
  for (let i = 0; i < shape.migrations; i++) {
    const host = hosts[i % hosts.length] as string;
    const inPool = (shape.pools[poolOf.get(host) as number] as string[]).length > 1;
    const shared = inPool && i % 2 === 0;
    const vm = await stack.sims.host(host).admin.createVm({
      nameLabel: `load-${i}`,
      memoryMiB: 8 + (i % 3) * 4,
      sr: shared ? 'shared' : 'local',
      ...(shared ? {} : { diskMiB: [4] }),
      dirtyRateMiBps: i % 4 === 0 ? 4 : 0,
    });
    // Every fifth names its destination: the next host, in another pool when there is one.
    const requested = i % 5 === 0 ? (hosts[(hosts.indexOf(host) + 2) % hosts.length] as string) : null;
    vms.push({ uuid: vm.uuid, host, requested });
  }
  log(`${vms.length} VMs created on ${hosts.length} hosts`);

  // Sample the slots entity while the migrations run.
  let sampling = true;
  let samples = 0;
  const sampled = { holders: 0, perSource: 0, perDest: 0 };
  const sampler = (async () => {
    while (sampling) {
      const state = await slots(stack).catch(() => null);
      if (state) {
        samples++;
        const count = (keys: (string | null)[]) => {
          const m = new Map<string, number>();
          for (const k of keys) if (k) m.set(k, (m.get(k) ?? 0) + 1);
          return Math.max(0, ...m.values());
        };
        sampled.holders = Math.max(sampled.holders, state.holders.length);
        sampled.perSource = Math.max(sampled.perSource, count(state.holders.map((h) => h.sourceHost)));
        sampled.perDest = Math.max(sampled.perDest, count(state.holders.map((h) => h.destHost)));
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  const started = Date.now();
  const handles: WorkflowHandle[] = await Promise.all(
    vms.map((vm) => startMigration(stack, { instanceUuid: vm.uuid, ...(vm.requested ? { host: vm.requested } : {}) })),
  );
  log(`${handles.length} migrations requested in ${Date.now() - started} ms`);
  const ends = await Promise.all(
    handles.map(async (h) => {
      try {
        await h.result();
      } catch {
        // the status query says why
      }
      return h.query<MigrationStatusView>('status').catch(() => null);
    }),
  );
  const makespanS = (Date.now() - started) / 1000;
  sampling = false;
  await sampler;
  log(`all ended after ${makespanS.toFixed(1)} s`);

  // Every run ended clean: the VM on exactly one host, running; nothing left anywhere.
  const statuses: Record<string, number> = {};
  const failures: string[] = [];
  const where = new Map<string, { host: string; powerState: string }[]>();
  for (const host of stack.sims.hosts) {
    for (const vm of await host.admin.listVms()) {
      where.set(vm.uuid, [...(where.get(vm.uuid) ?? []), { host: host.name, powerState: vm.powerState }]);
    }
  }
  ends.forEach((view, i) => {
    const vm = vms[i] as (typeof vms)[number];
    const status = view?.status ?? 'unknown';
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status !== 'completed') failures.push(`${vm.host} -> ${vm.requested ?? view?.dest_compute ?? '?'}: ${status}: ${view?.error?.type ?? '?'}: ${view?.error?.message ?? ''}`);
    // A VM is listed by every member of its pool that it runs on or has affinity to: dedupe by host.
    const placed = [...new Map((where.get(vm.uuid) ?? []).map((p) => [p.host, p])).values()];
    if (status !== 'completed' && !(status === 'failed' || status === 'cancelled')) problems.push(`${vm.uuid}: ended ${status}`);
    if ((status === 'failed' || status === 'cancelled') && !view?.error?.message) problems.push(`${vm.uuid}: ${status} without a reason`);
    if (placed.length !== 1 || placed[0]?.powerState !== 'Running') problems.push(`${vm.uuid}: placed ${JSON.stringify(placed)} after ${status}`);
    else if (status === 'completed' && placed[0].host !== view?.dest_compute) problems.push(`${vm.uuid}: completed to ${view?.dest_compute} but runs on ${placed[0].host}`);
    else if (status !== 'completed' && placed[0].host !== vm.host) problems.push(`${vm.uuid}: ${status} but runs on ${placed[0].host}`);
    if (vm.requested && status === 'completed' && view?.dest_compute !== vm.requested) problems.push(`${vm.uuid}: asked for ${vm.requested}, went to ${view?.dest_compute}`);
  });
  const left = await leftovers(stack);
  if (left.length) problems.push(`left behind: ${left.join(', ')}`);
  const finalSlots = await slots(stack);
  if (finalSlots.holders.length || finalSlots.queue.length) problems.push(`leases left: ${JSON.stringify(finalSlots)}`);

  // The transfers' real intervals: migrateSend scheduled to closed, from each run's history; the grant time.
  const transfers: { source: string; dest: string; iv: [number, number] }[] = [];
  const grantedAt = new Map<string, number>();
  for (const [i, h] of handles.entries()) {
    const view = ends[i];
    const events = (await h.fetchHistory()).events ?? [];
    const scheduled = new Map<number, number>();
    for (const e of events) {
      const t = toMs(e.eventTime);
      const sched = e.activityTaskScheduledEventAttributes;
      if (sched?.activityType?.name === 'migrateSend') scheduled.set(Number(e.eventId), t);
      const closed =
        e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes ?? e.activityTaskCanceledEventAttributes;
      const from = closed ? scheduled.get(Number(closed.scheduledEventId)) : undefined;
      if (from !== undefined && view?.source_compute && view.dest_compute) transfers.push({ source: view.source_compute, dest: view.dest_compute, iv: [from, t] });
      const signal = e.workflowExecutionSignaledEventAttributes;
      if (signal?.signalName === 'slotGranted' && !grantedAt.has(h.workflowId)) grantedAt.set(h.workflowId, t);
    }
  }
  const maxObserved = {
    sampledHolders: sampled.holders,
    sampledPerSource: sampled.perSource,
    sampledPerDest: sampled.perDest,
    transfersOverall: maxOverlap(transfers.map((t) => t.iv)),
    transfersPerSource: maxBy(transfers.map((t) => ({ key: t.source, iv: t.iv }))),
    transfersPerDest: maxBy(transfers.map((t) => ({ key: t.dest, iv: t.iv }))),
  };
  const over = (what: string, seen: number, limit: number) => {
    if (seen > limit) problems.push(`${what}: ${seen} at once, limit ${limit}`);
  };
  over('leases held (sampled)', sampled.holders, LOAD_LIMITS.cluster);
  over('leases of one source (sampled)', sampled.perSource, LOAD_LIMITS.outboundPerHost);
  over('leases of one destination (sampled)', sampled.perDest, LOAD_LIMITS.inboundPerHost);
  over('transfers overall', maxObserved.transfersOverall, LOAD_LIMITS.cluster);
  over('transfers from one source', maxObserved.transfersPerSource, LOAD_LIMITS.outboundPerHost);
  over('transfers into one destination', maxObserved.transfersPerDest, LOAD_LIMITS.inboundPerHost);
  if (transfers.length < (statuses.completed ?? 0)) problems.push(`only ${transfers.length} migrateSend intervals for ${statuses.completed} completed runs`);

  // Oldest first: per source host, requests in the order the entity received them, grants in the
  // order the migrations received them. An older request without a named destination always fits
  // when a younger one from the same host does (same outbound and cluster limits); one naming a
  // destination may wait for that host's inbound slot, so it may be passed over.
  // A request is a requestSlot signal (version 2) or a requestSlotNow update (version 3); an update
  // that answered granted is the grant itself (the migration gets no slotGranted signal then).
  const codec = payloadCodec(stack.config);
  const requests: SlotRequest[] = [];
  const updates = new Map<string, SlotRequest>();
  for (const e of await entityEvents(stack)) {
    const signal = e.workflowExecutionSignaledEventAttributes;
    const accepted = e.workflowExecutionUpdateAcceptedEventAttributes;
    const completed = e.workflowExecutionUpdateCompletedEventAttributes;
    let req: SlotRequest | undefined;
    if (signal?.signalName === 'requestSlot') req = decode<SlotRequest>(codec, signal.input?.payloads);
    if (accepted?.acceptedRequest?.input?.name === 'requestSlotNow') {
      req = decode<SlotRequest>(codec, accepted.acceptedRequest.input.args?.payloads);
      if (req) updates.set(accepted.acceptedRequest.meta?.updateId ?? accepted.protocolInstanceId ?? '', req);
    }
    if (completed) {
      const asked = updates.get(completed.meta?.updateId ?? '');
      const answer = decode<{ granted?: boolean }>(codec, completed.outcome?.success?.payloads);
      const t = toMs(e.eventTime);
      if (asked && answer?.granted && t < (grantedAt.get(asked.workflowId) ?? Infinity)) grantedAt.set(asked.workflowId, t);
    }
    if (req && !req.held && !requests.some((r) => r.workflowId === req.workflowId)) requests.push(req);
  }
  const mine = new Set(handles.map((h) => h.workflowId));
  const fifoViolations: string[] = [];
  let fifoPairsChecked = 0;
  const bySource = new Map<string, SlotRequest[]>();
  for (const r of requests.filter((x) => mine.has(x.workflowId))) bySource.set(r.sourceHost, [...(bySource.get(r.sourceHost) ?? []), r]);
  for (const [source, list] of bySource) {
    for (let a = 0; a < list.length; a++) {
      for (let b = a + 1; b < list.length; b++) {
        const older = list[a] as SlotRequest;
        const younger = list[b] as SlotRequest;
        if (older.destHost) continue;
        const ga = grantedAt.get(older.workflowId);
        const gb = grantedAt.get(younger.workflowId);
        if (ga === undefined || gb === undefined) continue;
        fifoPairsChecked++;
        if (gb < ga) fifoViolations.push(`${source}: ${younger.workflowId} granted before the older ${older.workflowId}`);
      }
    }
  }
  if (requests.length === 0) problems.push('no slot request found in the slots entity history: cannot check the order');
  if (fifoViolations.length) problems.push(`${fifoViolations.length} grants out of order`);

  return { migrations: handles.length, statuses, makespanS: +makespanS.toFixed(1), maxObserved, samples, failures, fifoViolations, fifoPairsChecked, problems };
}
