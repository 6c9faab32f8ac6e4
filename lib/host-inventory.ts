// The host inventory as its readers (the conductor's scheduler, the API) see it: the latest report
// of every host's agent, read from the hostInventory entities' memos with one visibility call, and
// kept for inventory.cacheMs. Nova schedules from such cached host state too; what a cached answer
// decides is verified freshly where it matters (the source and the chosen destination are asked by
// their own agents), and a refusal is never based on it alone: see fresh and hostNow().
//
// A host is up when its agent's last report says its XenAPI answered and that report arrived less
// than inventory.staleSeconds ago (Nova's service_down_time).
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import {
  HOST_INVENTORY_WORKFLOW,
  hostInventoryWorkflowId,
  hostReportSignal,
  hostStateQuery,
  type ClusterView,
  type HostInventoryState,
  type HostReportMessage,
  type HostView,
  type InstanceView,
} from '../workflows/definitions';
import { hostQueue, type FerryConfig, type HostConfig } from './config';
import { HostReportedAt } from './search-attributes';

export interface InventoryHost extends HostView {
  queue: string;
  /** When the agent's last report arrived, ISO 8601; null when it never reported. */
  reportedAt: string | null;
}

export interface InventoryView extends ClusterView {
  hosts: InventoryHost[];
}

export interface Located {
  host: InventoryHost;
  instance: InstanceView;
}

interface Snapshot {
  at: number;
  states: Map<string, HostInventoryState>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How often a look-up that waits for the reports lists them again, ms. */
const RELIST_MS = 50;
/**
 * How long after a report arrives (the entity's workflow task starts) visibility may show it, ms: a
 * listing asks for the reports since the previous listing started, less this much. The dev server
 * shows a report within milliseconds, tens of them under load; Elasticsearch within its refresh
 * interval (1 s). A report shown later still arrives: with the host's next report, or the full listing.
 */
const VISIBILITY_LAG_MS = 5000;

/** A VM seen on two hosts (a cross-pool migration lists it in both pools for a moment): the running copy wins. */
function better(a: Located, b: Located): Located {
  const runs = (l: Located) => l.instance.powerState === 'Running' || l.instance.powerState === 'Paused';
  if (runs(a) !== runs(b)) return runs(a) ? a : b;
  return (a.host.reportedAt ?? '') >= (b.host.reportedAt ?? '') ? a : b;
}

export class HostInventory {
  private snapshot: Snapshot | null = null;
  private listing: Promise<Snapshot> | null = null;
  /** Every host's latest state listed so far: listings only add to it. */
  private readonly states = new Map<string, HostInventoryState>();
  /** The index: instance uuid -> the hosts whose latest report lists it (two while a VM moves between pools). */
  private readonly hostsOf = new Map<string, Set<string>>();
  private readonly configured: Map<string, HostConfig>;
  /** The newest report seen, by the entities' clock (ms), and when (performance.now()) it was seen. */
  private newestReport: { at: number; seenAt: number } | null = null;
  /** The entities' clock when the last listing started: the next one asks for the reports since then. */
  private listedFrom: number | null = null;
  private fullListingAt = 0;

  /** `client` is bound to the system namespace, where the hostInventory entities run. */
  constructor(
    private readonly client: Client,
    private readonly config: FerryConfig,
  ) {
    this.configured = new Map(config.hosts.map((h) => [h.name, h]));
  }

  /** Every host of temporal.yaml with its latest report; `fresh` lists again instead of using the cache. */
  async view(options: { fresh?: boolean } = {}): Promise<InventoryView> {
    const snapshot = await this.read(options.fresh ?? false);
    const now = Date.now();
    return {
      hosts: this.config.hosts.map((h) => this.hostView(h.name, h.pool, snapshot.states.get(h.name), now)),
      observedAt: new Date(snapshot.at).toISOString(),
    };
  }

  /**
   * Where an instance is, through the index of the latest reports. A miss, or a host in `notOn` (one
   * that just said the VM is not there), lists again until the reports show it elsewhere or `waitMs`
   * passes: an agent reports a change within moments, so a VM created a moment ago is found. With
   * `confirm`, the host the index names is asked (hostNow) whether its latest report still lists the
   * VM: visibility may lag the reports by a moment, a VM that just moved is looked for again.
   */
  async locate(uuid: string, options: { fresh?: boolean; notOn?: string[]; waitMs?: number; confirm?: boolean } = {}): Promise<Located | null> {
    const wanted = uuid.toLowerCase();
    const deadline = Date.now() + (options.waitMs ?? 0);
    for (let fresh = options.fresh ?? (options.notOn?.length ?? 0) > 0; ; fresh = true) {
      const found = this.find(await this.read(fresh), wanted);
      if (found && !options.notOn?.includes(found.host.name)) {
        if (!options.confirm) return found;
        const host = await this.hostNow(found.host.name);
        const instance = host?.instances.find((i) => i.uuid === wanted);
        if (host && instance) return { host, instance };
      }
      if (Date.now() >= deadline) return null;
      await sleep(Math.min(RELIST_MS, Math.max(0, deadline - Date.now())));
    }
  }

  /**
   * One host's state as its entity holds it now: a query sees every report the entity has accepted,
   * so it is as fresh as the agent's last report (visibility may lag it by a moment).
   */
  async hostNow(name: string): Promise<InventoryHost | null> {
    const config = this.configured.get(name);
    if (!config) return null;
    let state: HostInventoryState | undefined;
    try {
      state = await this.client.workflow.getHandle(hostInventoryWorkflowId(name)).query(hostStateQuery);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    return this.hostView(config.name, config.pool, state, Date.now());
  }

  /** The hosts whose latest report lists the instance (the index), the running copy first. */
  private find(snapshot: Snapshot, uuid: string): Located | null {
    let found: Located | null = null;
    const now = Date.now();
    for (const name of this.hostsOf.get(uuid) ?? []) {
      const config = this.configured.get(name);
      if (!config) continue;
      const host = this.hostView(name, config.pool, snapshot.states.get(name), now);
      const instance = host.instances.find((i) => i.uuid === uuid);
      if (instance) found = found ? better(found, { host, instance }) : { host, instance };
    }
    return found;
  }

  private async read(fresh: boolean): Promise<Snapshot> {
    if (!fresh && this.snapshot && Date.now() - this.snapshot.at < this.config.inventory.cacheMs) return this.snapshot;
    // A fresh read waits for a listing that started after the question, never for an older one.
    if (fresh && this.listing) await this.listing.catch(() => undefined);
    this.listing ??= this.list().finally(() => {
      this.listing = null;
    });
    return this.listing;
  }

  /**
   * The first listing reads every running entity; later ones only the entities whose report arrived
   * since the previous listing started (HostReportedAt, by the entities' clock, less the visibility
   * lag), so that a listing costs what changed, not the size of the cluster. Once per report interval a full listing runs in the
   * background as a safety net (a report that visibility showed later than the lag allows, an
   * entity that ran before HostReportedAt existed).
   */
  private async list(): Promise<Snapshot> {
    const at = Date.now();
    const started = performance.now();
    const since = this.listedFrom;
    if (!this.snapshot || since === null) {
      await this.listAll();
    } else {
      await this.listQuery(`WorkflowType = '${HOST_INVENTORY_WORKFLOW}' AND ${HostReportedAt.name} >= '${new Date(since - VISIBILITY_LAG_MS).toISOString()}'`);
      if (at - this.fullListingAt >= this.config.inventory.reportSeconds * 1000) void this.listAll().catch(() => undefined);
    }
    this.listedFrom = this.entitiesAt(started) ?? since;
    this.snapshot = { at, states: this.states };
    return this.snapshot;
  }

  private async listAll(): Promise<void> {
    this.fullListingAt = Date.now();
    await this.listQuery(`WorkflowType = '${HOST_INVENTORY_WORKFLOW}' AND ExecutionStatus = 'Running'`);
  }

  /** Keeps a host's newer state, and moves the index of its instances from the old state to it. */
  private remember(name: string, state: HostInventoryState, known: HostInventoryState | undefined): void {
    for (const i of known?.report?.state?.instances ?? []) {
      const hosts = this.hostsOf.get(i.uuid);
      hosts?.delete(name);
      if (hosts?.size === 0) this.hostsOf.delete(i.uuid);
    }
    for (const i of state.report?.state?.instances ?? []) this.hostsOf.set(i.uuid, (this.hostsOf.get(i.uuid) ?? new Set<string>()).add(name));
    this.states.set(name, state);
  }

  /**
   * A lower bound of the entities' clock (the server's) at `t` (a performance.now()), or null before
   * any report was seen: the newest report seen, moved by the time from when it was seen to `t`. A
   * report arrives before it is seen, so unlike this machine's clock this one cannot run ahead of
   * the server's, and a listing from it never skips a report.
   */
  private entitiesAt(t: number): number | null {
    return this.newestReport ? this.newestReport.at + (t - this.newestReport.seenAt) : null;
  }

  /** Merges the entities' memos: the latest report of each host wins (an entity continuing as new is briefly listed twice, or not at all). */
  private async listQuery(query: string): Promise<void> {
    for await (const execution of this.client.workflow.list({ query, pageSize: 1000 })) {
      const state = execution.memo?.host as HostInventoryState | undefined;
      const name = state?.report?.host;
      if (!state || !name) continue;
      const known = this.states.get(name);
      if (!known || (known.receivedAt ?? '') <= (state.receivedAt ?? '')) this.remember(name, state, known);
      const received = state.receivedAt ? Date.parse(state.receivedAt) : NaN;
      const seenAt = performance.now();
      if (!Number.isNaN(received) && received > (this.entitiesAt(seenAt) ?? -Infinity)) this.newestReport = { at: received, seenAt };
    }
  }

  private hostView(name: string, pool: string, state: HostInventoryState | undefined, now: number): InventoryHost {
    const report = state?.report ?? null;
    const receivedAt = state?.receivedAt ?? null;
    const age = receivedAt ? now - Date.parse(receivedAt) : Infinity;
    const downReason = !report
      ? 'its agent has not reported'
      : age > this.config.inventory.staleSeconds * 1000
        ? `its agent last reported ${Math.round(age / 1000)} s ago`
        : report.downReason ??
          (!report.state ? 'its agent could not read its XenAPI' : report.state.forcedDown ? 'forced down by an operator (os-services forced_down)' : null);
    const s = report?.state;
    return {
      name,
      pool,
      queue: hostQueue(this.config, name),
      up: downReason === null,
      downReason,
      enabled: s?.enabled ?? false,
      disabledReason: s && !s.enabled ? (s.disabledReason ?? null) : null,
      forcedDown: s?.forcedDown ?? false,
      productVersion: s?.productVersion ?? null,
      platformVersion: s?.platformVersion ?? null,
      memoryTotalBytes: s?.memoryTotalBytes ?? 0,
      memoryFreeBytes: s?.memoryFreeBytes ?? 0,
      // A host that is down keeps listing its last known VMs: where an instance was is still the best clue.
      instances: s?.instances ?? [],
      reportedAt: receivedAt,
    };
  }
}

/** Sends an agent's report to its host's entity, starting the entity when it is not running. */
export async function sendHostReport(systemClient: Client, config: FerryConfig, message: HostReportMessage): Promise<void> {
  const initial: HostInventoryState = { report: null, receivedAt: null };
  await systemClient.workflow.signalWithStart(HOST_INVENTORY_WORKFLOW, {
    workflowId: hostInventoryWorkflowId(message.host),
    taskQueue: config.taskQueues.conductor,
    args: [initial],
    signal: hostReportSignal,
    signalArgs: [message],
    staticSummary: `ferry: inventory of host ${message.host} (pool ${message.pool}), reported by its agent`,
  });
}
