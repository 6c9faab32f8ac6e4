// /openapi.json: a valid OpenAPI 3.1 document that covers every route, generated from the same zod
// schemas that validate requests; answers conform to the response schemas.
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { HostListSchema, InstanceListSchema, MigrationListSchema, MigrationSchema, MigrationStartedSchema } from '../../api/schemas';
import { NovaMigrationSchema, NovaServerMigrationSchema, NovaServerSchema } from '../../api/nova-views';
import { V1ErrorSchema } from '../../api/errors';
import { VM1 } from './fake-service';
import { MigrationEventSchema } from '../../api/routes/v1-migrations';
import { asOperator, asRead, nova, testServer } from './helpers';

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown>; security: unknown[] }>>;
  components: { schemas: Record<string, unknown> };
};

async function documentOf() {
  const { app, service } = testServer();
  const res = await app.inject({ method: 'GET', url: '/openapi.json' });
  return { app, service, doc: res.json() as Doc };
}

describe('OpenAPI document', () => {
  it('is valid OpenAPI 3.1', async () => {
    const { doc, app } = await documentOf();
    const validator = new Validator();
    const result = await validator.validate(doc as unknown as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    // The validator is not vacuous: a broken document fails.
    const broken = structuredClone(doc) as unknown as { info?: unknown };
    delete broken.info;
    expect((await new Validator().validate(broken as Record<string, unknown>)).valid).toBe(false);
    await app.close();
  });

  it('documents every route, with error responses and security', async () => {
    const { doc, app } = await documentOf();
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    for (const expected of [
      'POST /v1/migrations',
      'GET /v1/migrations',
      'GET /v1/migrations/{id}',
      'POST /v1/migrations/{id}/abort',
      'POST /v1/migrations/{id}/force-complete',
      'GET /v1/migrations/{id}/events',
      'GET /v1/hosts',
      'GET /v1/hosts/{name}',
      'GET /v1/instances',
      'GET /v1/instances/{uuid}',
      'GET /healthz',
      'GET /readyz',
      'GET /metrics',
      'GET /openapi.json',
      'GET /',
      'GET /v2.1',
      'GET /v2.1/servers',
      'GET /v2.1/servers/detail',
      'GET /v2.1/servers/{id}',
      'POST /v2.1/servers/{id}/action',
      'GET /v2.1/servers/{id}/migrations',
      'GET /v2.1/servers/{id}/migrations/{mid}',
      'DELETE /v2.1/servers/{id}/migrations/{mid}',
      'POST /v2.1/servers/{id}/migrations/{mid}/action',
      'GET /v2.1/os-migrations',
    ]) {
      expect(documented).toContain(expected);
    }
    const start = doc.paths['/v1/migrations']?.post;
    expect(Object.keys(start?.responses ?? {}).sort()).toEqual(['202', '400', '401', '403', '404', '409', '503']);
    expect(start?.security).toEqual([{ bearer: ['operator'] }, { authToken: ['operator'] }]);
    expect(doc.paths['/healthz']?.get?.security).toEqual([]);
    expect(doc.components.schemas).toHaveProperty('Migration');
    expect(doc.components.schemas).toHaveProperty('Error');
    expect(doc.components.schemas).toHaveProperty('NovaError');
    // The request schema is the input side: defaults make fields optional.
    // A start is one of two shapes: force only with a host. Defaults make the other fields optional.
    const shapes = (doc.components.schemas.StartMigrationInput as { anyOf: { required: string[] }[] }).anyOf;
    expect(shapes.map((s) => s.required)).toEqual([['instanceUuid'], ['instanceUuid', 'host', 'force']]);
    expect(doc.paths['/v1/migrations']?.post).toMatchObject({ requestBody: { content: { 'application/json': { schema: { $ref: '#/components/schemas/StartMigrationInput' } } } } });
    await app.close();
  });

  it('answers conform to the documented response schemas', async () => {
    const { app, service } = testServer();
    const started = await app.inject({ method: 'POST', url: '/v1/migrations', headers: asOperator, payload: { instanceUuid: VM1, host: 'xen-b' } });
    MigrationStartedSchema.parse(started.json());
    service.migrations[0]!.status = 'running';
    const checks: [string, Record<string, string>, z.ZodType][] = [
      ['/v1/migrations', asRead, MigrationListSchema],
      [`/v1/migrations/${started.json().id}`, asRead, MigrationSchema],
      ['/v1/hosts', asRead, HostListSchema],
      ['/v1/instances', asRead, InstanceListSchema],
      ['/v1/nope', asRead, V1ErrorSchema],
      ['/v2.1/servers/detail', nova('2.80'), z.object({ servers: z.array(NovaServerSchema.strict()) }).strict()],
      [`/v2.1/servers/${VM1}/migrations`, nova('2.80'), z.object({ migrations: z.array(NovaServerMigrationSchema.strict()) }).strict()],
      ['/v2.1/os-migrations', nova('2.80'), z.object({ migrations: z.array(NovaMigrationSchema.strict()) }).strict()],
    ];
    for (const [url, headers, schema] of checks) {
      const res = await app.inject({ method: 'GET', url, headers });
      const parsed = schema.safeParse(res.json());
      expect(parsed.success, `${url}: ${parsed.error?.message}`).toBe(true);
    }
    await app.close();
  });

  it('describes the progress stream as it is on the wire: each event a name and a data line of JSON', async () => {
    const { app, service } = testServer();
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as Doc & {
      paths: Record<string, Record<string, { responses: Record<string, { content: Record<string, { schema: { $ref: string } }> }> }>>;
    };
    expect(doc.paths['/v1/migrations/{id}/events']?.get?.responses['200']?.content['text/event-stream']?.schema).toEqual({ $ref: '#/components/schemas/MigrationEvent' });
    const started = await app.inject({ method: 'POST', url: '/v1/migrations', headers: asOperator, payload: { instanceUuid: VM1 } });
    service.onGet = (m) => Object.assign(m, { status: 'completed', phase: 'done' });
    const res = await app.inject({ method: 'GET', url: `/v1/migrations/${started.json().id}/events?interval=100`, headers: asRead });
    // Read the stream as schemathesis does (event name and raw data text), and check every event against the schema.
    const raw = res.body
      .split('\n\n')
      .filter((block) => block.trim() !== '')
      .map((block) => Object.fromEntries(block.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)])));
    expect(raw.map((e) => e.event)).toEqual(['migration', 'end']);
    for (const event of raw) {
      expect(MigrationEventSchema.safeParse(event).success, JSON.stringify(event)).toBe(true);
      expect(MigrationSchema.safeParse(JSON.parse(event.data as string)).success).toBe(true);
    }
    expect(MigrationEventSchema.safeParse({ event: 'migration', data: { status: 'running' } }).success).toBe(false);
    await app.close();
  });
});

