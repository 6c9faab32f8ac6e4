// Nova's servers, enough for a Nova client to find a server by id or name and live-migrate it:
// GET /v2.1/servers, /servers/detail, /servers/{id}, and POST /servers/{id}/action with os-migrateLive.
// Servers come from the describeCluster workflow; MIGRATING while a migration workflow runs, ERROR
// when the latest migration ended in error.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { PluginOptions } from '../context';
import { ApiError, describeZodError } from '../errors';
import { inRange, type Microversion } from '../microversion';
import { NovaServerSchema, novaServer } from '../nova-views';
import { migrationStateByInstance, startLiveMigration } from '../operations';
import { addRoute } from '../route-spec';

const ListQuery = z
  .looseObject({
    name: z.string().optional().meta({ description: 'Servers whose name contains this text.' }),
    status: z.string().optional().meta({ description: 'ACTIVE, PAUSED, SHUTOFF, SUSPENDED or MIGRATING.' }),
    host: z.string().optional(),
  });

const TRUE = new Set(['true', '1', 'on', 'yes', 'y', 't']);
const FALSE = new Set(['false', '0', 'off', 'no', 'n', 'f']);
/** Nova's parameter_types.boolean: a JSON boolean or one of its spellings. */
const NovaBoolean = z.union([z.boolean(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'boolean') return v;
  const lower = v.toLowerCase();
  if (TRUE.has(lower)) return true;
  if (FALSE.has(lower)) return false;
  ctx.addIssue({ code: 'custom', message: `${v} is not a boolean` });
  return z.NEVER;
});
const NovaHost = z.string().min(1).max(255).nullable();

/** os-migrateLive's body per microversion (nova/api/openstack/compute/schemas/migrate_server.py). */
function migrateLiveSchema(v: Microversion) {
  if (!inRange(v, '2.25')) {
    return z.object({ host: NovaHost, block_migration: NovaBoolean, disk_over_commit: NovaBoolean }).strict();
  }
  const blockMigration = z.union([z.literal('auto'), NovaBoolean]);
  if (inRange(v, '2.30', '2.67')) {
    return z.object({ host: NovaHost, block_migration: blockMigration, force: NovaBoolean.optional() }).strict();
  }
  return z.object({ host: NovaHost, block_migration: blockMigration }).strict();
}

// Validated per microversion in the handler (migrateLiveSchema); this is the documented union.
const ActionBodyDoc = z
  .looseObject({
    'os-migrateLive': z
      .looseObject({
        host: z.string().nullable().optional().meta({ description: 'Destination host; null lets the scheduler choose. Required.' }),
        block_migration: z
          .union([z.boolean(), z.string()])
          .optional()
          .meta({ description: 'true, false (or Nova\'s boolean spellings), or "auto" from 2.25. Required.' }),
        disk_over_commit: z.union([z.boolean(), z.string()]).optional().meta({ description: '2.1 to 2.24 only (required there).' }),
        force: z.union([z.boolean(), z.string()]).optional().meta({ description: '2.30 to 2.67 only.' }),
      })
      .optional(),
  })
  .meta({ description: 'A server action; ferry implements os-migrateLive.' });

function base(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

export const novaServerRoutes: FastifyPluginAsync<PluginOptions> = async (app, { ctx }) => {
  const { service } = ctx;

  const servers = async (req: FastifyRequest, query: z.infer<typeof ListQuery>, detail: boolean) => {
    const [cluster, states] = await Promise.all([service.describeCluster(), migrationStateByInstance(service)]);
    const all = cluster.hosts.flatMap((h) => h.instances).map((i) => novaServer(i, states.get(i.uuid.toLowerCase()) ?? null, base(req), true));
    const wanted = all.filter(
      (s) =>
        (query.name === undefined || s.name.includes(query.name)) &&
        (query.status === undefined || s.status === query.status.toUpperCase()) &&
        (query.host === undefined || s['OS-EXT-SRV-ATTR:host'] === query.host),
    );
    return { servers: detail ? wanted : wanted.map((s) => ({ id: s.id, name: s.name, links: s.links })) };
  };

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v2.1/servers',
      operationId: 'novaListServers',
      summary: 'Servers (id, name, links).',
      tags: ['nova'],
      role: 'read',
      family: 'nova',
      query: ListQuery,
      responses: { 200: { description: 'Servers.', schema: z.object({ servers: z.array(NovaServerSchema) }) } },
    },
    async ({ req, query }) => servers(req, query, false),
  );

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v2.1/servers/detail',
      operationId: 'novaListServersDetail',
      summary: 'Servers with host, status, task and power state.',
      tags: ['nova'],
      role: 'read',
      family: 'nova',
      query: ListQuery,
      responses: { 200: { description: 'Servers.', schema: z.object({ servers: z.array(NovaServerSchema) }) } },
    },
    async ({ req, query }) => servers(req, query, true),
  );

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v2.1/servers/:id',
      operationId: 'novaShowServer',
      summary: 'One server.',
      tags: ['nova'],
      role: 'read',
      family: 'nova',
      params: z.object({ id: z.string() }),
      responses: { 200: { description: 'The server.', schema: z.object({ server: NovaServerSchema }) }, 404: { description: 'No such server.' } },
    },
    async ({ req, params }) => {
      const [located, states] = await Promise.all([service.locateInstance(params.id), migrationStateByInstance(service)]);
      if (!located) throw new ApiError('not_found', `Instance ${params.id} could not be found.`);
      return { server: novaServer(located.instance, states.get(located.instance.uuid.toLowerCase()) ?? null, base(req), true) };
    },
  );

  addRoute(
    app,
    ctx,
    {
      method: 'POST',
      url: '/v2.1/servers/:id/action',
      operationId: 'novaServerAction',
      summary: 'Server action: os-migrateLive starts a live migration (202, no body).',
      description:
        'host: null lets the scheduler choose. block_migration: true, false, or "auto" (2.25+). disk_over_commit: 2.1 to 2.24. ' +
        'force: 2.30 to 2.67. The migration runs as the liveMigration workflow; watch it with GET /v2.1/servers/{id}/migrations.',
      tags: ['nova'],
      role: 'operator',
      family: 'nova',
      params: z.object({ id: z.string() }),
      body: ActionBodyDoc,
      responses: {
        202: { description: 'Accepted.' },
        404: { description: 'No such server.' },
        409: { description: 'The server is not active or paused, or already migrating.' },
      },
    },
    async ({ params, body, microversion, principal, reply }) => {
      const actions = Object.keys(body);
      if (actions.length !== 1) throw new ApiError('bad_request', 'Malformed request body: name exactly one action.');
      const action = actions[0] ?? '';
      if (action !== 'os-migrateLive') throw new ApiError('bad_request', `There is no such action: ${action}`);
      const parsed = migrateLiveSchema(microversion).safeParse(body[action]);
      if (!parsed.success) throw new ApiError('bad_request', `Invalid input for field/attribute os-migrateLive. ${describeZodError(parsed.error)}`);
      const args = parsed.data;
      await startLiveMigration(service, {
        instanceUuid: params.id.toLowerCase(),
        host: args.host,
        blockMigration: args.block_migration,
        force: (args as { force?: boolean }).force ?? false,
        options: {},
        requestedBy: { userId: principal?.userId ?? 'anonymous', projectId: 'ferry' },
      });
      ctx.metrics.migrationsStarted.inc();
      return reply.code(202).send();
    },
  );
};
