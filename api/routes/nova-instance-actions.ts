// Nova's instance actions (`openstack server event list` / `server event show`), from each migration's
// workflow: one action `live-migration` per migration (request id `req-<migration uuid>`), and in
// the show one event per step read from its history (api/instance-actions.ts). As Nova's
// nova/api/openstack/compute/instance_actions.py:
//   GET /v2.1/servers/{id}/os-instance-actions              2.58+ updated_at, limit, marker, changes-since
//                                                           (and links); 2.66+ changes-before
//   GET /v2.1/servers/{id}/os-instance-actions/{request_id} events: admins (ferry's operator role) in
//       every microversion, everyone from 2.51; traceback for admins only; 2.62+ hostId for everyone
//       and host for admins.
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PluginOptions } from '../context';
import { ApiError } from '../errors';
import type { FerryService, InstanceAction, InstanceActionEvent } from '../ferry-service';
import { atLeast, type Microversion } from '../microversion';
import { novaTime } from '../nova-views';
import { json, routeSchema, type RouteConfig } from '../route';
import { NoQuery, ServerId, UUID_PATTERN } from '../schemas';
import { parseIsoTime } from './nova-migrations';
import { coldInstanceActions } from '../cold-views';

const Link = z.object({ rel: z.string(), href: z.string() });
const NovaId = z.string().nullable();

export const NovaInstanceActionSchema = z
  .object({
    action: z.string(),
    instance_uuid: z.string(),
    request_id: z.string(),
    user_id: NovaId,
    project_id: NovaId,
    start_time: z.string(),
    message: z.string().nullable(),
    updated_at: z.string().nullable().optional().meta({ description: '2.58+.' }),
  })
  .strict()
  .meta({ id: 'NovaInstanceAction' });

export const NovaInstanceActionEventSchema = z
  .object({
    event: z.string(),
    start_time: z.string(),
    finish_time: z.string().nullable(),
    result: z.string().nullable(),
    traceback: z.string().nullable().optional().meta({ description: 'Admins (operator role) only.' }),
    host: z.string().optional().meta({ description: '2.62+, admins only.' }),
    hostId: z.string().optional().meta({ description: '2.62+: sha224 of the project id and the host.' }),
  })
  .strict()
  .meta({ id: 'NovaInstanceActionEvent' });

const ActionShowSchema = NovaInstanceActionSchema.extend({
  events: z.array(NovaInstanceActionEventSchema).optional().meta({ description: 'Admins in every microversion; everyone from 2.51.' }),
}).meta({ id: 'NovaInstanceActionDetail' });

const DateTime = z
  .string()
  .meta({ format: 'date-time' })
  .refine((text) => parseIsoTime(text) !== null, { message: 'is not a date-time' });

const ListQuery = z
  .object({
    limit: z
      .string()
      .regex(/^[0-9]+$/, 'must be a non-negative integer')
      .transform(Number)
      .optional()
      .meta({ description: '2.58+: at most this many (above 1000: 1000); ignored below 2.58.' }),
    marker: z.string().optional().meta({ description: '2.58+: the request id of the last action of the previous page; ignored below 2.58.' }),
    'changes-since': DateTime.optional().meta({ description: '2.58+: updated at or after; ignored below 2.58.' }),
    'changes-before': DateTime.optional().meta({ description: '2.66+: updated at or before; ignored below 2.58, refused from 2.58 to 2.65.' }),
  })
  .strict();

const ServerParams = z.object({ id: ServerId });
const ActionParams = z.object({ id: ServerId, request_id: z.string().min(1).meta({ description: "The action's request id (req-<migration uuid>)." }) });

/** Nova's max_limit. */
const MAX_LIMIT = 1000;

/** Nova's utils.generate_hostid: sha224 of the project id and the host, so a host is not named to everyone. */
function hostId(host: string | null, projectId: string | null): string {
  return host ? createHash('sha224').update(`${projectId ?? ''}${host}`).digest('hex') : '';
}

function actionView(a: InstanceAction, v: Microversion): z.infer<typeof NovaInstanceActionSchema> {
  return {
    action: a.action,
    instance_uuid: a.instanceUuid,
    request_id: a.requestId,
    user_id: a.userId,
    project_id: a.projectId,
    start_time: novaTime(a.startTime),
    message: a.message,
    ...(atLeast(v, 58) ? { updated_at: novaTime(a.updatedAt) } : {}),
  };
}

function eventView(e: InstanceActionEvent, projectId: string | null, v: Microversion, admin: boolean): z.infer<typeof NovaInstanceActionEventSchema> {
  return {
    event: e.event,
    start_time: novaTime(e.startTime),
    finish_time: e.finishTime ? novaTime(e.finishTime) : null,
    result: e.result,
    ...(admin ? { traceback: e.traceback } : {}),
    ...(admin && atLeast(v, 62) ? { host: e.host ?? '' } : {}),
    ...(atLeast(v, 62) ? { hostId: hostId(e.host, projectId) } : {}),
  };
}

async function instanceNotFound(service: FerryService, serverId: string): Promise<ApiError | null> {
  if (UUID_PATTERN.test(serverId) && (await service.locateInstance(serverId))) return null;
  return new ApiError('not_found', `Instance ${serverId} could not be found.`);
}

/** The server's resizes and cold migrations as actions (resize, migrate, confirmResize, revertResize). */
async function coldActionsOf(service: FerryService, serverId: string): Promise<InstanceAction[]> {
  const views = await service.coldMigrations.list({ instanceUuid: serverId.toLowerCase(), limit: 1000 });
  return views.flatMap(coldInstanceActions);
}

function base(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

const READ: RouteConfig = { role: 'read', family: 'nova' };

export const novaInstanceActionRoutes: FastifyPluginAsync<PluginOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { service } = ctx;
  const tags = ['nova'];

  app.route({
    method: 'GET',
    url: '/v2.1/servers/:id/os-instance-actions',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'novaListInstanceActions', summary: "A server's actions, newest first: live-migration per live migration; resize or migrate, then confirmResize or revertResize, per resize or cold migration (openstack server event list).", tags },
      { params: ServerParams, querystring: ListQuery },
      { 200: json('Actions.', z.object({ instanceActions: z.array(NovaInstanceActionSchema), links: z.array(Link).optional() })) },
      { backend: true, more: { 404: 'No such server.' } },
    ),
    handler: async (req) => {
      const v = req.microversion;
      const { query } = req;
      const paged = atLeast(v, 58);
      if (paged && !atLeast(v, 66) && query['changes-before'] !== undefined) {
        throw new ApiError('bad_request', "Invalid input for query parameters: Additional properties are not allowed ('changes-before' was unexpected)");
      }
      const since = paged && query['changes-since'] ? (parseIsoTime(query['changes-since']) as number) : null;
      const before = paged && query['changes-before'] ? (parseIsoTime(query['changes-before']) as number) : null;
      // Nova answers 400 to changes-before earlier than changes-since; an empty window matches nothing
      // here, as in os-migrations: a schema-valid request is never a 400 (the schemathesis contract).
      const all = UUID_PATTERN.test(req.params.id) ? [...(await service.listInstanceActions(req.params.id)), ...(await coldActionsOf(service, req.params.id))] : [];
      // A server that is gone still has its actions (Nova reads deleted instances from 2.21).
      if (all.length === 0) {
        const missing = await instanceNotFound(service, req.params.id);
        if (missing) throw missing;
      }
      const sorted = [...all].sort((a, b) => b.startTime.localeCompare(a.startTime) || b.requestId.localeCompare(a.requestId));
      let rows = sorted.filter((a) => {
        const updated = Date.parse(a.updatedAt);
        return (since === null || updated >= since) && (before === null || updated <= before);
      });
      const limit = paged ? Math.min(query.limit ?? MAX_LIMIT, MAX_LIMIT) : null;
      if (paged && query.marker !== undefined) {
        const at = rows.findIndex((a) => a.requestId === query.marker);
        // Nova: 400; ferry: 404, as os-migrations (a marker naming nothing is not a malformed request).
        if (at < 0) throw new ApiError('not_found', `Marker ${query.marker} could not be found.`);
        rows = rows.slice(at + 1);
      }
      if (limit !== null) rows = rows.slice(0, limit);
      const body: { instanceActions: z.infer<typeof NovaInstanceActionSchema>[]; links?: z.infer<typeof Link>[] } = {
        instanceActions: rows.map((a) => actionView(a, v)),
      };
      const last = rows[rows.length - 1];
      if (limit !== null && limit > 0 && rows.length === limit && last) {
        const params = new URLSearchParams();
        for (const [key, value] of Object.entries(req.query as Record<string, string>)) if (key !== 'marker') params.set(key, String(value));
        params.set('marker', last.requestId);
        body.links = [{ rel: 'next', href: `${base(req)}/v2.1/servers/${req.params.id}/os-instance-actions?${params.toString()}` }];
      }
      return body;
    },
  });

  app.route({
    method: 'GET',
    url: '/v2.1/servers/:id/os-instance-actions/:request_id',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'novaShowInstanceAction', summary: 'One action with its events: the migration steps from its workflow history (openstack server event show).', tags },
      { params: ActionParams, querystring: NoQuery },
      { 200: json('The action.', z.object({ instanceAction: ActionShowSchema })) },
      { backend: true, more: { 404: 'No such server, or no such action.' } },
    ),
    handler: async (req) => {
      const v = req.microversion;
      const { id, request_id: requestId } = req.params;
      const action = UUID_PATTERN.test(id)
        ? ((await service.getInstanceAction(id, requestId)) ?? (await coldActionsOf(service, id)).find((a) => a.requestId === requestId) ?? null)
        : null;
      if (!action) {
        const missing = await instanceNotFound(service, id);
        throw missing ?? new ApiError('not_found', `Action ${requestId} not found`);
      }
      // Nova's policy: admins see events (with tracebacks) in every microversion, others from 2.51 without.
      const admin = req.principal?.role === 'operator';
      const showEvents = admin || atLeast(v, 51);
      return {
        instanceAction: {
          ...actionView(action, v),
          ...(showEvents ? { events: (action.events ?? []).map((e) => eventView(e, action.projectId, v, admin)) } : {}),
        },
      };
    },
  });
};
