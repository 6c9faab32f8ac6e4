// The inventory's listings (issue 16): the first reads every host's entity, later ones only the
// entities whose report arrived since (HostReportedAt), so that a read costs what changed, not the
// size of the cluster. Against a fake visibility store that answers the two queries the inventory
// sends; test/e2e/inventory.test.ts runs the same code against a real Temporal server.
import type { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config';
import { HostInventory } from '../../lib/host-inventory';
import type { HostInventoryState } from '../../workflows/definitions';

interface Row {
  state: HostInventoryState;
  /** HostReportedAt (ms); undefined for an entity that ran before the attribute existed. */
  reportedAt?: number;
  visible: boolean;
}

/** Visibility with the two queries lib/host-inventory.ts sends; every query is kept. */
class FakeVisibility {
  readonly rows = new Map<string, Row>();
  readonly queries: string[] = [];

  report(host: string, receivedAt: number, options: { visible?: boolean; attribute?: boolean; vms?: string[] } = {}): void {
    const state: HostInventoryState = {
      receivedAt: new Date(receivedAt).toISOString(),
      report: {
        host,
        pool: 'p',
        observedAt: new Date(receivedAt).toISOString(),
        downReason: null,
        state: {
          enabled: true,
          disabledReason: null,
          forcedDown: false,
          productVersion: '8.4.0',
          platformVersion: '3.4.0',
          memoryTotalBytes: 2 ** 33,
          memoryFreeBytes: 2 ** 32,
          instances: (options.vms ?? []).map((uuid) => ({ uuid, name: uuid, powerState: 'Running', host, memoryBytes: 2 ** 20, vcpus: 1, vcpuCap: null, diskBytes: 0, storage: 'shared' as const })),
        } as NonNullable<HostInventoryState['report']>['state'],
      },
    };
    this.rows.set(host, { state, reportedAt: options.attribute === false ? undefined : receivedAt, visible: options.visible ?? true });
  }

  client(): Client {
    const list = ({ query }: { query: string }) => {
      this.queries.push(query);
      const since = /HostReportedAt >= '([^']+)'/.exec(query)?.[1];
      const rows = [...this.rows.values()].filter((r) => r.visible && (since === undefined || (r.reportedAt !== undefined && r.reportedAt >= Date.parse(since))));
      return (async function* () {
        for (const r of rows) yield { memo: { host: r.state } };
      })();
    };
    return { workflow: { list } } as unknown as Client;
  }
}

const HOSTS = ['h0', 'h1', 'h2', 'h3'];
const config = (reportSeconds = 60) =>
  parseConfig({ hosts: HOSTS.map((name) => ({ name, pool: 'p', xenapiUrl: `http://127.0.0.1/${name}`, passwordEnv: 'PW' })), inventory: { reportSeconds, staleSeconds: Math.max(180, reportSeconds * 3), cacheMs: 0 } });
const incremental = (q: string) => q.includes('HostReportedAt >=');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('HostInventory listings', () => {
  it('lists every host once, then only the hosts whose report arrived since', async () => {
    const vis = new FakeVisibility();
    const now = Date.now();
    for (const h of HOSTS) vis.report(h, now - 20_000);
    const inventory = new HostInventory(vis.client(), config());
    expect((await inventory.view({ fresh: true })).hosts.map((h) => h.instances.length)).toEqual([0, 0, 0, 0]);
    expect(incremental(vis.queries[0] as string)).toBe(false);

    vis.report('h2', now, { vms: ['vm-new'] });
    const found = await inventory.locate('vm-new', { fresh: true });
    expect(found?.host.name).toBe('h2');
    expect(vis.queries.slice(1).every(incremental)).toBe(true);
    // The other hosts are still known, from the first listing.
    expect((await inventory.view({ fresh: true })).hosts.filter((h) => h.reportedAt !== null)).toHaveLength(4);
  });

  it('finds a report that visibility showed late, within the lag', async () => {
    const vis = new FakeVisibility();
    const now = Date.now();
    for (const h of HOSTS) vis.report(h, h === 'h0' ? now : now - 20_000);
    const inventory = new HostInventory(vis.client(), config());
    await inventory.view({ fresh: true });
    // h1's report arrived 3 s before the newest one seen, but visibility shows it only now.
    vis.report('h1', now - 3_000, { vms: ['vm-late'] });
    expect((await inventory.locate('vm-late', { fresh: true }))?.host.name).toBe('h1');
  });

  it('follows the entities’ clock, not its own: a server clock an hour behind loses no report', async () => {
    const vis = new FakeVisibility();
    const serverNow = Date.now() - 3_600_000;
    for (const h of HOSTS) vis.report(h, serverNow);
    const inventory = new HostInventory(vis.client(), config());
    await inventory.view({ fresh: true });
    await sleep(20);
    vis.report('h3', serverNow + 20, { vms: ['vm-skew'] });
    expect((await inventory.locate('vm-skew', { fresh: true }))?.host.name).toBe('h3');
    expect(vis.queries.slice(1).every(incremental)).toBe(true);
  });

  it('lists every host again once per report interval, in the background: a report missed by the lag or without HostReportedAt is found', async () => {
    const vis = new FakeVisibility();
    const now = Date.now();
    for (const h of HOSTS) vis.report(h, now);
    const inventory = new HostInventory(vis.client(), config(0.2));
    await inventory.view({ fresh: true });
    // An entity that ran before HostReportedAt existed: no incremental listing can see its report.
    vis.report('h0', now + 10, { attribute: false, vms: ['vm-old-entity'] });
    expect(await inventory.locate('vm-old-entity', { fresh: true })).toBeNull();
    await sleep(250);
    await inventory.view({ fresh: true }); // starts the full listing in the background
    await sleep(20);
    expect(vis.queries.filter((q) => !incremental(q))).toHaveLength(2);
    expect((await inventory.locate('vm-old-entity'))?.host.name).toBe('h0');
  });

  it('keeps the newer of two reports of a host (an entity continuing as new is listed twice for a moment)', async () => {
    const vis = new FakeVisibility();
    const now = Date.now();
    for (const h of HOSTS) vis.report(h, now, { vms: h === 'h1' ? ['vm-1'] : [] });
    const inventory = new HostInventory(vis.client(), config());
    await inventory.view({ fresh: true });
    // The closed run's older memo shows up again: it must not undo the newer report.
    vis.report('h1', now - 1_000, { vms: [] });
    expect((await inventory.locate('vm-1', { fresh: true }))?.host.name).toBe('h1');
  });

  it('the index follows a VM that moved: its old host’s newer report drops it, its new host’s adds it', async () => {
    const vis = new FakeVisibility();
    const now = Date.now();
    for (const h of HOSTS) vis.report(h, now - 10_000, { vms: h === 'h1' ? ['vm-moving'] : [] });
    const inventory = new HostInventory(vis.client(), config());
    expect((await inventory.locate('vm-moving', { fresh: true }))?.host.name).toBe('h1');
    vis.report('h1', now - 5_000, { vms: [] });
    expect(await inventory.locate('vm-moving', { fresh: true })).toBeNull();
    vis.report('h3', now, { vms: ['vm-moving'] });
    expect((await inventory.locate('vm-moving', { fresh: true }))?.host.name).toBe('h3');
    // A host that is not in temporal.yaml (an entity left from an older configuration) is not an answer.
    vis.report('h9', now + 10, { vms: ['vm-elsewhere'] });
    expect(await inventory.locate('vm-elsewhere', { fresh: true })).toBeNull();
  });
});
