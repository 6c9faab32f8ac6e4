// The never-stuck issue's chaos and load tests against QEMU hosts (issue 15), small enough for the
// default test command: three QEMU hosts (one pool, shared images), real Temporal, real QEMU 7.2
// under TCG, tiny guests. Every guest's QEMU spins a host CPU (its busy-wait runs under TCG), and
// the machine has 2 cores: at most 4 QEMU processes at once (each cell: 1 guest and its
// destination; the load: 3 guests and the one migration the cluster limit lets run).
//
// Chaos cells, each on a fresh guest that dirties its region faster than the 16 MiB/s link sends
// (so pre-copy holds until the test says otherwise): kill -9 of the conductor and of the source
// agent during pre-copy (then force-complete: the migration completes), and the destination QEMU
// killed during pre-copy (the migration fails, the source runs on). After each, however it ended:
// the run ended within a bound, the guest runs on exactly one host and keeps counting there
// without having rebooted, no QEMU process or state directory of it is left on any other host,
// and no slot is held or queued.
//
// The load: 6 migrations of 3 guests in two waves, each wave requested at once with no host
// named; limits 1 outbound, 1 inbound per host and 1 in the cluster. The slots entity, sampled
// every 100 ms, never holds more than the limits; every run completes, and ends clean as above.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createQemuGuest, destroyQemuGuests, readQemuGuestSerial, type CreateQemuGuestOptions } from '../../activities/host/qemu/admin';
import { findHost } from '../../lib/config';
import { executeControlUpdate } from '../../lib/control-update';
import { startStack, type Stack } from '../../lib/stack';
import { pidIfRunning } from '../../qemu/process';
import { forceCompleteUpdate, type MigrationStatusView } from '../../workflows/definitions';
import { inventoryWhen, listsInstance, slots, startMigration } from '../e2e/helpers';

const HOSTS = ['qa', 'qb', 'qc'] as const;
/** A run must end within this after the fault (the retry after a killed agent waits out the 30 s heartbeat timeout). */
const END_BOUND_MS = 120_000;

let stack: Stack;
const host = (name: string) => findHost(stack.config, name);
const guestDir = (hostName: string, uuid: string) => join(host(hostName).qemu?.stateDir ?? '', 'guests', uuid);

/** Dirties 16 MiB as fast as it runs: pre-copy at 16 MiB/s never converges by itself. */
const BUSY: Omit<CreateQemuGuestOptions, 'name'> = { memoryMiB: 32, regionMiB: 16, delayLoops: 0 };
/** Hardly dirties: pre-copy converges at once. */
const CALM: Omit<CreateQemuGuestOptions, 'name'> = { memoryMiB: 32, regionMiB: 8, delayLoops: 3_000_000 };

async function guestOn(hostName: string, name: string, opts: Omit<CreateQemuGuestOptions, 'name'>) {
  const guest = await createQemuGuest(host(hostName), stack.config.hosts, { name, ...opts });
  const view = await inventoryWhen(stack, listsInstance(hostName, guest.uuid), 20_000);
  if (!listsInstance(hostName, guest.uuid)(view)) throw new Error(`the inventory never listed ${name} on ${hostName}`);
  return guest;
}

async function waitForStatus(handle: WorkflowHandle, predicate: (s: MigrationStatusView) => boolean, ms = 60_000): Promise<MigrationStatusView> {
  const deadline = Date.now() + ms;
  let last: MigrationStatusView | undefined;
  for (;;) {
    last = await handle.query<MigrationStatusView>('status').catch(() => last);
    if (last && predicate(last)) return last;
    if (last?.phase === 'done') throw new Error(`the run ended first: ${last.status} ${last.error?.message ?? ''}`);
    if (Date.now() > deadline) throw new Error(`not reached; last phase ${last?.phase ?? '?'}`);
    await sleep(100);
  }
}

const inPrecopy = (s: MigrationStatusView) => s.phase === 'precopy' && (s.progress?.memoryProcessedBytes ?? 0) > 0;

/** The run's end (Nova's status and why), within a bound; a run still open after it is a problem. */
async function endOf(handle: WorkflowHandle, boundMs = END_BOUND_MS): Promise<{ status: string; message: string | null }> {
  const ended = await Promise.race([
    handle.result().then(
      (r: { status: string; message?: string | null }) => ({ status: r.status, message: r.message ?? null }),
      (err: unknown) => ({ status: 'failed', message: ((err as { cause?: Error }).cause ?? (err as Error)).message }),
    ),
    sleep(boundMs).then(() => null),
  ]);
  if (!ended) throw new Error(`the run did not end within ${boundMs / 1000} s`);
  return ended;
}

/**
 * What must hold however a migration ended: the guest's QEMU runs on exactly one host (`expected`),
 * keeps counting there and never rebooted; no QEMU or state of it on the other hosts; no slot held.
 * Answers each check that failed.
 */
async function cleanEnd(uuid: string, expected: string): Promise<string[]> {
  const problems: string[] = [];
  const running: string[] = [];
  for (const h of HOSTS) {
    if ((await pidIfRunning(guestDir(h, uuid)).catch(() => null)) !== null) running.push(h);
    else if (existsSync(guestDir(h, uuid))) problems.push(`${h}: a state directory of ${uuid} without a QEMU`);
  }
  if (running.join() !== expected) problems.push(`QEMU of ${uuid} runs on [${running.join(', ')}], expected on ${expected}`);
  const before = await readQemuGuestSerial(host(expected), uuid);
  if (before.starts > 1) problems.push(`${uuid} rebooted on ${expected} (${before.starts} boots)`);
  const deadline = Date.now() + 30_000;
  while ((await readQemuGuestSerial(host(expected), uuid)).passes <= before.passes) {
    if (Date.now() > deadline) {
      problems.push(`${uuid} does not count on ${expected} (${before.passes} passes)`);
      break;
    }
    await sleep(200);
  }
  const inv = await inventoryWhen(stack, (v) => v.hosts.filter((h) => h.instances.some((i) => i.uuid === uuid)).map((h) => h.name).join() === expected, 20_000);
  const listed = inv.hosts.filter((h) => h.instances.some((i) => i.uuid === uuid)).map((h) => h.name);
  if (listed.join() !== expected) problems.push(`the inventory lists ${uuid} on [${listed.join(', ')}]`);
  // The lease goes back a moment after the run's end (a signal to the slots entity).
  let held = await slots(stack);
  for (let i = 0; i < 50 && (held.holders.length > 0 || held.queue.length > 0); i++) {
    await sleep(200);
    held = await slots(stack);
  }
  if (held.holders.length > 0 || held.queue.length > 0) problems.push(`slots still held: ${JSON.stringify(held)}`);
  return problems;
}

beforeAll(async () => {
  stack = await startStack({
    hosts: HOSTS.map((name) => ({ name, pool: 'q1', driver: 'qemu' as const, memoryMiB: 512, qemu: { bandwidthMiBps: 16 } })),
    encryption: false,
    inventory: { reportSeconds: 5, staleSeconds: 60 },
    migration: { hostTimeout: 75, completionTimeoutPerGiB: 0, autoConverge: { enabled: false }, limits: { outboundPerHost: 1, inboundPerHost: 1, cluster: 1 } },
  });
}, 180_000);

afterEach(async () => {
  for (const name of HOSTS) await destroyQemuGuests(host(name));
});

afterAll(async () => {
  await stack?.stop();
});

describe('chaos against QEMU hosts, in pre-copy', () => {
  it('kill -9 of the conductor: the run goes on, completes when forced, and ends clean', async () => {
    const guest = await guestOn('qa', 'chaos-conductor', BUSY);
    const handle = await startMigration(stack, { instanceUuid: guest.uuid, host: 'qb' });
    await waitForStatus(handle, inPrecopy);
    await stack.killConductor();
    await sleep(500);
    await stack.startConductor();
    await waitForStatus(handle, (s) => inPrecopy(s) && s.phase !== 'done');
    await executeControlUpdate(handle, forceCompleteUpdate);
    expect(await endOf(handle)).toMatchObject({ status: 'completed' });
    expect(await cleanEnd(guest.uuid, 'qb')).toEqual([]);
  }, 240_000);

  it('kill -9 of the source agent: the same source QEMU is followed again, completes when forced, and ends clean', async () => {
    const guest = await guestOn('qa', 'chaos-agent', BUSY);
    const sourcePid = await pidIfRunning(guest.stateDir);
    const handle = await startMigration(stack, { instanceUuid: guest.uuid, host: 'qb' });
    await waitForStatus(handle, inPrecopy);
    await stack.killAgent('qa');
    await sleep(500);
    await stack.startAgent('qa');
    // The source QEMU outlived its agent; the new agent's force-complete reaches it over QMP.
    expect(await pidIfRunning(guest.stateDir)).toBe(sourcePid);
    await executeControlUpdate(handle, forceCompleteUpdate);
    expect(await endOf(handle)).toMatchObject({ status: 'completed' });
    expect(await cleanEnd(guest.uuid, 'qb')).toEqual([]);
  }, 240_000);

  it('the destination QEMU killed: the run fails, the source runs on, and nothing is left on the destination', async () => {
    const guest = await guestOn('qa', 'chaos-dest', BUSY);
    const sourcePid = await pidIfRunning(guest.stateDir);
    const handle = await startMigration(stack, { instanceUuid: guest.uuid, host: 'qb' });
    await waitForStatus(handle, inPrecopy);
    const destPid = await pidIfRunning(guestDir('qb', guest.uuid));
    expect(destPid).not.toBeNull();
    process.kill(destPid as number, 'SIGKILL');
    const end = await endOf(handle);
    expect(end.status).not.toBe('completed');
    expect(await pidIfRunning(guest.stateDir)).toBe(sourcePid);
    expect(await cleanEnd(guest.uuid, 'qa')).toEqual([]);
  }, 240_000);
});

describe('load against QEMU hosts', () => {
  it('6 migrations of 3 guests in two waves stay within the limits and end clean', async () => {
    const guests = [];
    for (const [i, h] of HOSTS.entries()) guests.push({ ...(await guestOn(h, `load-${i}`, CALM)), host: h as string });
    let maxHolders = 0;
    let maxPerSource = 0;
    let maxPerDest = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await slots(stack).catch(() => null);
        if (s) {
          maxHolders = Math.max(maxHolders, s.holders.length);
          const count = (keys: (string | null)[]) => Math.max(0, ...Object.values(keys.reduce<Record<string, number>>((m, k) => (k ? { ...m, [k]: (m[k] ?? 0) + 1 } : m), {})));
          maxPerSource = Math.max(maxPerSource, count(s.holders.map((x) => x.sourceHost)));
          maxPerDest = Math.max(maxPerDest, count(s.holders.map((x) => x.destHost)));
        }
        await sleep(100);
      }
    })();
    const statuses: string[] = [];
    try {
      for (let wave = 0; wave < 2; wave++) {
        const handles = await Promise.all(guests.map((g) => startMigration(stack, { instanceUuid: g.uuid })));
        for (const [i, handle] of handles.entries()) {
          const result = (await handle.result()) as { status: string; destHost: string | null; message?: string | null };
          statuses.push(`${result.status}${result.message ? `: ${result.message}` : ''}`);
          const g = guests[i];
          if (g && result.destHost) g.host = result.destHost;
        }
      }
    } finally {
      sampling = false;
      await sampler;
    }
    expect(statuses).toEqual(Array(6).fill('completed'));
    expect(maxHolders).toBeGreaterThan(0); // the sampler saw the migrations
    expect(maxHolders).toBeLessThanOrEqual(1);
    expect(maxPerSource).toBeLessThanOrEqual(1);
    expect(maxPerDest).toBeLessThanOrEqual(1);
    for (const g of guests) expect(await cleanEnd(g.uuid, g.host)).toEqual([]);
  }, 300_000);
});
