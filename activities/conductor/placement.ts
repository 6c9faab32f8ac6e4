// Where an instance is and where it may go, from the host inventory (lib/host-inventory.ts): one
// look-up whatever the number of hosts, and answers that carry only the hosts a migration needs.
// Both are cached state: the workflow has the source and the chosen destination verified by their
// own agents (checkInstanceActive, checkCanLiveMigrateDestination), so a stale answer costs a retry.
import { ApplicationFailure } from '@temporalio/activity';
import { hypervisorType, type FerryConfig, type HostConfig } from '../../lib/config';
import type { HostInventory, InventoryHost } from '../../lib/host-inventory';
import type { HostSummary, LiveMigrationPlan, PlanLiveMigrationInput, ScheduleDestinationsInput, ScheduledDestinations } from '../types';
import type { PolledHost } from './hosts';
import { compatibilityProblem, schedule } from './scheduler';

/** Rejections listed by name in a migration's attempts; the rest are counted. */
const REJECTED_LISTED = 10;
/** How long a plan waits for the inventory to show an instance it does not know (yet), ms. */
const LOCATE_WAIT_MS = 5_000;
/** ... and for an instance its indexed host just said is not there (it moved a moment ago), ms. */
const RELOCATE_WAIT_MS = 10_000;

export function summary({ instances: _instances, reportedAt: _reportedAt, ...host }: InventoryHost): HostSummary {
  return host;
}

function listed(hosts: InventoryHost[]): string {
  const names = hosts.slice(0, REJECTED_LISTED).map((h) => `${h.name} (${h.downReason})`);
  return hosts.length > REJECTED_LISTED ? `${names.join(', ')} and ${hosts.length - REJECTED_LISTED} more` : names.join(', ');
}

/** A host the inventory has up, unless no agent polls its queue (Temporal's view of the agent). */
async function withPoller(host: InventoryHost, polls: (host: InventoryHost) => Promise<PolledHost>): Promise<InventoryHost> {
  if (!host.up) return host;
  const agent = await polls(host);
  return agent.polled ? host : { ...host, up: false, downReason: agent.reason };
}

/**
 * Nova's _check_compatible_with_source_hypervisor, its first half: the same hypervisor type (a
 * QEMU guest never goes to a Xen host, nor back). Nova's InvalidHypervisorType text, then both types.
 */
export function hypervisorMismatch(hosts: readonly HostConfig[] | undefined, source: string, dest: string): string | null {
  const of = (name: string) => {
    const host = hosts?.find((h) => h.name === name);
    return host ? hypervisorType(host) : null;
  };
  const [from, to] = [of(source), of(dest)];
  if (!from || !to || from === to) return null;
  return `The supplied hypervisor type of is invalid. ${source} runs ${from}, ${dest} runs ${to}`;
}

/** Nova's _check_host_is_up for the instance's host, and the requested host as the inventory knows it. */
export async function planLiveMigration(
  inventory: HostInventory,
  polls: (host: InventoryHost) => Promise<PolledHost>,
  policy: FerryConfig['migration'],
  input: PlanLiveMigrationInput,
  hosts?: readonly HostConfig[],
): Promise<LiveMigrationPlan> {
  const uuid = input.instanceUuid;
  const relocating = (input.notOn?.length ?? 0) > 0;
  const located = await inventory.locate(uuid, { notOn: input.notOn, waitMs: relocating ? RELOCATE_WAIT_MS : LOCATE_WAIT_MS, confirm: true });
  if (!located) {
    const down = (await inventory.view()).hosts.filter((h) => !h.up);
    if (down.length > 0) {
      throw ApplicationFailure.nonRetryable(`instance ${uuid} is on no host that is up; down: ${listed(down)}`, 'ComputeServiceUnavailable');
    }
    throw ApplicationFailure.nonRetryable(`instance ${uuid} could not be found on any host`, 'InstanceNotFound');
  }
  const source = await withPoller(located.host, polls);
  if (!source.up) {
    throw ApplicationFailure.nonRetryable(`instance ${uuid} is on ${source.name}, which is down: ${source.downReason}`, 'ComputeServiceUnavailable');
  }
  let requested: HostSummary | null = null;
  if (input.requestedHost) {
    const host = (await inventory.view()).hosts.find((h) => h.name === input.requestedHost);
    if (!host) throw ApplicationFailure.nonRetryable(`requested host ${input.requestedHost} is not a host of this cluster`, 'ComputeHostNotFound');
    const mismatch = hypervisorMismatch(hosts, located.host.name, host.name);
    if (mismatch) throw ApplicationFailure.nonRetryable(mismatch, 'InvalidHypervisorType');
    // Nova's _check_compatible_with_source_hypervisor for a requested host (the scheduler filters the
    // others). Even a forced migration: xapi cannot send a VM to an older host.
    const tooOld = compatibilityProblem(located.host, host);
    if (tooOld) throw ApplicationFailure.nonRetryable(`requested host ${host.name}: ${tooOld}`, 'DestinationHypervisorTooOld');
    requested = summary(await withPoller(host, polls));
  }
  return { policy, source: summary(source), requested };
}

/**
 * Nova's select_destinations from cached host state: the best `limit` candidates whose agent polls
 * its queue (asked of the candidates only, best first), and a few reasons for the others.
 */
export async function scheduleDestinations(
  inventory: HostInventory,
  polls: (host: InventoryHost) => Promise<PolledHost>,
  input: ScheduleDestinationsInput,
  hostConfigs?: readonly HostConfig[],
): Promise<ScheduledDestinations> {
  const all = (await inventory.view()).hosts;
  // Another hypervisor type is never a candidate (Nova's scheduler asks for the instance's hypervisor_type).
  const hosts = all.filter((h) => !hypervisorMismatch(hostConfigs, input.source.name, h.name));
  const result = schedule({
    hosts,
    instance: input.instance,
    sourceHost: input.source.name,
    excluded: input.excluded,
    blockMigration: input.blockMigration,
    reservedBytes: input.reservedBytes,
  });
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const candidates: HostSummary[] = [];
  const rejected = [
    ...result.rejected,
    ...all.flatMap((h) => {
      const mismatch = h.name === input.source.name ? null : hypervisorMismatch(hostConfigs, input.source.name, h.name);
      return mismatch ? [{ host: h.name, reason: mismatch }] : [];
    }),
  ];
  let next = 0;
  while (candidates.length < input.limit && next < result.candidates.length) {
    const host = byName.get(result.candidates[next++] as string) as InventoryHost;
    const agent = await polls(host);
    if (agent.polled) candidates.push(summary(host));
    else rejected.unshift({ host: host.name, reason: `host is down: ${agent.reason}` });
  }
  return {
    candidates,
    rejected: rejected.slice(0, REJECTED_LISTED),
    rejectedMore: Math.max(0, rejected.length - REJECTED_LISTED),
    moreCandidates: result.candidates.length - next,
  };
}
