// The QEMU driver's pre-checks on real QEMU, called directly (no Temporal): Nova's
// check_can_live_migrate_destination refusals (DestinationHypervisorTooOld, InvalidCPUInfo,
// InvalidHypervisorType for a Xen instance, memory), and the source's shared-storage probe
// (InvalidSharedStorage when the hosts do not share the images directory). One QEMU guest.
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQemuGuest, destroyQemuGuests } from '../../activities/host/qemu/admin';
import { QemuHost } from '../../activities/host/qemu/host';
import { createQemuInventory, type QemuInstanceView } from '../../activities/host/qemu/inventory';
import { createQemuMigration } from '../../activities/host/qemu/migration';
import { parseConfig, type HostConfig } from '../../lib/config';

const root = mkdtempSync(join(tmpdir(), 'fqd-'));
const logger = pino({ level: 'silent' });

function hosts(extra: Record<string, Record<string, unknown>> = {}): HostConfig[] {
  const qemuHost = (name: string, pool: string, images: string) => ({
    name,
    pool,
    driver: 'qemu',
    qemu: { stateDir: join(root, name), imagesDir: join(root, images), memoryMiB: 512, ...extra[name] },
  });
  return parseConfig(
    {
      temporal: { address: '127.0.0.1:7233' },
      hosts: [qemuHost('qa', 'p1', 'shared'), qemuHost('qb', 'p1', 'shared'), qemuHost('qc', 'p2', 'images-c')],
    },
    'driver-checks',
  ).hosts;
}

function driver(all: HostConfig[], name: string) {
  const qh = new QemuHost(all.find((h) => h.name === name) as HostConfig, all);
  const inventory = createQemuInventory(qh);
  return { qh, inventory, migration: createQemuMigration(qh, inventory, async () => undefined, logger) };
}

/** One driver per host for the default configuration: QEMU serves one QMP client per guest, as the agent is. */
const drivers = new Map<string, ReturnType<typeof driver>>();
const agentOf = (name: string) => {
  let found = drivers.get(name);
  if (!found) drivers.set(name, (found = driver(hosts(), name)));
  return found;
};

let instance: QemuInstanceView;
const source = { name: 'qa', pool: 'p1' };

beforeAll(async () => {
  const all = hosts();
  const guest = await createQemuGuest(all[0] as HostConfig, all, { name: 'checks', regionMiB: 8, delayLoops: 3_000_000 });
  instance = await agentOf('qa').inventory.checkInstanceActive({ instanceUuid: guest.uuid });
}, 60_000);

afterAll(async () => {
  for (const d of drivers.values()) d.qh.closeAll();
  for (const h of hosts()) await destroyQemuGuests(h);
  await rm(root, { recursive: true, force: true });
});

describe('QEMU destination checks', () => {
  it('describes the guest with the spec that travels with it, on shared storage', () => {
    expect(instance).toMatchObject({ hypervisorType: 'QEMU', storage: 'shared', powerState: 'Running', memoryBytes: 64 * 2 ** 20 });
    expect(instance.qemu.spec.disks).toHaveLength(1);
  });

  it('refuses an older destination QEMU: DestinationHypervisorTooOld', async () => {
    const { migration } = driver(hosts({ qb: { reportedVersion: '6.0.0' } }), 'qb');
    await expect(migration.checkCanLiveMigrateDestination({ instance, sourceHost: source, blockMigration: false })).rejects.toMatchObject({ type: 'DestinationHypervisorTooOld' });
  });

  it('refuses another CPU model: InvalidCPUInfo', async () => {
    const { migration } = driver(hosts({ qb: { cpuModel: 'Haswell' } }), 'qb');
    await expect(migration.checkCanLiveMigrateDestination({ instance, sourceHost: source, blockMigration: false })).rejects.toMatchObject({ type: 'InvalidCPUInfo' });
  });

  it('refuses a Xen instance: InvalidHypervisorType with both types named', async () => {
    const { qemu: _qemu, hypervisorType: _type, ...xenLike } = instance;
    const { migration } = driver(hosts(), 'qb');
    const refusal = migration.checkCanLiveMigrateDestination({ instance: xenLike, sourceHost: { name: 'xen-a', pool: 'x' }, blockMigration: false });
    await expect(refusal).rejects.toMatchObject({ type: 'InvalidHypervisorType' });
    await expect(refusal).rejects.toThrow(/The supplied hypervisor type of is invalid\..*xen.*QEMU/);
  });

  it('refuses a guest larger than the free memory', async () => {
    const { migration } = driver(hosts({ qb: { memoryMiB: 32 } }), 'qb');
    await expect(migration.checkCanLiveMigrateDestination({ instance, sourceHost: source, blockMigration: false })).rejects.toMatchObject({ type: 'MigrationPreCheckError' });
  });

  it('probes shared storage as Nova does: seen from a host of the pool, refused across pools without block migration', async () => {
    const qa = agentOf('qa');
    // qb shares qa's images directory: its probe file is visible, the check passes (and leaves qb waiting with -incoming).
    const shared = await agentOf('qb').migration.checkCanLiveMigrateDestination({ instance, sourceHost: source, blockMigration: false });
    expect(shared.networkRef).toMatch(/^tcp:127\.0\.0\.1:\d+$/);
    await qa.migration.assertCanMigrate({ instanceUuid: instance.uuid, destination: shared, blockMigration: false, token: null, samePool: true });
    await agentOf('qb').migration.rollbackLiveMigrationAtDestination({ instanceUuid: instance.uuid });
    // qc has its own images directory: its probe is not seen from qa.
    const apart = await agentOf('qc').migration.checkCanLiveMigrateDestination({ instance, sourceHost: source, blockMigration: false });
    await expect(qa.migration.assertCanMigrate({ instanceUuid: instance.uuid, destination: apart, blockMigration: false, token: null, samePool: false })).rejects.toMatchObject({
      type: 'InvalidSharedStorage',
    });
    expect(await agentOf('qc').migration.rollbackLiveMigrationAtDestination({ instanceUuid: instance.uuid })).toEqual({ removed: true });
  }, 60_000);

  it('ends a destination no migration came to (a candidate that was not chosen)', async () => {
    const qb = agentOf('qb');
    await qb.migration.checkCanLiveMigrateDestination({ instance, sourceHost: source, blockMigration: false });
    expect(await qb.qh.running(instance.uuid)).toBe(true);
    // Younger than the bound: kept.
    expect(await qb.migration.reapStaleIncoming()).toEqual([]);
    expect(await qb.migration.reapStaleIncoming(0)).toEqual([instance.uuid]);
    expect(await qb.qh.running(instance.uuid)).toBe(false);
    // The source guest is untouched.
    expect(await agentOf('qa').qh.running(instance.uuid)).toBe(true);
  }, 60_000);
});
