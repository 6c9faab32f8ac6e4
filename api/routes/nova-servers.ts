// Nova's servers, enough for a Nova client to find a server by id or name and live-migrate it:
// GET /v2.1/servers, /servers/detail, /servers/{id}, and POST /servers/{id}/action with os-migrateLive.
// Servers come from the describeCluster workflow; MIGRATING while a migration workflow runs, ERROR
// when the latest migration ended in error.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PluginOptions } from '../context';
import { ApiError, describeZodError } from '../errors';
import { atLeast, inRange, type Microversion } from '../microversion';
import { NovaServerBriefSchema, NovaServerSchema, novaServer } from '../nova-views';
import { migrationStateByInstance, startLiveMigration, waitForPreChecks } from '../operations';
import { empty, json, routeSchema, type RouteConfig } from '../route';
import { ServerId, versionedBody } from '../schemas';

/** Nova's parameter_types.boolean: a JSON boolean or one of its spellings. */
const BOOLEAN_SPELLINGS = ['True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no'] as const;
const TRUE = new Set(['true', '1', 'on', 'yes']);

const ListQuery = z
  .object({
    // openstackclient's `server list` always sends deleted=False; Nova's servers index takes it.
    deleted: z.enum(BOOLEAN_SPELLINGS).optional().meta({ description: "Nova's deleted filter: ferry keeps no deleted servers, so a true value matches nothing." }),
    name: z.string().optional().meta({ description: 'Servers whose name contains this text.' }),
    status: z.string().optional().meta({ description: 'ACTIVE, PAUSED, SHUTOFF, SUSPENDED, MIGRATING or ERROR (any case); another value matches nothing.' }),
    host: z.string().optional().meta({ description: 'Servers on this host.' }),
  })
  .strict();

const NovaBoolean = z.union([z.boolean(), z.enum(BOOLEAN_SPELLINGS)]).transform((v) => (typeof v === 'boolean' ? v : TRUE.has(v.toLowerCase())));
/** Nova's host of os-migrateLive: parameter_types.fqdn or null. */
const NovaHost = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[a-zA-Z0-9-._]*$/)
  .nullable();

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

/**
 * os-migrateLive as 2.80 takes it, documented with the hosts of temporal.yaml (another host is
 * Nova's 400 ComputeHostNotFound, so the document names them); validated in the handler at the
 * request's microversion (migrateLiveSchema).
 */
function actionBody(hosts: string[]) {
  const host = (hosts.length > 0 ? z.enum(hosts as [string, ...string[]]) : z.string()).nullable();
  return versionedBody(
    z
      .object({
        'os-migrateLive': z
          .object({
            host: host.meta({ description: 'Destination host (a host of this cluster); null lets the scheduler choose.' }),
            block_migration: z.union([z.literal('auto'), z.boolean(), z.enum(BOOLEAN_SPELLINGS)]).meta({
              description: 'true, false (or Nova\'s boolean spellings) or "auto". Below 2.25 also disk_over_commit (required), from 2.30 to 2.67 force.',
            }),
          })
          .strict(),
      })
      .strict()
      .meta({ description: 'A server action; ferry implements os-migrateLive.' }),
  );
}

const READ: RouteConfig = { role: 'read', family: 'nova' };
const OPERATOR: RouteConfig = { role: 'operator', family: 'nova' };
const ServerParams = z.object({ id: ServerId });

function base(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

export const novaServerRoutes: FastifyPluginAsync<PluginOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { service } = ctx;
  const tags = ['nova'];

  const servers = async (req: FastifyRequest, query: z.infer<typeof ListQuery>) => {
    const [cluster, states] = await Promise.all([service.describeCluster(), migrationStateByInstance(service)]);
    const all = cluster.hosts.flatMap((h) => h.instances).map((i) => novaServer(i, states.get(i.uuid.toLowerCase()) ?? null, base(req), true));
    if (query.deleted !== undefined && TRUE.has(query.deleted.toLowerCase())) return [];
    return all.filter(
      (s) =>
        (query.name === undefined || s.name.includes(query.name)) &&
        (query.status === undefined || s.status === query.status.toUpperCase()) &&
        (query.host === undefined || s['OS-EXT-SRV-ATTR:host'] === query.host),
    );
  };

  app.route({
    method: 'GET',
    url: '/v2.1/servers',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'novaListServers', summary: 'Servers, brief: id, name, links (as Nova\'s brief list).', tags },
      { querystring: ListQuery },
      { 200: json('Servers.', z.object({ servers: z.array(NovaServerBriefSchema) })) },
      { backend: true },
    ),
    handler: async (req) => ({ servers: (await servers(req, req.query)).map((s) => ({ id: s.id, name: s.name, links: s.links })) }),
  });

  app.route({
    method: 'GET',
    url: '/v2.1/servers/detail',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'novaListServersDetail', summary: 'Servers with host, status, task and power state.', tags },
      { querystring: ListQuery },
      { 200: json('Servers.', z.object({ servers: z.array(NovaServerSchema) })) },
      { backend: true },
    ),
    handler: async (req) => ({ servers: await servers(req, req.query) }),
  });

  app.route({
    method: 'GET',
    url: '/v2.1/servers/:id',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'novaShowServer', summary: 'One server.', tags },
      { params: ServerParams, querystring: z.object({}).strict() },
      { 200: json('The server.', z.object({ server: NovaServerSchema })) },
      { backend: true, more: { 404: 'No such server.' } },
    ),
    handler: async (req) => {
      const [located, states] = await Promise.all([service.locateInstance(req.params.id), migrationStateByInstance(service)]);
      if (!located) throw new ApiError('not_found', `Instance ${req.params.id} could not be found.`);
      return { server: novaServer(located.instance, states.get(located.instance.uuid.toLowerCase()) ?? null, base(req), true) };
    },
  });

  app.route({
    method: 'POST',
    url: '/v2.1/servers/:id/action',
    config: { ferry: OPERATOR },
    schema: routeSchema(
      OPERATOR,
      {
        operationId: 'novaServerAction',
        summary: 'Server action: os-migrateLive starts a live migration (202, no body).',
        description:
          'host: null lets the scheduler choose. block_migration: true, false, or "auto" (2.25+). disk_over_commit: 2.1 to 2.24. ' +
          'force: 2.30 to 2.67. The migration runs as the liveMigration workflow; watch it with GET /v2.1/servers/{id}/migrations. ' +
          "Below 2.34 the answer waits (bounded) for the conductor's pre-checks and is a 400 naming the reason when they fail, as in Nova.",
        tags,
      },
      { params: ServerParams, querystring: z.object({}).strict(), body: actionBody(ctx.config.hosts.map((h) => h.name)) },
      { 202: empty('Accepted.') },
      {
        backend: true,
        more: {
          400: 'Invalid body; the requested host does not exist or is the current one; below 2.34 a failed pre-check (its reason).',
          404: 'No such server.',
          409: 'The server is not active or paused, or already migrating.',
        },
      },
    ),
    handler: async (req, reply) => {
      const body = req.body as unknown;
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError('bad_request', 'Malformed request body: name exactly one action.');
      const actions = Object.keys(body);
      if (actions.length !== 1) throw new ApiError('bad_request', 'Malformed request body: name exactly one action.');
      const action = actions[0] ?? '';
      if (action !== 'os-migrateLive') throw new ApiError('bad_request', `There is no such action: ${action}`);
      const parsed = migrateLiveSchema(req.microversion).safeParse((body as Record<string, unknown>)[action]);
      if (!parsed.success) throw new ApiError('bad_request', `Invalid input for field/attribute os-migrateLive. ${describeZodError(parsed.error)}`);
      const args = parsed.data;
      const started = await startLiveMigration(
        service,
        {
          instanceUuid: req.params.id.toLowerCase(),
          host: args.host,
          blockMigration: args.block_migration,
          force: (args as { force?: boolean }).force ?? false,
          options: {},
          requestedBy: { userId: req.principal?.userId ?? 'anonymous', projectId: req.principal?.projectId ?? 'ferry' },
        },
        'nova',
      );
      ctx.metrics.migrationsStarted.inc();
      if (!atLeast(req.microversion, 34)) await waitForPreChecks(service, started.runId, ctx.preCheckWaitMs);
      return reply.code(202).send();
    },
  });
};
