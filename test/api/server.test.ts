// The API's HTTP behaviour on a fake FerryService: status codes, error bodies, auth, /v1 routes,
// the progress stream, and operations endpoints.
import { describe, expect, it } from 'vitest';
import { authenticatorFromConfig } from '../../api/auth';
import { parseSseBlock } from '../../cli/client';
import { READ, asOperator, asRead, serverPerTest, testConfig, testServer } from './helpers';
import { VM1, VM2, VM_HALTED } from './fake-service';

const server = serverPerTest();

describe('auth', () => {
  it('answers 401 without a token or with an unknown one, in ferry\'s error shape', async () => {
    const { app } = server();
    const none = await app.inject({ method: 'GET', url: '/v1/hosts' });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toContain('Bearer');
    expect(none.json()).toEqual({ error: { code: 'unauthorized', status: 401, message: expect.stringContaining('Authentication required') } });
    const wrong = await app.inject({ method: 'GET', url: '/v1/hosts', headers: { authorization: 'Bearer nope' } });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error.message).toBe('The token is not valid.');
    const malformed = await app.inject({ method: 'GET', url: '/v1/hosts', headers: { authorization: 'Basic abc' } });
    expect(malformed.statusCode).toBe(401);
  });

  it('answers 403 to the read role on operator routes, and lets the operator read', async () => {
    const { app } = server();
    const forbidden = await app.inject({ method: 'POST', url: '/v1/migrations', headers: asRead, payload: { instanceUuid: VM1 } });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().error.code).toBe('forbidden');
    expect((await app.inject({ method: 'GET', url: '/v1/hosts', headers: asRead })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/hosts', headers: asOperator })).statusCode).toBe(200);
  });

  it('accepts Nova\'s X-Auth-Token and answers Nova clients in Nova\'s shape', async () => {
    const { app } = server();
    expect((await app.inject({ method: 'GET', url: '/v2.1/servers', headers: { 'x-auth-token': READ } })).statusCode).toBe(200);
    const none = await app.inject({ method: 'GET', url: '/v2.1/servers' });
    expect(none.statusCode).toBe(401);
    expect(none.json()).toEqual({ unauthorized: { code: 401, message: expect.any(String) } });
    const forbidden = await app.inject({ method: 'POST', url: `/v2.1/servers/${VM1}/action`, headers: { 'x-auth-token': READ }, payload: {} });
    expect(forbidden.json()).toEqual({ forbidden: { code: 403, message: expect.stringContaining('operator role') } });
  });

  it('serves health, readiness, metrics, versions and the OpenAPI document without a token', async () => {
    const { app } = server();
    for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/', '/v2.1', '/v2.1/']) {
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    }
  });

  it('reads tokens from the environment variables temporal.yaml names, and refuses to start without them', async () => {
    const saved = { ...process.env };
    try {
      delete process.env.FERRY_READ_TOKEN;
      process.env.FERRY_OPERATOR_TOKEN = 'x';
      expect(() => authenticatorFromConfig(testConfig)).toThrow(/FERRY_READ_TOKEN/);
      process.env.FERRY_READ_TOKEN = 'x';
      expect(() => authenticatorFromConfig(testConfig)).toThrow(/must differ/);
      process.env.FERRY_READ_TOKEN = 'r';
      const auth = authenticatorFromConfig(testConfig);
      expect((await auth.authorize({ authorization: 'Bearer r' }, 'read')).role).toBe('read');
      expect((await auth.authorize({ 'x-auth-token': 'x' }, 'operator')).role).toBe('operator');
      const none = authenticatorFromConfig({ ...testConfig, api: { ...testConfig.api, auth: { mode: 'none' } } });
      expect(await none.authorize({}, 'operator')).toMatchObject({ role: 'operator', userId: 'anonymous' });
    } finally {
      process.env = saved;
    }
  });
});

describe('/v1/migrations', () => {
  it('starts a migration: 202, Location, the workflow input with who asked', async () => {
    const { app, service } = server();
    const res = await app.inject({ method: 'POST', url: '/v1/migrations', headers: asOperator, payload: { instanceUuid: VM1, host: 'xen-b' } });
    expect(res.statusCode).toBe(202);
    const body = res.json();
    expect(res.headers.location).toBe(`/v1/migrations/${body.id}`);
    expect(body).toMatchObject({ workflowId: `live-migration-${VM1}`, instanceUuid: VM1, location: res.headers.location, novaId: expect.any(Number) });
    expect(service.started[0]).toEqual({
      instanceUuid: VM1,
      host: 'xen-b',
      blockMigration: 'auto',
      force: false,
      options: {},
      requestedBy: { userId: 'operator', projectId: 'ferry' },
    });
  });

  it('refuses bad input (400), unknown instances (404), stopped or migrating instances (409), with code and message', async () => {
    const { app } = server();
    const post = (payload: unknown) => app.inject({ method: 'POST', url: '/v1/migrations', headers: asOperator, payload: payload as object });
    const invalid = await post({ instanceUuid: 'web-1' });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json().error).toMatchObject({ code: 'bad_request', message: expect.stringContaining('instanceUuid') });
    expect((await post({ instanceUuid: VM1, extra: 1 })).statusCode).toBe(400);
    expect((await post({ instanceUuid: VM1, host: 'Bad Host' })).statusCode).toBe(400);
    // A schema-valid request is never a 400: an unknown host is not found, the current host a conflict.
    const unknownHost = await post({ instanceUuid: VM1, host: 'xen-z' });
    expect(unknownHost.statusCode).toBe(404);
    expect(unknownHost.json().error.message).toBe('Compute host xen-z could not be found.');
    const current = await post({ instanceUuid: VM1, host: 'xen-a' });
    expect(current.statusCode).toBe(409);
    expect(current.json().error.message).toContain('to current host');
    // force without a host is outside the schema (force: true needs host).
    const forced = await post({ instanceUuid: VM1, force: true });
    expect(forced.statusCode).toBe(400);
    expect(forced.json().error.message).toContain('host');
    const missing = await post({ instanceUuid: '44444444-4444-4444-8444-444444444444' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('not_found');
    const halted = await post({ instanceUuid: VM_HALTED });
    expect(halted.statusCode).toBe(409);
    expect(halted.json().error.message).toContain('vm_state stopped');
    expect((await post({ instanceUuid: VM1 })).statusCode).toBe(202);
    const again = await post({ instanceUuid: VM1 });
    expect(again.statusCode).toBe(409);
    expect(again.json().error).toMatchObject({ code: 'conflict', message: expect.stringContaining('task_state migrating') });
    const notJson = await app.inject({ method: 'POST', url: '/v1/migrations', headers: { ...asOperator, 'content-type': 'application/json' }, payload: '{' });
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json().error.code).toBe('bad_request');
  });

  it('lists with validated filters and shows one migration, by run id or instance uuid', async () => {
    const { app, service } = server();
    const started = (await app.inject({ method: 'POST', url: '/v1/migrations', headers: asOperator, payload: { instanceUuid: VM1 } })).json();
    const list = await app.inject({ method: 'GET', url: `/v1/migrations?status=accepted&host=xen-a&instance=${VM1}&open=true&limit=5`, headers: asRead });
    expect(list.statusCode).toBe(200);
    expect(list.json().migrations.map((m: { uuid: string }) => m.uuid)).toEqual([started.id]);
    expect(service.lastFilters.at(-1)).toEqual({ status: 'accepted', host: 'xen-a', instanceUuid: VM1, open: true, limit: 5 });
    for (const bad of ["status=running' OR '1'='1", "host=xen-a'", 'instance=abc', 'limit=0', 'unknown=1']) {
      const res = await app.inject({ method: 'GET', url: `/v1/migrations?${bad}`, headers: asRead });
      expect(res.statusCode, bad).toBe(400);
      expect(res.json().error.code).toBe('bad_request');
    }
    expect((await app.inject({ method: 'GET', url: `/v1/migrations/${started.id}`, headers: asRead })).json().uuid).toBe(started.id);
    expect((await app.inject({ method: 'GET', url: `/v1/migrations/${VM1}`, headers: asRead })).json().uuid).toBe(started.id);
    const missing = await app.inject({ method: 'GET', url: `/v1/migrations/${VM2}`, headers: asRead });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: { code: 'not_found', status: 404, message: `Migration ${VM2} could not be found.` } });
    expect((await app.inject({ method: 'GET', url: '/v1/migrations/not-a-uuid', headers: asRead })).statusCode).toBe(400);
  });

  it('answers abort and force-complete from the workflow: 202 accepted, or 409 with its reason', async () => {
    const { app, service } = server();
    const id = (await app.inject({ method: 'POST', url: '/v1/migrations', headers: asOperator, payload: { instanceUuid: VM1 } })).json().id;
    const abort = await app.inject({ method: 'POST', url: `/v1/migrations/${id}/abort`, headers: asOperator, payload: { reason: 'maintenance cancelled' } });
    expect(abort.statusCode).toBe(202);
    expect(abort.json()).toEqual({ accepted: true, status: 'accepted', phase: 'rolling_back' });
    service.refuseForceComplete = 'cannot force-complete in phase post_migration: past the point of no return';
    const refused = await app.inject({ method: 'POST', url: `/v1/migrations/${id}/force-complete`, headers: asOperator });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error).toEqual({ code: 'conflict', status: 409, message: service.refuseForceComplete });
    service.refuseForceComplete = null;
    expect((await app.inject({ method: 'POST', url: `/v1/migrations/${id}/force-complete`, headers: asOperator, payload: {} })).statusCode).toBe(202);
    expect((await app.inject({ method: 'POST', url: `/v1/migrations/${VM2}/abort`, headers: asOperator })).statusCode).toBe(404);
    expect((await app.inject({ method: 'POST', url: `/v1/migrations/${id}/abort`, headers: asRead })).statusCode).toBe(403);
    service.migrations[0]!.status = 'completed';
    const late = await app.inject({ method: 'POST', url: `/v1/migrations/${id}/abort`, headers: asOperator });
    expect(late.statusCode).toBe(409);
    expect(late.json().error.message).toBe('the migration is already completed');
  });

  it('streams progress as Server-Sent Events until a final status', async () => {
    const { app, service } = server();
    const id = (await app.inject({ method: 'POST', url: '/v1/migrations', headers: asOperator, payload: { instanceUuid: VM1 } })).json().id;
    let calls = 0;
    service.onGet = (m) => {
      calls += 1;
      if (calls === 2) Object.assign(m, { status: 'running', phase: 'precopy' });
      if (calls === 4) Object.assign(m, { status: 'completed', phase: 'done' });
    };
    const res = await app.inject({ method: 'GET', url: `/v1/migrations/${id}/events?interval=100`, headers: asRead });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/event-stream');
    const events = res.body.split('\n\n').map(parseSseBlock).filter((e) => e !== null);
    expect(events.map((e) => `${e.event}:${(e.data as { status: string }).status}`)).toEqual([
      'migration:accepted',
      'migration:running',
      'migration:completed',
      'end:completed',
    ]);
    expect((await app.inject({ method: 'GET', url: `/v1/migrations/${VM2}/events`, headers: asRead })).statusCode).toBe(404);
  });

  it('ends the stream without `end` when Temporal stops answering: `end` carries only a final migration', async () => {
    const { app, service } = server();
    const id = (await app.inject({ method: 'POST', url: '/v1/migrations', headers: asOperator, payload: { instanceUuid: VM1 } })).json().id;
    let calls = 0;
    service.onGet = () => {
      calls += 1;
      if (calls > 1) throw new Error('Temporal did not answer');
    };
    const res = await app.inject({ method: 'GET', url: `/v1/migrations/${id}/events?interval=100`, headers: asRead });
    const events = res.body.split('\n\n').map(parseSseBlock).filter((e) => e !== null);
    expect(events[0]?.event).toBe('migration');
    expect(events.slice(1).every((e) => e.event === 'error')).toBe(true);
    expect(events.length).toBeGreaterThan(2);
    expect(events.some((e) => e.event === 'end')).toBe(false);
  });
});

describe('/v1 hosts and instances', () => {
  it('shows hosts up or down with capacity and running migrations', async () => {
    const { app } = server();
    const id = (await app.inject({ method: 'POST', url: '/v1/migrations', headers: asOperator, payload: { instanceUuid: VM1, host: 'xen-b' } })).json().id;
    const hosts = (await app.inject({ method: 'GET', url: '/v1/hosts', headers: asRead })).json().hosts;
    expect(hosts.map((h: { name: string; up: boolean }) => `${h.name}:${h.up}`)).toEqual(['xen-a:true', 'xen-b:true', 'xen-c:false']);
    expect(hosts[0]).toMatchObject({ instanceCount: 2, memoryFreeBytes: 12 * 2 ** 30, migrations: { outbound: [id], inbound: [] } });
    expect(hosts[1].migrations.inbound).toEqual([id]);
    expect(hosts[2].downReason).toContain('no poller');
    expect((await app.inject({ method: 'GET', url: '/v1/hosts/xen-b', headers: asRead })).json().name).toBe('xen-b');
    expect((await app.inject({ method: 'GET', url: '/v1/hosts/xen-q', headers: asRead })).statusCode).toBe(404);
    const instances = (await app.inject({ method: 'GET', url: '/v1/instances?host=xen-a', headers: asRead })).json().instances;
    expect(instances.map((i: { name: string }) => i.name)).toEqual(['web-1', 'db-old']);
    expect(instances[0].migration).toMatchObject({ id, status: 'accepted' });
    expect((await app.inject({ method: 'GET', url: `/v1/instances/${VM2}`, headers: asRead })).json().migration).toBeNull();
  });
});

describe('operations', () => {
  it('readyz answers 503 when Temporal does not', async () => {
    const { app, service } = server();
    service.ready = false;
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ status: 'unavailable', checks: { temporal: 'connection refused' } });
  });

  it('exports Prometheus metrics', async () => {
    const { app } = server();
    await app.inject({ method: 'POST', url: '/v1/migrations', headers: asOperator, payload: { instanceUuid: VM1 } });
    await app.inject({ method: 'GET', url: '/v1/hosts' });
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.headers['content-type']).toContain('text/plain; version=0.0.4');
    const text = res.body;
    expect(text).toContain('# TYPE ferry_api_request_duration_seconds histogram');
    expect(text).toContain('ferry_api_request_duration_seconds_count{method="POST",route="/v1/migrations",status_code="202"} 1');
    expect(text).toContain('ferry_api_request_duration_seconds_count{method="GET",route="/v1/hosts",status_code="401"} 1');
    expect(text).toMatch(/ferry_api_request_duration_seconds_bucket\{le="\+Inf",method="POST",route="\/v1\/migrations",status_code="202"\} 1/);
    expect(text).toContain('ferry_api_migrations_started_total 1');
    // The process's own figures, as every Node exporter has them.
    expect(text).toContain('# TYPE process_cpu_seconds_total counter');
  });

  it('answers unknown paths with 404 in the shape of their API family', async () => {
    const { app } = server();
    expect((await app.inject({ method: 'GET', url: '/v1/nope' })).json()).toEqual({ error: { code: 'not_found', status: 404, message: 'The resource could not be found.' } });
    expect((await app.inject({ method: 'GET', url: '/v2.1/nope' })).json()).toEqual({ itemNotFound: { code: 404, message: 'The resource could not be found.' } });
  });

  it('hides internal errors behind a 500 with code and message', async () => {
    const { app, service } = server();
    service.describeCluster = async () => {
      throw new Error('secret internals');
    };
    const res = await app.inject({ method: 'GET', url: '/v1/hosts', headers: asRead });
    expect(res.statusCode).toBe(500);
    expect(res.json().error.code).toBe('internal');
    expect(res.body).not.toContain('secret internals');
  });
});


describe('progress stream and shutdown', () => {
  it('ends open streams when the server closes, without an end event', async () => {
    const { app, service } = testServer();
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const id = (await app.inject({ method: 'POST', url: '/v1/migrations', headers: asOperator, payload: { instanceUuid: VM1 } })).json().id;
    expect(service.migrations).toHaveLength(1);
    const res = await fetch(`${url}/v1/migrations/${id}/events`, { headers: asRead });
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('event: migration');
    const started = Date.now();
    await app.close();
    expect(Date.now() - started).toBeLessThan(3000);
    let rest = '';
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      rest += new TextDecoder().decode(chunk.value);
    }
    expect(rest).not.toContain('event: end');
  });
});
