// Flavors, Nova's resize / migrate / confirmResize / revertResize, the servers' RESIZE and
// VERIFY_RESIZE states, os-migrations with resizes, and ferry's /v1/cold-migrations, on the fake
// service (test/e2e/openstack-resize.test.ts drives the same through the real stack).
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../lib/config';
import { novaMigrationId } from '../../workflows/definitions';
import { FakeFerryService, VM1, VM2, VM_HALTED } from './fake-service';
import { READ, asOperator, asRead, nova, serverPerTest } from './helpers';

const server = serverPerTest();
const GiB = 2 ** 30;

const action = (app: Awaited<ReturnType<typeof server>>['app'], id: string, body: unknown, version = '2.80') =>
  app.inject({ method: 'POST', url: `/v2.1/servers/${id}/action`, headers: nova(version), payload: body as object });

describe('temporal.yaml flavors and the resize confirm window', () => {
  it('validates each flavor, refuses duplicate ids and names, defaults the window to 0 (off)', () => {
    const hosts = [{ name: 'xen-a', pool: 'pool-1', xenapiUrl: 'http://127.0.0.1:1/', passwordEnv: 'P' }];
    const parsed = parseConfig({ hosts, flavors: [{ id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 1 }] });
    expect(parsed.flavors).toEqual([{ id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 1 }]);
    expect(parsed.migration.resizeConfirmWindowSeconds).toBe(0);
    expect(parseConfig({ hosts }).flavors).toEqual([]);
    const bad = () =>
      parseConfig({
        hosts,
        migration: { resizeConfirmWindowSeconds: -1 },
        flavors: [
          { id: '1', name: 'a', vcpus: 1, ram: 512, disk: 1 },
          { id: '1', name: 'a', vcpus: 0, ram: 512, disk: 1, colour: 'red' },
          { id: 'a/b', name: 'c', vcpus: 1, ram: 512, disk: -1 },
        ],
      });
    expect(bad).toThrow(/flavors\[1\]\.vcpus: Too small/);
    expect(bad).toThrow(/flavors\[1\]: Unrecognized key: "colour"/);
    expect(bad).toThrow(/flavors\[2\]\.id: only letters, digits/);
    expect(bad).toThrow(/flavors\[2\]\.disk/);
    expect(bad).toThrow(/migration\.resizeConfirmWindowSeconds/);
    const duplicates = () => parseConfig({ hosts, flavors: [{ id: '1', name: 'a', vcpus: 1, ram: 1, disk: 0 }, { id: '1', name: 'a', vcpus: 1, ram: 2, disk: 0 }] });
    expect(duplicates).toThrow(/flavors\[1\]\.id: duplicate flavor id "1"/);
    expect(duplicates).toThrow(/flavors\[1\]\.name: duplicate flavor name "a"/);
  });

  it("the project's temporal.yaml has Nova's classic flavors and the window off", () => {
    const config = loadConfig();
    expect(config.flavors.map((f) => f.name)).toEqual(['m1.tiny', 'm1.small', 'm1.medium', 'm1.large', 'm1.xlarge']);
    expect(config.migration.resizeConfirmWindowSeconds).toBe(0);
  });
});

describe('flavors', () => {
  it("lists them brief and in detail with each microversion's fields, sorted by flavorid", async () => {
    const { app } = server();
    const brief = await app.inject({ method: 'GET', url: '/v2.1/flavors', headers: { ...nova('2.1', READ), host: 'ferry.example:8774' } });
    expect(brief.statusCode).toBe(200);
    expect(brief.json()).toEqual({
      flavors: [
        { id: '1', name: 'm1.tiny', links: [{ rel: 'self', href: 'http://ferry.example:8774/v2.1/flavors/1' }, { rel: 'bookmark', href: 'http://ferry.example:8774/flavors/1' }] },
        expect.objectContaining({ id: '2', name: 'm1.small' }),
        expect.objectContaining({ id: '3', name: 'm1.medium' }),
        expect.objectContaining({ id: 'large-4', name: 'm1.large' }),
      ],
    });
    expect(Object.keys(brief.json().flavors[0]).sort()).toEqual(['id', 'links', 'name']);
    const old = (await app.inject({ method: 'GET', url: '/v2.1/flavors/detail', headers: nova('2.1', READ) })).json().flavors[1];
    expect(old).toEqual({
      id: '2',
      name: 'm1.small',
      ram: 2048,
      disk: 10,
      swap: '',
      'OS-FLV-EXT-DATA:ephemeral': 0,
      'OS-FLV-DISABLED:disabled': false,
      vcpus: 2,
      'os-flavor-access:is_public': true,
      rxtx_factor: 1,
      links: expect.any(Array),
    });
    const v255 = (await app.inject({ method: 'GET', url: '/v2.1/flavors/2', headers: nova('2.55', READ) })).json().flavor;
    expect(v255.description).toBe("the fake VMs' size");
    expect(v255.extra_specs).toBeUndefined();
    const v261 = (await app.inject({ method: 'GET', url: '/v2.1/flavors/1', headers: nova('2.61', READ) })).json().flavor;
    expect(v261).toMatchObject({ description: null, extra_specs: {}, swap: '' });
    expect((await app.inject({ method: 'GET', url: '/v2.1/flavors/1', headers: nova('2.75', READ) })).json().flavor.swap).toBe(0);
    expect((await app.inject({ method: 'GET', url: '/v2.1/flavors', headers: nova('2.55', READ) })).json().flavors[0].description).toBeNull();
  });

  it('filters by minRam and minDisk, pages with limit and marker, answers 404 and 400 as Nova', async () => {
    const { app } = server();
    const get = (url: string) => app.inject({ method: 'GET', url, headers: nova('2.80', READ) });
    expect((await get('/v2.1/flavors?minRam=4096')).json().flavors.map((f: { id: string }) => f.id)).toEqual(['3', 'large-4']);
    expect((await get('/v2.1/flavors/detail?minDisk=20&sort_key=memory_mb&sort_dir=desc')).json().flavors.map((f: { id: string }) => f.id)).toEqual(['large-4', '3']);
    const first = (await get('/v2.1/flavors?limit=2')).json();
    expect(first.flavors.map((f: { id: string }) => f.id)).toEqual(['1', '2']);
    expect(first.flavors_links[0]).toMatchObject({ rel: 'next', href: expect.stringContaining('marker=2') });
    expect((await get('/v2.1/flavors?limit=2&marker=2')).json().flavors.map((f: { id: string }) => f.id)).toEqual(['3', 'large-4']);
    expect((await get('/v2.1/flavors?is_public=None')).json().flavors).toHaveLength(4);
    expect((await get('/v2.1/flavors?is_public=false')).json().flavors).toHaveLength(0);
    const missing = await get('/v2.1/flavors/42');
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ itemNotFound: { code: 404, message: 'Flavor 42 could not be found.' } });
    expect((await get('/v2.1/flavors?minRam=lots')).json().badRequest.message).toMatch(/^Invalid input for query parameters: minRam: must be an integer/);
    expect((await get('/v2.1/flavors?is_public=maybe')).statusCode).toBe(400);
    // Nova answers 400 to a marker that names nothing; ferry 404, as os-migrations (the document's contract).
    expect((await get('/v2.1/flavors?marker=nope')).json()).toEqual({ itemNotFound: { code: 404, message: 'Marker nope could not be found.' } });
    expect((await get('/v2.1/flavors?colour=red')).statusCode).toBe(400);
    // No extra specs (openstackclient's flavor show asks below 2.61).
    expect((await get('/v2.1/flavors/3/os-extra_specs')).json()).toEqual({ extra_specs: {} });
    expect((await get('/v2.1/flavors/3/os-extra_specs/hw:cpu_policy')).json()).toEqual({
      itemNotFound: { code: 404, message: 'Flavor 3 has no extra specs with key hw:cpu_policy.' },
    });
    expect((await get('/v2.1/flavors/42/os-extra_specs')).json().itemNotFound.message).toBe('Flavor 42 could not be found.');
  });
});

describe('resize and migrate (Nova server actions)', () => {
  it('resize starts the coldMigration workflow with the resolved flavor (by id, link or name); migrate with a host from 2.56', async () => {
    const { app, service } = server();
    const resized = await action(app, VM1, { resize: { flavorRef: '3' } });
    expect(resized.statusCode).toBe(202);
    expect(resized.body).toBe('');
    expect(service.coldMigrations.started[0]).toMatchObject({
      instanceUuid: VM1,
      flavor: { id: '3', name: 'm1.medium', vcpus: 2, ram: 4096, disk: 20 },
      host: null,
      autoConfirmSeconds: 0,
      requestedBy: { userId: 'operator', projectId: 'ferry' },
    });
    expect((await action(app, VM2, { resize: { flavorRef: 'http://ferry.example/v2.1/flavors/large-4' } })).statusCode).toBe(202);
    expect(service.coldMigrations.started[1]?.flavor).toMatchObject({ id: 'large-4' });
    // A halted VM can be resized (vm_state stopped), by flavor name too.
    expect((await action(app, VM_HALTED, { resize: { flavorRef: 'm1.large' } })).statusCode).toBe(202);

    const other = server(new FakeFerryService());
    expect((await action(other.app, VM1, { migrate: { host: 'xen-b' } }, '2.56')).statusCode).toBe(202);
    expect(other.service.coldMigrations.started[0]).toMatchObject({ instanceUuid: VM1, flavor: null, host: 'xen-b' });
    // Below 2.56 Nova ignores what migrate's body says.
    expect((await action(other.app, VM2, { migrate: { host: 'xen-a', colour: 1 } }, '2.55')).statusCode).toBe(202);
    expect(other.service.coldMigrations.started[1]).toMatchObject({ instanceUuid: VM2, host: null });
  });

  it("refuses with Nova's codes and messages: same flavor, smaller disk, unknown flavor or host, current host, bad body", async () => {
    const { app } = server();
    const expectError = async (res: Awaited<ReturnType<typeof action>>, status: number, fault: string, message: string | RegExp) => {
      expect(res.statusCode).toBe(status);
      const body = res.json();
      expect(Object.keys(body)).toEqual([fault]);
      if (typeof message === 'string') expect(body[fault].message).toBe(message);
      else expect(body[fault].message).toMatch(message);
    };
    await expectError(await action(app, VM1, { resize: { flavorRef: '2' } }), 400, 'badRequest', 'When resizing, instances must change flavor!');
    await expectError(await action(app, VM1, { resize: { flavorRef: 1 } }), 400, 'badRequest', 'Server disk was unable to be resized because: Unable to resize disk down.');
    await expectError(await action(app, VM1, { resize: { flavorRef: '99' } }), 400, 'badRequest', 'Flavor 99 could not be found.');
    await expectError(await action(app, VM1, { resize: {} }), 400, 'badRequest', /^Invalid input for field\/attribute resize\. flavorRef/);
    await expectError(await action(app, VM1, { migrate: { host: 'xen-z' } }, '2.56'), 400, 'badRequest', 'Compute host xen-z could not be found.');
    await expectError(await action(app, VM1, { migrate: { host: 'xen-a' } }, '2.56'), 400, 'badRequest', 'Cannot migrate to the host where the server exists.');
    await expectError(await action(app, VM1, { migrate: { host: 'xen-b', x: 1 } }, '2.56'), 400, 'badRequest', /^Invalid input for field\/attribute migrate/);
    await expectError(await action(app, '99999999-9999-4999-8999-999999999999', { resize: { flavorRef: '3' } }), 404, 'itemNotFound', 'Instance 99999999-9999-4999-8999-999999999999 could not be found.');
    await expectError(await action(app, VM1, { rebuild: {} }), 400, 'badRequest', 'There is no such action: rebuild');
    const asReader = await app.inject({ method: 'POST', url: `/v2.1/servers/${VM1}/action`, headers: nova('2.80', READ), payload: { resize: { flavorRef: '3' } } });
    expect(asReader.statusCode).toBe(403);
  });

  it("409 names the vm_state or task_state that forbids the action, as Nova's check_instance_state", async () => {
    const { app, service } = server();
    service.cluster.hosts[0]!.instances[0]!.powerState = 'Paused' as never;
    expect((await action(app, VM1, { resize: { flavorRef: '3' } })).json()).toEqual({
      conflictingRequest: { code: 409, message: `Cannot 'resize' instance ${VM1} while it is in vm_state paused` },
    });
    // A live migration runs: task_state migrating.
    await service.startMigration({ instanceUuid: VM2, blockMigration: 'auto', force: false, host: null, options: {} });
    expect((await action(app, VM2, { migrate: null })).json().conflictingRequest.message).toBe(`Cannot 'migrate' instance ${VM2} while it is in task_state migrating`);
    // A resize runs: a second one, a live migration, a confirm are refused.
    expect((await action(app, VM_HALTED, { resize: { flavorRef: '3' } })).statusCode).toBe(202);
    const run = service.coldMigrations.runs[0]!;
    service.coldMigrations.set(run.uuid, { status: 'migrating', step: 'transferBase' });
    expect((await action(app, VM_HALTED, { migrate: null })).json().conflictingRequest.message).toBe(
      `Cannot 'migrate' instance ${VM_HALTED} while it is in task_state resize_migrating`,
    );
    expect((await action(app, VM_HALTED, { confirmResize: null })).json().conflictingRequest.message).toBe(
      `Cannot 'confirmResize' instance ${VM_HALTED} while it is in vm_state stopped`,
    );
    const live = await action(app, VM_HALTED, { 'os-migrateLive': { host: null, block_migration: 'auto' } });
    expect(live.json().conflictingRequest.message).toBe(`Cannot 'os-migrateLive' instance ${VM_HALTED} while it is in task_state resize_migrating`);
    // No resize at all: confirm and revert name the active state.
    const { app: fresh } = server(new FakeFerryService());
    expect((await action(fresh, VM1, { revertResize: null })).json()).toEqual({
      conflictingRequest: { code: 409, message: `Cannot 'revertResize' instance ${VM1} while it is in vm_state active` },
    });
  });

  it('servers show RESIZE with the task state, then VERIFY_RESIZE on the destination; confirm is 204, revert 202', async () => {
    const { app, service } = server();
    expect((await action(app, VM1, { resize: { flavorRef: '3' } })).statusCode).toBe(202);
    const run = service.coldMigrations.runs[0]!;
    const show = async () => (await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}`, headers: nova('2.80', READ) })).json().server;
    expect(await show()).toMatchObject({ status: 'RESIZE', 'OS-EXT-STS:task_state': 'resize_prep', 'OS-EXT-STS:vm_state': 'active', 'OS-EXT-SRV-ATTR:host': 'xen-a' });
    service.coldMigrations.set(run.uuid, { status: 'migrating', step: 'shutdown', sourceHost: 'xen-a', destHost: 'xen-b' });
    expect(await show()).toMatchObject({ status: 'RESIZE', 'OS-EXT-STS:task_state': 'resize_migrating' });
    service.coldMigrations.set(run.uuid, { status: 'post-migrating', step: 'finishMigration' });
    expect(await show()).toMatchObject({ status: 'RESIZE', 'OS-EXT-STS:task_state': 'resize_finish' });

    // Finished: the destination's new VM (4 GiB, 20 GiB) is the server, on xen-b, and is not listed on its own.
    const DEST = '44444444-4444-4444-8444-444444444444';
    const source = service.cluster.hosts[0]!.instances[0]!;
    source.powerState = 'Halted';
    service.cluster.hosts[1]!.instances.push({ ...source, uuid: DEST, name: 'web-1-resized', host: 'xen-b', powerState: 'Running', memoryBytes: 4 * GiB, diskBytes: 20 * GiB });
    service.coldMigrations.set(run.uuid, { status: 'finished', step: 'verifyResize', destInstanceUuid: DEST });
    expect(await show()).toMatchObject({
      id: VM1,
      name: 'web-1',
      status: 'VERIFY_RESIZE',
      'OS-EXT-STS:vm_state': 'resized',
      'OS-EXT-STS:task_state': null,
      'OS-EXT-STS:power_state': 1,
      'OS-EXT-SRV-ATTR:host': 'xen-b',
      flavor: { vcpus: 2, ram: 4096, disk: 20, original_name: 'm1.medium' },
    });
    const listed = (await app.inject({ method: 'GET', url: '/v2.1/servers/detail', headers: nova('2.80', READ) })).json().servers;
    expect(listed.map((s: { id: string }) => s.id)).not.toContain(DEST);
    expect(listed.find((s: { id: string }) => s.id === VM1)).toMatchObject({ status: 'VERIFY_RESIZE', 'OS-EXT-SRV-ATTR:host': 'xen-b' });
    expect((await app.inject({ method: 'GET', url: '/v2.1/servers/detail?status=verify_resize', headers: nova('2.80', READ) })).json().servers).toHaveLength(1);

    const confirmed = await action(app, VM1, { confirmResize: null });
    expect(confirmed.statusCode).toBe(204);
    expect(service.coldMigrations.runs[0]!.status).toBe('confirming');
    expect(await show()).toMatchObject({ status: 'VERIFY_RESIZE', 'OS-EXT-STS:task_state': 'resize_confirming' });
    // Nova refuses a second confirm while it confirms (task_state); ferry's /v1 answers the same view.
    expect((await action(app, VM1, { confirmResize: null })).json().conflictingRequest.message).toBe(
      `Cannot 'confirmResize' instance ${VM1} while it is in task_state resize_confirming`,
    );
    const again = await app.inject({ method: 'POST', url: `/v1/cold-migrations/${run.uuid}/confirm`, headers: asOperator });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ uuid: run.uuid, status: 'confirming' });
    // Confirmed: the server is the new VM now.
    service.coldMigrations.set(run.uuid, { status: 'confirmed', step: 'done' });
    expect(await show()).toMatchObject({ id: VM1, status: 'ACTIVE', 'OS-EXT-SRV-ATTR:host': 'xen-b', 'OS-EXT-STS:task_state': null });

    // Revert: 202 and REVERT_RESIZE.
    const other = server(new FakeFerryService());
    await action(other.app, VM2, { migrate: null });
    const run2 = other.service.coldMigrations.runs[0]!;
    other.service.coldMigrations.set(run2.uuid, { status: 'finished', step: 'verifyResize', destHost: 'xen-a' });
    const reverted = await action(other.app, VM2, { revertResize: null });
    expect(reverted.statusCode).toBe(202);
    const shown = (await other.app.inject({ method: 'GET', url: `/v2.1/servers/${VM2}`, headers: nova('2.80', READ) })).json().server;
    expect(shown).toMatchObject({ status: 'REVERT_RESIZE', 'OS-EXT-STS:task_state': 'resize_reverting', 'OS-EXT-STS:vm_state': 'resized' });
  });

  it('a server keeps its id after a confirmed resize: the new VM is shown as it, and the next action addresses the new VM', async () => {
    const { app, service } = server();
    await action(app, VM1, { resize: { flavorRef: '3' } });
    const run = service.coldMigrations.runs[0]!;
    const NEW_VM = '55555555-5555-4555-8555-555555555555';
    // Confirmed: the source VM is gone, the VM the resize created runs on xen-b.
    const source = service.cluster.hosts[0]!.instances.shift()!;
    service.cluster.hosts[1]!.instances.push({ ...source, uuid: NEW_VM, host: 'xen-b', memoryBytes: 4 * GiB, diskBytes: 20 * GiB });
    service.coldMigrations.set(run.uuid, { status: 'confirmed', step: 'done', sourceHost: 'xen-a', destHost: 'xen-b', destInstanceUuid: NEW_VM });
    const shown = (await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}`, headers: nova('2.80', READ) })).json().server;
    expect(shown).toMatchObject({ id: VM1, name: 'web-1', status: 'ACTIVE', 'OS-EXT-SRV-ATTR:host': 'xen-b', flavor: { original_name: 'm1.medium' } });
    const ids = (await app.inject({ method: 'GET', url: '/v2.1/servers', headers: nova('2.80', READ) })).json().servers.map((s: { id: string }) => s.id);
    expect(ids).toContain(VM1);
    expect(ids).not.toContain(NEW_VM);
    const rows = (await app.inject({ method: 'GET', url: '/v2.1/os-migrations', headers: nova('2.80', READ) })).json().migrations;
    expect(rows.map((m: { instance_uuid: string }) => m.instance_uuid)).toEqual([VM1]);
    // A live migration of the server is the new VM's, listed under the server.
    expect((await action(app, VM1, { 'os-migrateLive': { host: null, block_migration: 'auto' } })).statusCode).toBe(202);
    expect(service.started[0]).toMatchObject({ instanceUuid: NEW_VM });
    const live = (await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/migrations`, headers: nova('2.80', READ) })).json().migrations;
    expect(live).toEqual([expect.objectContaining({ server_uuid: VM1, status: 'accepted' })]);
    service.migrations[0]!.status = 'completed';
    // Resizing the server again resizes the new VM (to m1.large's size).
    expect((await action(app, VM1, { resize: { flavorRef: 'large-4' } })).statusCode).toBe(202);
    expect(service.coldMigrations.started[1]).toMatchObject({ instanceUuid: NEW_VM, flavor: { id: 'large-4' } });
  });

  it('os-instance-actions lists resize or migrate, then confirmResize or revertResize, each shown by its request id', async () => {
    const { app, service } = server();
    await action(app, VM1, { resize: { flavorRef: '3' } });
    const run = service.coldMigrations.runs[0]!;
    const list = async () => (await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/os-instance-actions`, headers: nova('2.80', READ) })).json().instanceActions;
    expect(await list()).toEqual([expect.objectContaining({ action: 'resize', request_id: `req-${run.uuid}`, instance_uuid: VM1, user_id: 'operator', message: null })]);
    service.coldMigrations.set(run.uuid, { status: 'confirmed', step: 'done', updatedAt: '2026-11-24T07:05:00.000Z' });
    const actions = await list();
    expect(actions.map((a: { action: string }) => a.action)).toEqual(['confirmResize', 'resize']);
    const confirm = actions[0] as { request_id: string };
    expect(confirm.request_id).toMatch(/^req-[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const shown = await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/os-instance-actions/${confirm.request_id}`, headers: nova('2.80', READ) });
    expect(shown.json().instanceAction).toMatchObject({ action: 'confirmResize', request_id: confirm.request_id, events: [] });
    expect((await list())[0].request_id).toBe(confirm.request_id);
  });

  it('os-migrations lists resizes and cold migrations with their type, filters by migration_type and status', async () => {
    const { app, service } = server();
    await action(app, VM1, { resize: { flavorRef: '3' } });
    await action(app, VM2, { migrate: null });
    const resize = service.coldMigrations.runs.find((r) => r.instanceUuid === VM1)!;
    service.coldMigrations.set(resize.uuid, { status: 'finished', sourceHost: 'xen-a', destHost: 'xen-b', oldSize: { vcpus: 2, ramMiB: 2048, diskBytes: 10 * GiB } });
    await service.startMigration({ instanceUuid: VM_HALTED, blockMigration: 'auto', force: false, host: null, options: {} });
    const list = async (query = '') => (await app.inject({ method: 'GET', url: `/v2.1/os-migrations${query}`, headers: nova('2.80', READ) })).json().migrations;
    expect((await list()).map((m: { migration_type: string }) => m.migration_type).sort()).toEqual(['live-migration', 'migration', 'resize']);
    const resizes = await list('?migration_type=resize');
    expect(resizes).toEqual([
      expect.objectContaining({
        id: novaMigrationId(resize.uuid),
        uuid: resize.uuid,
        instance_uuid: VM1,
        status: 'finished',
        migration_type: 'resize',
        source_compute: 'xen-a',
        dest_compute: 'xen-b',
        old_instance_type_id: 2,
        new_instance_type_id: 3,
        user_id: 'operator',
      }),
    ]);
    expect(resizes[0].links).toBeUndefined();
    expect((await list('?migration_type=migration')).map((m: { instance_uuid: string }) => m.instance_uuid)).toEqual([VM2]);
    expect((await list('?status=finished')).map((m: { instance_uuid: string }) => m.instance_uuid)).toEqual([VM1]);
    expect((await list('?host=xen-b&migration_type=resize')).map((m: { instance_uuid: string }) => m.instance_uuid)).toEqual([VM1]);
    expect(await list('?migration_type=evacuation')).toEqual([]);
    const old = (await app.inject({ method: 'GET', url: '/v2.1/os-migrations?migration_type=resize', headers: nova('2.1', READ) })).json().migrations[0];
    expect(old.migration_type).toBeUndefined();
    expect(old.uuid).toBeUndefined();
  });
});

describe('/v1/cold-migrations', () => {
  it('starts, lists, shows (by id or instance), confirms and refuses a revert after a confirm', async () => {
    const { app, service } = server();
    const started = await app.inject({ method: 'POST', url: '/v1/cold-migrations', headers: asOperator, payload: { instanceUuid: VM1, flavor: 'm1.medium' } });
    expect(started.statusCode).toBe(202);
    const view = started.json();
    expect(view).toMatchObject({ instanceUuid: VM1, migrationType: 'resize', status: 'pre-migrating', newFlavor: { id: '3' } });
    expect(started.headers.location).toBe(`/v1/cold-migrations/${view.uuid}`);
    const cold = await app.inject({ method: 'POST', url: '/v1/cold-migrations', headers: asOperator, payload: { instanceUuid: VM2, host: 'xen-a' } });
    expect(cold.json()).toMatchObject({ migrationType: 'migration', destHost: 'xen-a', newFlavor: null });

    expect((await app.inject({ method: 'GET', url: `/v1/cold-migrations/${VM1}`, headers: asRead })).json().uuid).toBe(view.uuid);
    expect((await app.inject({ method: 'GET', url: `/v1/cold-migrations/${view.uuid}`, headers: asRead })).json().instanceUuid).toBe(VM1);
    const all = (await app.inject({ method: 'GET', url: '/v1/cold-migrations?type=resize', headers: asRead })).json().coldMigrations;
    expect(all.map((m: { instanceUuid: string }) => m.instanceUuid)).toEqual([VM1]);
    expect((await app.inject({ method: 'GET', url: '/v1/cold-migrations/99999999-9999-4999-8999-999999999999', headers: asRead })).statusCode).toBe(404);

    const early = await app.inject({ method: 'POST', url: `/v1/cold-migrations/${view.uuid}/confirm`, headers: asOperator });
    expect(early.statusCode).toBe(409);
    expect(early.json().error).toMatchObject({ code: 'conflict', message: 'cannot confirm: the migration is pre-migrating, not finished yet' });
    service.coldMigrations.set(view.uuid, { status: 'finished', step: 'verifyResize', downtimeMs: 1234 });
    const confirmed = await app.inject({ method: 'POST', url: `/v1/cold-migrations/${view.uuid}/confirm`, headers: asOperator });
    expect(confirmed.json()).toMatchObject({ status: 'confirming', downtimeMs: 1234 });
    const revert = await app.inject({ method: 'POST', url: `/v1/cold-migrations/${view.uuid}/revert`, headers: asOperator });
    expect(revert.statusCode).toBe(409);
    expect(revert.json().error.message).toBe('cannot revert: the resize was already confirmed');
  });

  it('refuses out of 400: unknown flavor or host 404, same flavor or current host 409; read token 403', async () => {
    const { app } = server();
    const start = (payload: object, headers = asOperator) => app.inject({ method: 'POST', url: '/v1/cold-migrations', headers, payload });
    expect((await start({ instanceUuid: VM1, flavor: 'm9.huge' })).json().error).toMatchObject({ code: 'not_found', message: 'Flavor m9.huge could not be found.' });
    expect((await start({ instanceUuid: VM1, host: 'xen-z' })).statusCode).toBe(404);
    expect((await start({ instanceUuid: VM1, flavor: '2' })).json().error).toMatchObject({ code: 'conflict', message: 'When resizing, instances must change flavor!' });
    expect((await start({ instanceUuid: VM1, host: 'xen-a' })).statusCode).toBe(409);
    expect((await start({ instanceUuid: VM1, flavor: '3', colour: 'red' })).statusCode).toBe(400);
    expect((await start({ instanceUuid: VM1, flavor: '3' }, asRead)).statusCode).toBe(403);
  });
});
