// Nova's servers, enough for a Nova client to find a server by id or name, live-migrate, resize and
// cold-migrate it: GET /v2.1/servers, /servers/detail, /servers/{id}, and POST /servers/{id}/action
// with os-migrateLive, resize, migrate, confirmResize and revertResize. Servers come from the host
// inventory; MIGRATING while a live migration runs, RESIZE / VERIFY_RESIZE / REVERT_RESIZE while a
// resize or cold migration is open (on its destination once it finished there), ERROR when the latest
// migration ended in error.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PluginOptions } from '../context';
import { ApiError, describeZodError } from '../errors';
import { atLeast, inRange, type Microversion } from '../microversion';
import { NovaServerBriefSchema, NovaServerSchema, novaServer } from '../nova-views';
import { coldServerState, coldStateByInstance, controlColdMigration, startColdMigration, type ColdServerState } from '../cold-operations';
import { currentFlavor } from '../flavors';
import { currentVm, serverIds } from '../server-identity';
import { migrationStateByInstance, startLiveMigration, waitForPreChecks, type MigrationState } from '../operations';
import type { InstanceView } from '../../workflows/definitions';
import { empty, json, routeSchema, type RouteConfig } from '../route';
import { ServerId, UUID_PATTERN, versionedBody } from '../schemas';

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

/** resize's body (schemas/servers.py resize): flavorRef (parameter_types.flavor_ref: a string or an integer) and OS-DCF:diskConfig. */
const ResizeSchema = z
  .object({
    flavorRef: z.union([z.string().min(1).max(255), z.number().int()]).meta({ description: "The flavor's id (or a link to it, or its name)." }),
    'OS-DCF:diskConfig': z.enum(['AUTO', 'MANUAL']).optional().meta({ description: 'Accepted and ignored: ferry never repartitions a disk.' }),
  })
  .strict();

/** migrate's body from 2.56 (schemas/migrate_server.py migrate): null or {host}; below 2.56 Nova does not validate it and ignores the host. */
const MigrateSchema = z.object({ host: NovaHost.optional() }).strict().nullable();

/** confirmResize and revertResize take anything (Nova's schema is `{}`); clients send null. */
const AnyBody = z.unknown();

/**
 * os-migrateLive as 2.80 takes it, documented with the hosts of temporal.yaml (another host is
 * Nova's 400 ComputeHostNotFound, so the document names them); validated in the handler at the
 * request's microversion (migrateLiveSchema).
 */
function actionBody(hosts: string[]) {
  const host = (hosts.length > 0 ? z.enum(hosts as [string, ...string[]]) : z.string()).nullable();
  const migrateLive = z
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
    .strict();
  return versionedBody(
    z
      .union([
        migrateLive,
        z.object({ resize: ResizeSchema }).strict(),
        z.object({ migrate: z.object({ host: host.optional().meta({ description: '2.56+: the destination; absent or null lets the scheduler choose.' }) }).strict().nullable() }).strict(),
        z.object({ confirmResize: z.null() }).strict(),
        z.object({ revertResize: z.null() }).strict(),
      ])
      .meta({ description: 'A server action; ferry implements os-migrateLive, resize, migrate (cold), confirmResize and revertResize.' }),
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

  /**
   * The servers Nova would list: every instance, with its live migration's and its resize's state.
   * A resize's destination VM is the same server until it is confirmed: it is not listed on its
   * own, and while it exists it stands for the server (its power state, its new size).
   */
  const allServers = async (req: FastifyRequest) => {
    const [cluster, states, ids] = await Promise.all([service.describeCluster(), migrationStateByInstance(service), serverIds(service)]);
    const instances = new Map(cluster.hosts.flatMap((h) => h.instances).map((i) => [i.uuid.toLowerCase(), i] as const));
    const cold = await coldStateByInstance(service.coldMigrations, instances);
    const shadows = new Set([...cold.values()].map((c) => c.shadowUuid).filter((u): u is string => u !== null));
    const shown = [...instances.values()]
      .filter((i) => !shadows.has(i.uuid.toLowerCase()))
      .map((i) => {
        const vm = i.uuid.toLowerCase();
        return present(req, i, states.get(vm) ?? null, cold.get(vm) ?? null, instances, ids.get(vm) ?? vm);
      });
    // A server being confirmed whose source VM is already gone: its copy stands for it.
    for (const [vm, state] of cold) {
      const copy = state.shadowUuid ? instances.get(state.shadowUuid) : undefined;
      if (!instances.has(vm) && copy) shown.push(present(req, copy, null, state, instances, ids.get(vm) ?? vm));
    }
    return shown;
  };

  /**
   * One server: `instance` is its VM (or, while a resize's source is gone, the copy); its id is
   * `serverId` (the id it had before its confirmed resizes); during a resize the destination's VM,
   * when it exists, stands for it (its power state, its new size).
   */
  const present = (req: FastifyRequest, instance: InstanceView, migration: MigrationState, cold: ColdServerState | null, instances: Map<string, InstanceView>, serverId: string) => {
    const shadow = cold?.shadowUuid ? instances.get(cold.shadowUuid) : undefined;
    const shown = { ...(shadow ?? instance), uuid: serverId, name: instance.name };
    const flavor = currentFlavor(ctx.config.flavors, shown);
    return novaServer(shown, migration, base(req), true, cold, flavor?.name ?? null);
  };

  const servers = async (req: FastifyRequest, query: z.infer<typeof ListQuery>) => {
    const all = await allServers(req);
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
      // The VM the server is now (after confirmed resizes), and its latest resize or cold migration (open, or ended in error).
      const vm = await currentVm(service, req.params.id);
      const [located, states, latest] = await Promise.all([service.locateInstance(vm), migrationStateByInstance(service), service.coldMigrations.get(vm)]);
      const cold = latest && latest.instanceUuid === vm ? coldServerState(latest, located?.instance ?? null) : null;
      const instances = new Map<string, InstanceView>();
      if (cold?.shadowUuid) {
        const shadow = await service.locateInstance(cold.shadowUuid);
        if (shadow) instances.set(cold.shadowUuid, shadow.instance);
      }
      // While a confirm removes the source VM, the copy is the server.
      const instance = located?.instance ?? (cold?.shadowUuid ? instances.get(cold.shadowUuid) : undefined);
      if (!instance) throw new ApiError('not_found', `Instance ${req.params.id} could not be found.`);
      return { server: present(req, instance, states.get(vm) ?? null, cold, instances, req.params.id.toLowerCase()) };
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
        summary: 'Server action: os-migrateLive, resize, migrate (cold), confirmResize (204), revertResize (202).',
        description:
          'os-migrateLive: host null lets the scheduler choose. block_migration: true, false, or "auto" (2.25+). disk_over_commit: 2.1 to 2.24. ' +
          'force: 2.30 to 2.67. The migration runs as the liveMigration workflow; watch it with GET /v2.1/servers/{id}/migrations. ' +
          "Below 2.34 the answer waits (bounded) for the conductor's pre-checks and is a 400 naming the reason when they fail, as in Nova.\n\n" +
          'resize {flavorRef} and migrate (null, or {host} from 2.56) start the coldMigration workflow: the server is RESIZE, then VERIFY_RESIZE ' +
          'on its new host until confirmResize (204) or revertResize (202), or the resize confirm window (migration.resizeConfirmWindowSeconds) passes. ' +
          '400 for an unknown flavor, the flavor the server has ("When resizing, instances must change flavor!"), a smaller disk, an unknown or the current host; ' +
          "409 (\"Cannot 'ACTION' instance ID while it is in vm_state|task_state STATE\") when the server's state does not allow the action.",
        tags,
      },
      { params: ServerParams, querystring: z.object({}).strict(), body: actionBody(ctx.config.hosts.map((h) => h.name)) },
      { 202: empty('Accepted.'), 204: empty('confirmResize: confirmed (the source is being removed).') },
      {
        backend: true,
        more: {
          400: 'Invalid body; unknown flavor, same flavor, smaller disk; the requested host does not exist or is the current one; below 2.34 a failed pre-check (its reason).',
          404: 'No such server.',
          409: "The server's vm_state or task_state does not allow the action (not active, paused, migrating, resizing, not resized).",
        },
      },
    ),
    handler: async (req, reply) => {
      const body = req.body as unknown;
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError('bad_request', 'Malformed request body: name exactly one action.');
      const actions = Object.keys(body);
      if (actions.length !== 1) throw new ApiError('bad_request', 'Malformed request body: name exactly one action.');
      const action = actions[0] ?? '';
      const args = (body as Record<string, unknown>)[action];
      // After confirmed resizes the server is another VM: the actions address that one.
      const vm = UUID_PATTERN.test(req.params.id) ? await currentVm(service, req.params.id) : req.params.id;
      const requestedBy = { userId: req.principal?.userId ?? 'anonymous', projectId: req.principal?.projectId ?? 'ferry' };
      const cold = { autoConfirmSeconds: ctx.config.migration.resizeConfirmWindowSeconds, refusals: 'nova' as const };
      const invalid = (error: z.ZodError) => new ApiError('bad_request', `Invalid input for field/attribute ${action}. ${describeZodError(error)}`);
      switch (action) {
        case 'os-migrateLive':
          break;
        case 'resize': {
          const parsed = ResizeSchema.safeParse(args);
          if (!parsed.success) throw invalid(parsed.error);
          await startColdMigration(service, ctx.config.flavors, { instanceUuid: vm, flavorRef: parsed.data.flavorRef, requestedBy }, cold);
          ctx.metrics.migrationsStarted.inc();
          return reply.code(202).send();
        }
        case 'migrate': {
          // Nova validates migrate's body only from 2.56, where the host appeared; below, it ignores it.
          let host: string | null = null;
          if (atLeast(req.microversion, 56)) {
            const parsed = MigrateSchema.safeParse(args);
            if (!parsed.success) throw invalid(parsed.error);
            host = parsed.data?.host ?? null;
          }
          await startColdMigration(service, ctx.config.flavors, { instanceUuid: vm, host, requestedBy }, cold);
          ctx.metrics.migrationsStarted.inc();
          return reply.code(202).send();
        }
        case 'confirmResize':
        case 'revertResize': {
          AnyBody.parse(args);
          await controlColdMigration(service, action, vm);
          return reply.code(action === 'confirmResize' ? 204 : 202).send();
        }
        default:
          throw new ApiError('bad_request', `There is no such action: ${action}`);
      }
      const resizing = UUID_PATTERN.test(vm) ? await service.coldMigrations.get(vm) : null;
      const resizeState = resizing ? coldServerState(resizing, null) : null;
      if (resizeState && resizeState.status !== 'ERROR') {
        const [attr, state] = resizeState.taskState ? (['task_state', resizeState.taskState] as const) : (['vm_state', resizeState.vmState ?? 'resized'] as const);
        throw new ApiError('conflict', `Cannot 'os-migrateLive' instance ${vm} while it is in ${attr} ${state}`);
      }
      const parsed = migrateLiveSchema(req.microversion).safeParse(args);
      if (!parsed.success) throw new ApiError('bad_request', `Invalid input for field/attribute os-migrateLive. ${describeZodError(parsed.error)}`);
      const live = parsed.data;
      const started = await startLiveMigration(
        service,
        {
          instanceUuid: vm.toLowerCase(),
          host: live.host,
          blockMigration: live.block_migration,
          force: (live as { force?: boolean }).force ?? false,
          options: {},
          requestedBy,
        },
        'nova',
      );
      ctx.metrics.migrationsStarted.inc();
      if (!atLeast(req.microversion, 34)) await waitForPreChecks(service, started.runId, ctx.preCheckWaitMs);
      return reply.code(202).send();
    },
  });
};
