// Many pools per simulator process: how startSimulators packs pools into processes, that pools
// sharing a process stay separate xapi pools (own database, own master, own addresses), that
// migrations run within and between processes, and that killProcess takes down every pool of the
// process and restart brings them all back from their databases. Also: 100+ hosts get distinct
// addresses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostConfig } from '../../lib/config';
import { DEFAULT_PROCESSES, ONE_PROCESS_PER_POOL_UP_TO, packPools, simulatedHostConfig, startSimulators, type SimCluster } from '../../simulator/cluster';
import { XenApiClient } from '../../xenapi/client';
import { waitForTask } from '../../xenapi/task';
import { PASSWORD, crossPoolArgs, hostRefOf } from './helpers';

describe('packPools', () => {
  const pools = (n: number) => Array.from({ length: n }, (_, i) => i);
  it('gives each pool its own process in small clusters, as before', () => {
    expect(packPools(pools(3))).toEqual([[0], [1], [2]]);
    expect(packPools(pools(ONE_PROCESS_PER_POOL_UP_TO))).toHaveLength(ONE_PROCESS_PER_POOL_UP_TO);
  });
  it('spreads a large cluster over a few processes, in configuration order', () => {
    const groups = packPools(pools(50));
    expect(groups).toHaveLength(DEFAULT_PROCESSES);
    expect(groups.flat()).toEqual(pools(50));
    expect(groups.map((g) => g.length)).toEqual([13, 13, 13, 11]);
  });
  it('follows poolsPerProcess, else processes', () => {
    expect(packPools(pools(5), { poolsPerProcess: 2 })).toEqual([[0, 1], [2, 3], [4]]);
    expect(packPools(pools(5), { processes: 2 })).toEqual([[0, 1, 2], [3, 4]]);
    expect(packPools(pools(5), { processes: 1 })).toEqual([[0, 1, 2, 3, 4]]);
  });
});

describe('simulatedHostConfig', () => {
  it('gives 120 hosts 120 addresses, each with its own free ports, and one XenAPI port per pool', async () => {
    const hosts: HostConfig[] = [];
    for (let i = 0; i < 120; i++) hosts.push(await simulatedHostConfig(`scale-${i}`, `scale-pool-${Math.floor(i / 4)}`));
    const addresses = hosts.map((h) => new URL(h.xenapiUrl).hostname);
    expect(new Set(addresses).size).toBe(120);
    expect(addresses.every((a) => /^127\.0\.\d+\.\d+$/.test(a) && !a.startsWith('127.0.0.'))).toBe(true);
    for (let p = 0; p < 30; p++) {
      const members = hosts.filter((h) => h.pool === `scale-pool-${p}`);
      expect(new Set(members.map((h) => new URL(h.xenapiUrl).port)).size).toBe(1);
    }
    for (const h of hosts) expect(new Set([new URL(h.xenapiUrl).port, String(h.simulator?.dataPort), String(h.simulator?.adminPort)]).size).toBe(3);
  });

  it('startSimulators refuses two hosts on one address', async () => {
    const a = await simulatedHostConfig('dup-a', 'dup-1');
    const b = await simulatedHostConfig('dup-b', 'dup-2');
    b.xenapiUrl = a.xenapiUrl.replace(/:\d+\//, `:${new URL(b.xenapiUrl).port}/`);
    await expect(startSimulators({ hosts: [a, b], bandwidthMiBps: 64, password: PASSWORD })).rejects.toThrow(/same address/);
  });
});

describe('several pools in one process', () => {
  let cluster: SimCluster;
  // Six pools of two hosts, three pools per process.
  const name = (pool: number, member: number) => `m${pool}-${member}`;
  beforeAll(async () => {
    const hosts: HostConfig[] = [];
    for (let p = 0; p < 6; p++) for (let m = 0; m < 2; m++) hosts.push(await simulatedHostConfig(name(p, m), `mp-${p}`, { memoryMiB: 1024 }));
    cluster = await startSimulators({ hosts, bandwidthMiBps: 512, password: PASSWORD, poolsPerProcess: 3, logDir: process.env.FERRY_SIM_LOG_DIR });
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  const client = (host: string) => new XenApiClient({ url: cluster.host(host).xenapiUrl, user: 'root', password: PASSWORD, timeoutMs: 10_000 });

  it('runs them in two processes, each pool its own database, master and addresses', async () => {
    expect(new Set(cluster.hosts.map((h) => h.process.pid)).size).toBe(2);
    expect(cluster.host(name(0, 0)).process).toBe(cluster.host(name(2, 1)).process);
    expect(cluster.host(name(0, 0)).process).not.toBe(cluster.host(name(3, 0)).process);
    for (let p = 0; p < 6; p++) {
      // A member refuses logins and names its own pool's master.
      const member = new XenApiClient({ url: cluster.host(name(p, 1)).xenapiUrl, user: 'root', password: PASSWORD });
      await member.login();
      expect(member.url).toBe(cluster.host(name(p, 0)).xenapiUrl);
      const hosts = await member.getAllRecords('host');
      expect(Object.values(hosts).map((h) => h.name_label).sort()).toEqual([name(p, 0), name(p, 1)]);
      expect((await cluster.host(name(p, 1)).admin.health()).pool).toBe(`mp-${p}`);
    }
  });

  it('migrates within a pool, and across pools in the same process and in another', async () => {
    const x0 = client(name(0, 0));
    const { uuid, ref } = await cluster.host(name(0, 0)).admin.createVm({ nameLabel: 'packed', memoryMiB: 8, sr: 'shared' });
    await waitForTask(x0, await x0.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(x0, name(0, 1)), {}));
    expect(await x0.call('VM.get_resident_on', ref)).toBe(await hostRefOf(x0, name(0, 1)));
    // To pool 1 (same process), then to pool 4 (the other process).
    let from = 0;
    let vm = ref;
    for (const to of [1, 4]) {
      const { token, vdiMap, vifMap } = await crossPoolArgs(cluster, vm, name(from, 1), name(to, 1));
      const xs = client(name(from, 0));
      vm = await waitForTask(xs, await xs.call<string>('Async.VM.migrate_send', vm, token, true, vdiMap, vifMap, {}));
      const xd = client(name(to, 0));
      expect(await xd.call('VM.get_resident_on', vm)).toBe(await hostRefOf(xd, name(to, 1)));
      expect(await xs.call('VM.get_all_records_where', `field "uuid" = "${uuid}"`)).toEqual({});
      from = to;
    }
    const sums = await cluster.host(name(4, 1)).admin.checksums(uuid);
    expect(sums?.memory).toBe(sums?.memoryAtArrival);
  });

  it('killProcess takes down every pool of the process; restart brings them all back from their databases', async () => {
    const vms = [];
    for (const p of [0, 2]) vms.push({ p, ...(await cluster.host(name(p, 0)).admin.createVm({ nameLabel: `kill-${p}`, memoryMiB: 8 })) });
    // The database reaches the disk within milliseconds of a change.
    await new Promise((r) => setTimeout(r, 200));
    const other = cluster.host(name(3, 0)).process.pid;
    await cluster.killProcess(name(1, 1));
    await expect(cluster.host(name(2, 0)).admin.health()).rejects.toThrow();
    expect((await cluster.host(name(3, 0)).admin.health()).pid).toBe(other);
    await cluster.restart(name(0, 0));
    for (const { p, ref } of vms) {
      expect((await cluster.host(name(p, 1)).admin.health()).pid).toBe(cluster.host(name(0, 0)).process.pid);
      const vm = await client(name(p, 0)).getRecord('VM', ref);
      expect([vm.power_state, vm.resident_on]).toEqual(['Halted', 'OpaqueRef:NULL']);
    }
  });
});
