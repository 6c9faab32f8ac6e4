// The Nova-compatible subset: version documents, microversion headers and 406, servers, os-migrateLive
// per microversion, server migrations (2.22 to 2.80 fields and routes), os-migrations, Nova error bodies.
import { describe, expect, it } from 'vitest';
import { novaMigrationId } from '../../workflows/definitions';
import { FakeFerryService, VM1, VM2, VM_HALTED } from './fake-service';
import { READ, nova, serverPerTest, testServer } from './helpers';

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

describe('os-migrations filters, each in its microversions', () => {
  /** Three migrations of three owners, a minute apart; the newest first. */
  const seeded = async () => {
    const built = server();
    const { app, service } = built;
    const owners = [
      { user: 'alice', project: 'p1', at: '2026-11-24T07:00:00.000Z' },
      { user: 'bob', project: 'p2', at: '2026-11-24T07:01:00.000Z' },
      { user: 'carol', project: 'p1', at: '2026-11-24T07:02:00.000Z' },
    ];
    for (const [i, o] of owners.entries()) {
      const vm = [VM1, VM2, VM1][i]!;
      const res = await app.inject({ method: 'POST', url: `/v2.1/servers/${vm}/action`, headers: nova('2.80'), payload: migrateLive({ host: null, block_migration: 'auto' }) });
      expect(res.statusCode).toBe(202);
      const m = service.migrations[0]!;
      Object.assign(m, { status: 'completed', user_id: o.user, project_id: o.project, created_at: o.at, updated_at: o.at });
    }
    const uuids = service.migrations.map((m) => m.uuid); // newest first: carol, bob, alice
    const list = async (query: string, version = '2.80') => {
      const res = await app.inject({ method: 'GET', url: `/v2.1/os-migrations${query}`, headers: nova(version, READ) });
      return { status: res.statusCode, body: res.json() };
    };
    const users = async (query: string, version = '2.80') => (await list(query, version)).body.migrations.map((m: { uuid?: string; id: number }) => uuids.indexOf(m.uuid ?? '') >= 0 ? ['carol', 'bob', 'alice'][uuids.indexOf(m.uuid ?? '')] : m.id);
    return { ...built, uuids, list, users };
  };

  it('2.80 filters by user_id and project_id; 2.59 to 2.79 refuse them naming them; below 2.59 they filter, as in Nova', async () => {
    const { list, users } = await seeded();
    expect(await users('')).toEqual(['carol', 'bob', 'alice']);
    expect(await users('?user_id=bob')).toEqual(['bob']);
    expect(await users('?project_id=p1')).toEqual(['carol', 'alice']);
    expect(await users('?project_id=p1&user_id=alice')).toEqual(['alice']);
    const refused = await list('?user_id=bob', '2.79');
    expect(refused.status).toBe(400);
    expect(refused.body.badRequest.message).toContain("'user_id' was unexpected");
    expect((await list('?project_id=p1', '2.59')).body.badRequest.message).toContain("'project_id' was unexpected");
    const old = await list('?user_id=bob', '2.58');
    expect(old.status).toBe(200);
    expect(old.body.migrations).toHaveLength(1);
  });

  it('2.59 pages with limit and marker and links the next page; below 2.59 both are ignored', async () => {
    const { list, users, uuids } = await seeded();
    const first = await list('?limit=2&user_id=');
    expect(first.status).toBe(200);
    expect((await users('?limit=2'))).toEqual(['carol', 'bob']);
    const page1 = (await list('?limit=2')).body;
    expect(page1.migrations_links).toEqual([{ rel: 'next', href: expect.stringContaining(`/v2.1/os-migrations?limit=2&marker=${uuids[1]}`) }]);
    expect(await users(`?limit=2&marker=${uuids[1]}`)).toEqual(['alice']);
    expect((await list(`?limit=2&marker=${uuids[1]}`)).body.migrations_links).toBeUndefined();
    expect(await users('?limit=0')).toEqual([]);
    const unknownMarker = await list('?marker=00000000-0000-4000-8000-000000000000');
    expect(unknownMarker.status).toBe(404);
    expect(unknownMarker.body.itemNotFound.message).toContain('Marker 00000000-0000-4000-8000-000000000000 could not be found');
    const old = await list('?limit=1&marker=nope', '2.58');
    expect(old.status).toBe(200);
    expect(old.body.migrations).toHaveLength(3);
    expect(old.body.migrations_links).toBeUndefined();
  });

  it('2.59 filters by changes-since, 2.66 by changes-before (refused from 2.59 to 2.65); below 2.59 both are ignored', async () => {
    const { list, users } = await seeded();
    expect(await users('?changes-since=2026-11-24T07:01:00Z')).toEqual(['carol', 'bob']);
    expect(await users('?changes-before=2026-11-24T07:01:00Z')).toEqual(['bob', 'alice']);
    expect(await users('?changes-since=2026-11-24T08:00:30%2B01:00&changes-before=2026-11-24T07:01:30Z')).toEqual(['bob']);
    expect(await users('?changes-since=2026-11-24T07:02:00Z&changes-before=2026-11-24T07:00:00Z')).toEqual([]);
    const early = await list('?changes-before=2026-11-24T07:01:00Z', '2.65');
    expect(early.status).toBe(400);
    expect(early.body.badRequest.message).toContain("'changes-before' was unexpected");
    expect(await users('?changes-since=2026-11-24T07:01:00Z', '2.59')).toEqual(['carol', 'bob']);
    expect((await list('?changes-since=2026-11-24T07:01:00Z&changes-before=2026-11-24T07:00:00Z', '2.58')).body.migrations).toHaveLength(3);
    const malformed = await list('?changes-since=yesterday');
    expect(malformed.status).toBe(400);
    expect(malformed.body.badRequest.message).toContain('changes-since');
  });

  it('filters by host, source_compute, status, instance_uuid, migration_type and hidden', async () => {
    const { service, users } = await seeded();
    service.migrations[1]!.dest_compute = 'xen-c';
    expect(await users('?host=xen-c')).toEqual(['bob']);
    expect(await users('?source_compute=xen-b')).toEqual(['bob']);
    expect(await users(`?instance_uuid=${VM1}`)).toEqual(['carol', 'alice']);
    expect(await users('?status=completed&migration_type=live-migration')).toEqual(['carol', 'bob', 'alice']);
    expect(await users('?status=running')).toEqual([]);
    expect(await users('?migration_type=evacuation')).toEqual([]);
    expect(await users('?hidden=1')).toEqual([]);
    expect(await users('?hidden=0')).toEqual(['carol', 'bob', 'alice']);
  });

  it('answers a parameter it does not know with a 400 that names it, at every microversion', async () => {
    const { list } = await seeded();
    for (const version of ['2.1', '2.58', '2.80']) {
      const res = await list('?flavor=m1&sort_key=id', version);
      expect(res.status, version).toBe(400);
      expect(res.body.badRequest.message).toContain("'flavor', 'sort_key' were unexpected");
    }
  });
});

describe('the contract', () => {
  it('answers a method a known path does not serve with 405 and Allow, in the family\'s shape; an unknown path stays 404', async () => {
    const { app } = server();
    const put = await app.inject({ method: 'PUT', url: `/v2.1/servers/${VM1}`, headers: nova('2.80') });
    expect(put.statusCode).toBe(405);
    expect(put.headers.allow).toBe('GET, HEAD');
    expect(put.json()).toEqual({ badMethod: { code: 405, message: expect.stringContaining('GET, HEAD') } });
    const patch = await app.inject({ method: 'PATCH', url: '/v1/migrations', headers: { authorization: `Bearer ${READ}` } });
    expect(patch.statusCode).toBe(405);
    expect(patch.headers.allow).toBe('GET, HEAD, POST');
    expect(patch.json().error.code).toBe('method_not_allowed');
    const del = await app.inject({ method: 'DELETE', url: '/v2.1/servers/x/migrations/1/action' });
    expect(del.statusCode).toBe(405);
    expect(del.headers.allow).toBe('POST');
    expect((await app.inject({ method: 'PUT', url: '/v2.1/nothing-here' })).statusCode).toBe(404);
  });

  it('answers unknown query parameters on every route with a 400 naming them', async () => {
    const { app } = server();
    const servers = await app.inject({ method: 'GET', url: '/v2.1/servers?flavor=m1', headers: nova('2.80', READ) });
    expect(servers.statusCode).toBe(400);
    expect(servers.json().badRequest.message).toContain("'flavor' was unexpected");
    const hosts = await app.inject({ method: 'GET', url: '/v1/hosts?verbose=1', headers: { authorization: `Bearer ${READ}` } });
    expect(hosts.statusCode).toBe(400);
    expect(hosts.json().error.message).toContain("'verbose' was unexpected");
    const serverMigrations = await app.inject({ method: 'GET', url: `/v2.1/servers/${VM1}/migrations?status=running`, headers: nova('2.80', READ) });
    expect(serverMigrations.json().badRequest.message).toContain("'status' was unexpected");
  });

  it('shows the brief server list without status, as Nova\'s', async () => {
    const { app } = server();
    const brief = (await app.inject({ method: 'GET', url: '/v2.1/servers', headers: nova('2.80', READ) })).json().servers;
    expect(Object.keys(brief[0]).sort()).toEqual(['id', 'links', 'name']);
  });
});

describe('os-migrateLive below 2.34: Nova waits for the pre-checks', () => {
  it('answers 400 with the pre-check failure, 202 once the migration passed its checks; from 2.34 at once', async () => {
    const service = new FakeFerryService();
    const { app } = testServer(service, { preCheckWaitMs: 5_000 });
    try {
      // The conductor refuses: the requested host is the instance's own.
      service.onGet = (view) => {
        if (view.status === 'accepted') Object.assign(view, { status: 'error', phase: 'done', error: { type: 'UnableToMigrateToSelf', message: 'Unable to migrate instance (x) to current host (xen-b).' } });
      };
      const refused = await app.inject({ method: 'POST', url: `/v2.1/servers/${VM1}/action`, headers: nova('2.30'), payload: migrateLive({ host: 'xen-b', block_migration: 'auto' }) });
      expect(refused.statusCode).toBe(400);
      expect(refused.json().badRequest.message).toContain("current host");
      // The checks pass: the migration reaches preparing.
      service.onGet = (view) => {
        if (!['completed', 'error'].includes(view.status)) Object.assign(view, { status: 'preparing', phase: 'preparing' });
      };
      const passed = await app.inject({ method: 'POST', url: `/v2.1/servers/${VM2}/action`, headers: nova('2.33'), payload: migrateLive({ host: null, block_migration: 'auto' }) });
      expect(passed.statusCode).toBe(202);
      // From 2.34 the answer does not wait: a failure shows in the migration.
      service.onGet = () => {
        throw new Error('2.34 must not read the migration');
      };
      service.migrations.forEach((m) => (m.status = 'completed'));
      const at234 = await app.inject({ method: 'POST', url: `/v2.1/servers/${VM1}/action`, headers: nova('2.34'), payload: migrateLive({ host: 'xen-b', block_migration: 'auto' }) });
      expect(at234.statusCode).toBe(202);
    } finally {
      await app.close();
    }
  });
});
