// The migration network through the real stack: temporal.yaml names pool-1's storage/migration
// network (the simulator's second network, each host's eth1 on its own address), and the bytes of a
// migration into pool-1 arrive on the destination's PIF of that network, for pool_migrate (its
// `network` option) and for a cross-pool migrate_send (host.migrate_receive's URLs); pool-2 names
// none, so a migration into it arrives on the management PIF's address (xapi's default, ferry's
// before). The simulator's admin endpoint counts the bytes each data server received per local address.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../lib/stack';
import { migrationAddress } from '../../simulator/options';
import { MIGRATION_NETWORK_LABEL } from '../../simulator/pool';
import { placements, startMigration } from './helpers';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ bandwidthMiBps: 256, pools: { 'pool-1': { migrationNetwork: MIGRATION_NETWORK_LABEL } } });
}, 240_000);

afterAll(async () => {
  await stack?.stop();
});

const addresses = (host: string) => {
  const management = new URL(stack.sims.host(host).xenapiUrl).hostname;
  return { management, migration: migrationAddress({ ip: management }) as string };
};

/** Bytes each of a host's addresses received while `run` ran. */
async function received(host: string, run: () => Promise<void>): Promise<{ management: number; migration: number }> {
  const { management, migration } = addresses(host);
  const read = async () => (await stack.sims.host(host).admin.state()).receivedBytesByAddress;
  const before = await read();
  await run();
  const after = await read();
  const delta = (a: string) => (after[a] ?? 0) - (before[a] ?? 0);
  return { management: delta(management), migration: delta(migration) };
}

async function migrate(uuid: string, host: string): Promise<void> {
  const handle = await startMigration(stack, { instanceUuid: uuid, host });
  const result = (await handle.result()) as { status: string };
  expect(result.status).toBe('completed');
  expect((await placements(stack, uuid)).map((p) => p.host)).toEqual([host]);
}

describe('migration network', () => {
  it('the bytes go over the configured network\'s PIF, and over the management PIF where none is configured', async () => {
    expect(stack.config.hosts.map((h) => [h.name, h.migrationNetwork])).toEqual([
      ['xen-a', MIGRATION_NETWORK_LABEL],
      ['xen-b', MIGRATION_NETWORK_LABEL],
      ['xen-c', undefined],
    ]);
    const MiB = 1024 * 1024;
    const shared = (await stack.sims.host('xen-a').admin.createVm({ nameLabel: 'net-shared', memoryMiB: 16, diskMiB: [1], sr: 'shared' })).uuid;
    const local = (await stack.sims.host('xen-a').admin.createVm({ nameLabel: 'net-local', memoryMiB: 16, diskMiB: [1], sr: 'local' })).uuid;
    await new Promise((r) => setTimeout(r, 1500));

    // pool_migrate xen-a -> xen-b: VM.pool_migrate's network option, xen-b's eth1.
    const intoB = await received('xen-b', () => migrate(shared, 'xen-b'));
    expect(intoB.migration).toBeGreaterThanOrEqual(16 * MiB);
    expect(intoB.management).toBe(0);

    // migrate_send xen-a -> xen-c: pool-2 names no network, so the management PIF (xapi's default).
    const intoC = await received('xen-c', () => migrate(local, 'xen-c'));
    expect(intoC.management).toBeGreaterThanOrEqual(16 * MiB);
    expect(intoC.migration).toBe(0);

    // migrate_send xen-c -> xen-a: host.migrate_receive on pool-1's migration network, xen-a's eth1.
    const intoA = await received('xen-a', () => migrate(local, 'xen-a'));
    expect(intoA.migration).toBeGreaterThanOrEqual(16 * MiB);
    expect(intoA.management).toBe(0);
  }, 300_000);
});
