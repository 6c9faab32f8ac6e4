// Shared setup for simulator tests: three simulated hosts on free ports (xen-a and xen-b in
// pool-1, xen-c alone in pool-2, like temporal.yaml), and a logged-in client per host.
import type { HostConfig } from '../../lib/config';
import { simulatedHostConfig, startSimulators, type SimCluster } from '../../simulator/cluster';
import type { MigrationFigures } from '../../simulator/admin-client';
import { XenApiClient } from '../../xenapi/client';

export const PASSWORD = 'test-password';

export function hostConfig(name: string, pool: string, memoryMiB = 2048): Promise<HostConfig> {
  return simulatedHostConfig(name, pool, { memoryMiB });
}

export async function startTestCluster(opts: { bandwidthMiBps?: number; maxIterations?: number; memoryMiB?: number } = {}): Promise<SimCluster> {
  const hosts = [
    await hostConfig('xen-a', 'pool-1', opts.memoryMiB),
    await hostConfig('xen-b', 'pool-1', opts.memoryMiB),
    await hostConfig('xen-c', 'pool-2', opts.memoryMiB),
  ];
  return startSimulators({
    hosts,
    bandwidthMiBps: opts.bandwidthMiBps ?? 1024,
    password: PASSWORD,
    maxIterations: opts.maxIterations,
    logDir: process.env.FERRY_SIM_LOG_DIR,
  });
}

export function clientFor(cluster: SimCluster, name: string, timeoutMs = 20_000): XenApiClient {
  return new XenApiClient({ url: cluster.host(name).xenapiUrl, user: 'root', password: PASSWORD, timeoutMs });
}

/** Polls until `fn` returns a truthy value (a wait, not an assertion on time). */
export async function waitUntil<T>(fn: () => Promise<T | undefined | null | false>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function hostRefOf(client: XenApiClient, name: string): Promise<string> {
  return (await client.getByNameLabel('host', name))[0] as string;
}

/** A migrate_receive token from xen-c and the maps that send every disk and VIF of `vmRef` there. */
export async function crossPoolArgs(cluster: SimCluster, vmRef: string, source = 'xen-a', dest = 'xen-c') {
  const xs = clientFor(cluster, source);
  const xd = clientFor(cluster, dest);
  const net = (await xd.call<string[]>('network.get_all'))[0] as string;
  const sr = Object.entries(await xd.getAllRecords('SR')).find(([, s]) => !s.shared)?.[0] as string;
  const token = await xd.call<Record<string, string>>('host.migrate_receive', await hostRefOf(xd, dest), net, {});
  const vm = await xs.getRecord('VM', vmRef);
  const vdiMap: Record<string, string> = {};
  for (const vbd of vm.VBDs) vdiMap[(await xs.getRecord('VBD', vbd)).VDI] = sr;
  const vifMap = Object.fromEntries(vm.VIFs.map((v) => [v, net]));
  return { token, vdiMap, vifMap };
}

/** Asserts the destination kept nothing of an abandoned migration of `vmUuid`. */
export async function destinationIsClean(cluster: SimCluster, dest: string, vmUuid: string): Promise<void> {
  const { expect } = await import('vitest');
  // The destination learns of the abandoned connection asynchronously: wait for it to let go.
  const state = await waitUntil(async () => {
    const st = await cluster.host(dest).admin.state();
    return st.incoming.length === 0 ? st : undefined;
  }, `${dest} to discard the incoming migration`, 10_000);
  expect(state.vms.find((v) => v.uuid === vmUuid)).toBeUndefined();
  expect([...state.srFiles.local, ...state.srFiles.shared].filter((f) => f.endsWith('.partial'))).toEqual([]);
  const used = state.vms.filter((v) => v.powerState !== 'Halted').reduce((a, v) => a + Number(state.records.VM[v.ref]?.memory_static_max ?? 0), 0);
  expect(state.memoryFree).toBe(state.memoryTotal - used);
}

/** The admin endpoint's figures of a migration `host` sends (null until it started). */
export async function figuresOf(cluster: SimCluster, host: string, task: string): Promise<MigrationFigures | null> {
  return (await cluster.host(host).admin.migrations()).find((m) => m.taskRef === task) ?? null;
}

/** Waits until the figures of a migration satisfy `pred`; returns them. */
export function waitForFigures(cluster: SimCluster, host: string, task: string, pred: (f: MigrationFigures) => boolean, what: string, timeoutMs = 60_000): Promise<MigrationFigures> {
  return waitUntil(async () => {
    const f = await figuresOf(cluster, host, task);
    return f && pred(f) ? f : undefined;
  }, what, timeoutMs);
}
