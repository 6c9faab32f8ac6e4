// The Nova-compatible subset: version documents, microversion headers and 406, servers, os-migrateLive
// per microversion, server migrations (2.22 to 2.80 fields and routes), os-migrations, Nova error bodies.
import { describe, expect, it } from 'vitest';
import { novaMigrationId } from '../../workflows/definitions';
import { VM1, VM2, VM_HALTED } from './fake-service';
import { READ, nova, serverPerTest } from './helpers';

const server = serverPerTest();

const migrateLive = (args: unknown) => ({ 'os-migrateLive': args });

describe('versions', () => {
  it('publishes the version documents with the microversion range', async () => {
    const { app } = server();
    const root = await app.inject({ method: 'GET', url: '/', headers: { host: 'ferry.example:8774' } });
    expect(root.json().versions).toEqual([
      expect.objectContaining({ id: 'v2.1', status: 'CURRENT', version: '2.80', min_version: '2.1', links: [{ rel: 'self', href: 'http://ferry.example:8774/v2.1/' }] }),
    ]);
    const v21 = await app.inject({ method: 'GET', url: '/v2.1' });
    expect(v21.json().version).toMatchObject({ id: 'v2.1', version: '2.80', min_version: '2.1', 'media-types': [expect.any(Object)] });
    expect(v21.headers['openstack-api-version']).toBe('compute 2.1');
  });

  it('negotiates: headers on every answer, latest, 406 computeFault, 400 for a malformed version', async () => {
    const { app } = server();
    const latest = await app.inject({ method: 'GET', url: '/v2.1/servers', headers: nova('latest', READ) });
    expect(latest.headers['openstack-api-version']).toBe('compute 2.80');
    expect(latest.headers['x-openstack-nova-api-version']).toBe('2.80');
    expect(latest.headers.vary).toBe('OpenStack-API-Version, X-OpenStack-Nova-API-Version');
    expect(latest.headers['x-openstack-request-id']).toMatch(/^req-[0-9a-f-]{36}$/);
    expect(latest.headers['x-compute-request-id']).toBe(latest.headers['x-openstack-request-id']);
    const legacy = await app.inject({ method: 'GET', url: '/v2.1/servers', headers: { 'x-auth-token': READ, 'x-openstack-nova-api-version': '2.42' } });
    expect(legacy.headers['x-openstack-nova-api-version']).toBe('2.42');
    const tooNew = await app.inject({ method: 'GET', url: '/v2.1/servers', headers: nova('2.81', READ) });
    expect(tooNew.statusCode).toBe(406);
    expect(tooNew.json()).toEqual({ computeFault: { code: 406, message: 'Version 2.81 is not supported by the API. Minimum is 2.1 and maximum is 2.80.' } });
    const malformed = await app.inject({ method: 'GET', url: '/v2.1/servers', headers: nova('two', READ) });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().badRequest.code).toBe(400);
    // The root version document is not microversioned.
    expect((await app.inject({ method: 'GET', url: '/', headers: { 'openstack-api-version': 'compute 9.9' } })).statusCode).toBe(200);
  });
});

describe('servers', () => {
  it('lists servers, filters by name, shows details, MIGRATING while a migration runs, ERROR after one failed so', async () => {
    const { app, service } = server();
    const list = (await app.inject({ method: 'GET', url: '/v2.1/servers', headers: nova('2.1', READ) })).json().servers;
    expect(list.map((s: { name: string }) => s.name)).toEqual(['web-1', 'db-old', 'web-2']);
    expect(Object.keys(list[0]).sort()).toEqual(['id', 'links', 'name']);
    const byName = (await app.inject({ method: 'GET', url: '/v2.1/servers/detail?name=web-2', headers: nova('2.1', READ) })).json().servers;
    expect(byName).toHaveLength(1);
    expect(byName[0]).toMatchObject({
      id: VM2,
      status: 'ACTIVE',
      'OS-EXT-SRV-ATTR:host': 'xen-b',
      'OS-EXT-SRV-ATTR:hypervisor_hostname': 'xen-b',
      'OS-EXT-STS:task_state': null,
      'OS-EXT-STS:power_state': 1,
      'OS-EXT-STS:vm_state': 'active',
    });
    const halted = (await app.inject({ method: 'GET', url: `/v2.1/servers/${VM_HALTED}`, headers: nova('2.1', READ) })).json().server;
    expect(halted).toMatchObject({ status: 'SHUTOFF', 'OS-EXT-STS:power_state': 4, 'OS-EXT-STS:vm_state': 'stopped' });

    const action = await app.inject({ method: 'POST', url: `/v2.1/servers/${VM1}/action`, headers: nova('2.80'), payload: migrateLive({ host: null, block_migration: 'auto' }) });
    expect(action.statusCode).toBe(202);
    expect(action.body).toBe('');
    const migrating = (await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}`, headers: nova('2.80', READ) })).json().server;
    expect(migrating).toMatchObject({ status: 'MIGRATING', 'OS-EXT-STS:task_state': 'migrating' });
    const filtered = (await app.inject({ method: 'GET', url: '/v2.1/servers/detail?status=migrating', headers: nova('2.80', READ) })).json().servers;
    expect(filtered.map((s: { id: string }) => s.id)).toEqual([VM1]);

    // ERROR while the latest migration ended in error; a later migration supersedes it.
    service.migrations[0]!.status = 'error';
    const broken = (await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}`, headers: nova('2.80', READ) })).json().server;
    expect(broken).toMatchObject({ status: 'ERROR', 'OS-EXT-STS:vm_state': 'error', 'OS-EXT-STS:task_state': null });

    const missing = await app.inject({ method: 'GET', url: '/v2.1/servers/nope', headers: nova('2.1', READ) });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ itemNotFound: { code: 404, message: 'Instance nope could not be found.' } });
    expect(missing.headers['openstack-api-version']).toBe('compute 2.1'); // errors name the version too
  });
});

describe('os-migrateLive', () => {
  const post = (app: ReturnType<typeof server>['app'], version: string, body: unknown, id = VM1) =>
    app.inject({ method: 'POST', url: `/v2.1/servers/${id}/action`, headers: nova(version), payload: body as object });

  it('validates the body of each microversion', async () => {
    const { app, service } = server();
    // 2.1 to 2.24: disk_over_commit required, no "auto".
    expect((await post(app, '2.1', migrateLive({ host: null, block_migration: false }))).statusCode).toBe(400);
    expect((await post(app, '2.24', migrateLive({ host: null, block_migration: 'auto', disk_over_commit: false }))).statusCode).toBe(400);
    expect((await post(app, '2.1', migrateLive({ host: 'xen-b', block_migration: 'True', disk_over_commit: false }))).statusCode).toBe(202);
    expect(service.started.at(-1)).toMatchObject({ instanceUuid: VM1, host: 'xen-b', blockMigration: true, force: false });
    service.migrations[0]!.status = 'completed';
    // 2.25: "auto", no disk_over_commit.
    expect((await post(app, '2.25', migrateLive({ host: null, block_migration: 'auto', disk_over_commit: false }))).statusCode).toBe(400);
    expect((await post(app, '2.25', migrateLive({ host: null, block_migration: 'auto', force: true }))).statusCode).toBe(400);
    // 2.30 to 2.67: force.
    const forced = await post(app, '2.30', migrateLive({ host: 'xen-b', block_migration: 'auto', force: true }));
    expect(forced.statusCode).toBe(202);
    expect(service.started.at(-1)).toMatchObject({ host: 'xen-b', blockMigration: 'auto', force: true });
    service.migrations[0]!.status = 'completed';
    // 2.68: force is gone again.
    const late = await post(app, '2.68', migrateLive({ host: null, block_migration: 'auto', force: false }));
    expect(late.statusCode).toBe(400);
    expect(late.json().badRequest.message).toContain('os-migrateLive');
  });

  it('answers Nova\'s errors: unknown action, unknown server, bad state, already migrating', async () => {
    const { app } = server();
    const unknown = await post(app, '2.80', { 'os-stop': null });
    expect(unknown.json()).toEqual({ badRequest: { code: 400, message: 'There is no such action: os-stop' } });
    const missing = await post(app, '2.80', migrateLive({ host: null, block_migration: 'auto' }), '44444444-4444-4444-8444-444444444444');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().itemNotFound.message).toBe('Instance 44444444-4444-4444-8444-444444444444 could not be found.');
    const halted = await post(app, '2.80', migrateLive({ host: null, block_migration: 'auto' }), VM_HALTED);
    expect(halted.json()).toEqual({ conflictingRequest: { code: 409, message: `Cannot 'os-migrateLive' instance ${VM_HALTED} while it is in vm_state stopped` } });
    expect((await post(app, '2.80', migrateLive({ host: null, block_migration: 'auto' }))).statusCode).toBe(202);
    const again = await post(app, '2.80', migrateLive({ host: null, block_migration: 'auto' }));
    expect(again.json().conflictingRequest.message).toBe(`Cannot 'os-migrateLive' instance ${VM1} while it is in task_state migrating`);
    const unknownHost = await post(app, '2.80', migrateLive({ host: 'xen-z', block_migration: 'auto' }), VM2);
    expect(unknownHost.json()).toEqual({ badRequest: { code: 400, message: 'Compute host xen-z could not be found.' } });
  });
});

describe('server migrations', () => {
  async function running() {
    const built = server();
    await built.app.inject({ method: 'POST', url: `/v2.1/servers/${VM1}/action`, headers: nova('2.80'), payload: migrateLive({ host: 'xen-b', block_migration: false }) });
    const m = built.service.migrations[0]!;
    Object.assign(m, {
      status: 'running',
      phase: 'precopy',
      memory_total_bytes: 1000,
      memory_processed_bytes: 400,
      memory_remaining_bytes: 600,
      disk_total_bytes: 0,
      disk_processed_bytes: 0,
      disk_remaining_bytes: 0,
    });
    return { ...built, m };
  }

  it('exists from 2.23, with the fields of each microversion', async () => {
    const { app, m } = await running();
    expect((await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/migrations`, headers: nova('2.22', READ) })).statusCode).toBe(404);
    const at23 = (await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/migrations`, headers: nova('2.23', READ) })).json().migrations;
    expect(at23).toHaveLength(1);
    expect(Object.keys(at23[0]).sort()).toEqual(
      [
        'created_at', 'dest_compute', 'dest_host', 'dest_node', 'disk_processed_bytes', 'disk_remaining_bytes', 'disk_total_bytes', 'id',
        'memory_processed_bytes', 'memory_remaining_bytes', 'memory_total_bytes', 'server_uuid', 'source_compute', 'source_node', 'status', 'updated_at',
      ].sort(),
    );
    expect(at23[0]).toMatchObject({ id: novaMigrationId(m.uuid), memory_processed_bytes: 400, created_at: '2026-11-24T07:00:00.000000' });
    const at59 = (await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/migrations/${m.id}`, headers: nova('2.59', READ) })).json().migration;
    expect(at59.uuid).toBe(m.uuid);
    expect(at59).not.toHaveProperty('user_id');
    const at80 = (await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/migrations/${m.id}`, headers: nova('2.80', READ) })).json().migration;
    expect(at80).toMatchObject({ user_id: 'operator', project_id: 'ferry' });
    const notFound = await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/migrations/12345`, headers: nova('2.80', READ) });
    expect(notFound.json()).toEqual({ itemNotFound: { code: 404, message: `In-progress live migration 12345 is not found for server ${VM1}.` } });
    const noServer = await app.inject({ method: 'GET', url: '/v2.1/servers/44444444-4444-4444-8444-444444444444/migrations', headers: nova('2.80', READ) });
    expect(noServer.statusCode).toBe(404);
  });

  it('aborts with DELETE (2.24+; queued and preparing only from 2.65), 409 with the workflow\'s reason', async () => {
    const { app, service, m } = await running();
    const url = `/v2.1/servers/${VM1}/migrations/${m.id}`;
    expect((await app.inject({ method: 'DELETE', url, headers: nova('2.23') })).statusCode).toBe(404);
    m.status = 'preparing';
    const early = await app.inject({ method: 'DELETE', url, headers: nova('2.24') });
    expect(early.json()).toEqual({
      badRequest: { code: 400, message: `Migration ${m.id} state of instance ${VM1} is preparing. Cannot abort live migration while the migration is in this state.` },
    });
    service.refuseAbort = 'cannot abort: past the point of no return (the VM runs on the destination)';
    const refused = await app.inject({ method: 'DELETE', url, headers: nova('2.65') });
    expect(refused.json()).toEqual({ conflictingRequest: { code: 409, message: service.refuseAbort } });
    service.refuseAbort = null;
    const ok = await app.inject({ method: 'DELETE', url, headers: nova('2.65') });
    expect(ok.statusCode).toBe(202);
    expect(ok.body).toBe('');
  });

  it('force-completes a running migration (2.22+)', async () => {
    const { app, service, m } = await running();
    const url = `/v2.1/servers/${VM1}/migrations/${m.id}/action`;
    expect((await app.inject({ method: 'POST', url, headers: nova('2.21'), payload: { force_complete: null } })).statusCode).toBe(404);
    expect((await app.inject({ method: 'POST', url, headers: nova('2.22'), payload: { force_complete: 1 } })).statusCode).toBe(400);
    expect((await app.inject({ method: 'POST', url, headers: nova('2.22'), payload: { force_complete: null } })).statusCode).toBe(202);
    expect(service.migrations[0]!.forceCompleteRequested).toBe(true);
    m.status = 'preparing';
    expect((await app.inject({ method: 'POST', url, headers: nova('2.22'), payload: { force_complete: null } })).json().badRequest.message).toContain('Cannot force complete');
  });
});

describe('os-migrations', () => {
  it('lists every migration with the fields of each microversion and filters safely', async () => {
    const { app, service } = server();
    await app.inject({ method: 'POST', url: `/v2.1/servers/${VM1}/action`, headers: nova('2.80'), payload: migrateLive({ host: null, block_migration: 'auto' }) });
    service.migrations[0]!.status = 'running';
    const at1 = (await app.inject({ method: 'GET', url: '/v2.1/os-migrations', headers: nova('2.1', READ) })).json().migrations;
    expect(Object.keys(at1[0]).sort()).toEqual(
      ['created_at', 'dest_compute', 'dest_host', 'dest_node', 'id', 'instance_uuid', 'new_instance_type_id', 'old_instance_type_id', 'source_compute', 'source_node', 'status', 'updated_at'].sort(),
    );
    const at23 = (await app.inject({ method: 'GET', url: '/v2.1/os-migrations', headers: nova('2.23', READ) })).json().migrations;
    expect(at23[0]).toMatchObject({ migration_type: 'live-migration', links: [{ rel: 'self' }, { rel: 'bookmark' }] });
    const at80 = (await app.inject({ method: 'GET', url: `/v2.1/os-migrations?instance_uuid=${VM1}&status=running&host=xen-a`, headers: nova('2.80', READ) })).json().migrations;
    expect(at80).toHaveLength(1);
    expect(at80[0]).toMatchObject({ uuid: expect.any(String), user_id: 'operator', project_id: 'ferry' });
    for (const filter of ["instance_uuid=x' OR 1=1", 'status=bogus', "host=xen-a'", 'migration_type=resize']) {
      const res = await app.inject({ method: 'GET', url: `/v2.1/os-migrations?${filter}`, headers: nova('2.80', READ) });
      expect(res.json(), filter).toEqual({ migrations: [] });
    }
    expect((await app.inject({ method: 'GET', url: '/v2.1/os-migrations?limit=-1', headers: nova('2.59', READ) })).statusCode).toBe(400);
  });
});
