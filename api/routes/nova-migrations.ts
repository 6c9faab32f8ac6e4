// Nova's migration API over ferry's workflows: a Nova migration is a liveMigration workflow run, its
// integer id the 31-bit FNV-1a hash of the run id (novaMigrationId in workflows/definitions.ts), looked
// up among the runs of the server's workflow id (live-migration-<server uuid>).
//   GET    /v2.1/servers/{id}/migrations               2.23+  in-progress live migrations
//   GET    /v2.1/servers/{id}/migrations/{mid}         2.23+
//   DELETE /v2.1/servers/{id}/migrations/{mid}         2.24+  abort (requestAbort update)
//   POST   /v2.1/servers/{id}/migrations/{mid}/action  2.22+  {"force_complete": null}
//   GET    /v2.1/os-migrations                                every migration, filtered and paged as Nova's
//          (nova/api/openstack/compute/migrations.py and schemas/migrations.py): host, status,
//          instance_uuid, migration_type, source_compute, hidden always; 2.59 limit, marker,
//          changes-since (and migrations_links); 2.66 changes-before; 2.80 user_id, project_id.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { MIGRATION_STATUSES, type MigrationStatusView, type NovaMigrationStatus } from '../../workflows/definitions';
import { IN_PROGRESS_STATUSES, type PluginOptions } from '../context';
import { ApiError } from '../errors';
import type { FerryService, MigrationFilter } from '../ferry-service';
import { atLeast, type Microversion } from '../microversion';
import { NovaMigrationListSchema, NovaServerMigrationSchema, novaMigration, novaServerMigration, type NovaMigrationRow } from '../nova-views';
import { coldMigrationRow } from '../cold-views';
import { currentVm, serverIds } from '../server-identity';
import type { ColdMigrationFilter } from '../cold-migration-service';
import { COLD_MIGRATION_STATUSES } from '../../workflows/cold-migration-definitions';
import { empty, json, routeSchema, type RouteConfig } from '../route';
import { HOST_PATTERN, NoQuery, ServerId, UUID_PATTERN } from '../schemas';

const ServerParams = z.object({ id: ServerId });
const MigrationParams = z.object({ id: ServerId, mid: z.string().min(1).max(255).meta({ description: "Nova's integer migration id; another one is not found (404)." }) });

function base(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

/**
 * A server's migrations from one visibility query; the one in progress (an instance has at most one)
 * is shown live, with its memory and disk progress, the closed ones from their memo.
 */
async function migrationsOf(service: FerryService, serverId: string, open?: boolean): Promise<MigrationStatusView[]> {
  if (!UUID_PATTERN.test(serverId)) return [];
  // After confirmed resizes the server is another VM: its live migrations are that VM's.
  const vm = await currentVm(service, serverId);
  const rows = await service.listMigrations({ instanceUuid: vm, limit: 200, open });
  return Promise.all(rows.map(async (m) => (IN_PROGRESS_STATUSES.has(m.status) ? ((await service.getMigration(m.uuid)) ?? m) : m)));
}

async function assertServerExists(service: FerryService, serverId: string): Promise<void> {
  const vm = UUID_PATTERN.test(serverId) ? await currentVm(service, serverId) : serverId;
  if (!(await service.locateInstance(vm))) throw new ApiError('not_found', `Instance ${serverId} could not be found.`);
}

async function findByNovaId(service: FerryService, serverId: string, mid: string): Promise<MigrationStatusView> {
  const id = /^\d+$/.test(mid) ? Number(mid) : NaN;
  const found = Number.isNaN(id) ? undefined : (await migrationsOf(service, serverId)).find((m) => m.id === id);
  if (!found) {
    await assertServerExists(service, serverId);
    throw new ApiError('not_found', `Migration ${mid} not found for instance ${serverId}`);
  }
  return found;
}

function invalidState(m: MigrationStatusView, method: string): ApiError {
  return new ApiError(
    'bad_request',
    `Migration ${m.id} state of instance ${m.server_uuid} is ${m.status}. Cannot ${method} while the migration is in this state.`,
  );
}

/** Which statuses Nova lets you abort: running only before 2.65, also queued and preparing from 2.65. */
function abortableStatuses(v: Microversion): Set<NovaMigrationStatus> {
  return new Set<NovaMigrationStatus>(atLeast(v, 65) ? ['running', 'queued', 'preparing', 'accepted'] : ['running']);
}

/** RFC 3339 as Nova's oslo parse_isotime reads it (no zone: UTC); null when it is not one. */
export function parseIsoTime(text: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$/.exec(text);
  if (!m) return null;
  const [, y, mo, d, h, mi, sec, frac, zone] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Math.min(Number(sec), 59), Math.floor(Number(`0${frac ?? ''}`) * 1000));
  if (Number.isNaN(ms)) return null;
  let offset = 0;
  if (zone && zone.toUpperCase() !== 'Z') {
    const digits = zone.replace(':', '');
    offset = (digits.startsWith('-') ? -1 : 1) * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5))) * 60_000;
  }
  return ms - offset;
}

const DateTime = z
  .string()
  .meta({ format: 'date-time' })
  .transform((text, ctx) => {
    const at = parseIsoTime(text);
    if (at === null) {
      ctx.addIssue({ code: 'custom', message: `${text} is not a date-time` });
      return z.NEVER;
    }
    return at;
  });

/** The query of GET /os-migrations as 2.80 takes it; what each microversion accepts is in osMigrationsFilter. */
const OsMigrationsQuery = z
  .object({
    instance_uuid: z.string().optional(),
    status: z.string().optional(),
    source_compute: z.string().optional().meta({ description: 'Migrations leaving this host.' }),
    host: z.string().optional().meta({ description: 'Source or destination host.' }),
    migration_type: z.string().optional().meta({ description: 'live-migration, resize or migration (cold); another type matches nothing.' }),
    hidden: z.string().optional().meta({ description: 'ferry hides no migration: a true value matches nothing.' }),
    limit: z
      .string()
      .regex(/^[0-9]+$/)
      .transform(Number)
      .optional()
      .meta({ description: '2.59+: at most this many (above 1000: 1000, Nova\'s max_limit); ignored below 2.59.' }),
    marker: z.string().optional().meta({ description: '2.59+: the uuid of the last migration of the previous page; ignored below 2.59.' }),
    'changes-since': DateTime.optional().meta({ description: '2.59+: updated at or after; ignored below 2.59.' }),
    'changes-before': DateTime.optional().meta({ description: '2.66+: updated at or before; ignored below 2.59, refused from 2.59 to 2.65.' }),
    user_id: z.string().optional().meta({ description: '2.80+ (and below 2.59, as Nova); refused from 2.59 to 2.79.' }),
    project_id: z.string().optional().meta({ description: '2.80+ (and below 2.59, as Nova); refused from 2.59 to 2.79.' }),
  })
  .strict();
type OsMigrationsQueryOut = z.output<typeof OsMigrationsQuery>;

/** Nova's max_limit. */
const MAX_LIMIT = 1000;
const TRUE_SPELLINGS = new Set(['1', 't', 'true', 'on', 'y', 'yes']);

function unexpected(names: string[]): ApiError {
  const named = names.map((n) => `'${n}'`).join(', ');
  return new ApiError('bad_request', `Invalid input for query parameters: Additional properties are not allowed (${named} ${names.length === 1 ? 'was' : 'were'} unexpected)`);
}

/** What one os-migrations request asks for: the visibility filter (null: nothing can match), then what is filtered and paged here. */
interface OsMigrationsRequest {
  visibility: MigrationFilter | null;
  /** The resizes and cold migrations to list, and which of them match; null: none can. */
  cold: { filter: ColdMigrationFilter; match: (m: NovaMigrationRow) => boolean } | null;
  keep: (m: NovaMigrationRow) => boolean;
  limit: number | null;
  marker: string | null;
}

/** Nova's filters, each in the microversions Nova accepts it (a parameter below its version behaves as in Nova). */
export function osMigrationsRequest(query: OsMigrationsQueryOut, v: Microversion): OsMigrationsRequest {
  const paged = atLeast(v, 59);
  if (paged) {
    const refused: string[] = [];
    if (!atLeast(v, 66) && query['changes-before'] !== undefined) refused.push('changes-before');
    if (!atLeast(v, 80)) for (const key of ['user_id', 'project_id'] as const) if (query[key] !== undefined) refused.push(key);
    if (refused.length > 0) throw unexpected(refused);
  }
  const since = paged ? query['changes-since'] : undefined;
  const before = paged ? query['changes-before'] : undefined;
  // Nova answers 400 here; an empty window matches nothing, and ferry keeps schema-valid requests out of 400.
  const emptyWindow = since !== undefined && before !== undefined && before < since;
  const keep = (m: NovaMigrationRow) => {
    const updated = Date.parse(m.updated_at);
    return (
      (since === undefined || updated >= since) &&
      (before === undefined || updated <= before) &&
      (query.user_id === undefined || m.user_id === query.user_id) &&
      (query.project_id === undefined || m.project_id === query.project_id)
    );
  };
  const request: OsMigrationsRequest = {
    visibility: { limit: MAX_LIMIT },
    cold: { filter: { limit: MAX_LIMIT }, match: () => true },
    keep,
    limit: paged ? Math.min(query.limit ?? MAX_LIMIT, MAX_LIMIT) : null,
    marker: paged ? (query.marker ?? null) : null,
  };
  const nothing = () => ({ ...request, visibility: null, cold: null });
  if (emptyWindow) return nothing();
  if (query.hidden !== undefined && TRUE_SPELLINGS.has(query.hidden.toLowerCase())) return nothing();
  if (query.instance_uuid !== undefined && !UUID_PATTERN.test(query.instance_uuid)) return nothing();
  const host = query.host ?? query.source_compute;
  if (host !== undefined && !HOST_PATTERN.test(host)) return nothing();
  return { ...request, visibility: liveFilter(query), cold: coldFilter(query) };
}

/** The live migrations os-migrations asks visibility for; null when the query excludes them. */
function liveFilter(query: OsMigrationsQueryOut): MigrationFilter | null {
  if (query.migration_type !== undefined && query.migration_type !== 'live-migration') return null;
  const filter: MigrationFilter = { limit: MAX_LIMIT };
  if (query.instance_uuid !== undefined) filter.instanceUuid = query.instance_uuid.toLowerCase();
  if (query.status !== undefined) {
    if (!(MIGRATION_STATUSES as readonly string[]).includes(query.status)) return null;
    filter.status = query.status as NovaMigrationStatus;
  }
  // Nova: host wins over source_compute.
  if (query.host !== undefined) filter.host = query.host;
  else if (query.source_compute !== undefined) filter.sourceHost = query.source_compute;
  return filter;
}

/** The resizes (migration_type resize) and cold migrations (migration) os-migrations lists; null when the query excludes them. */
function coldFilter(query: OsMigrationsQueryOut): OsMigrationsRequest['cold'] {
  const type = query.migration_type;
  if (type !== undefined && type !== 'resize' && type !== 'migration') return null;
  if (query.status !== undefined && !(COLD_MIGRATION_STATUSES as readonly string[]).includes(query.status)) return null;
  const filter: ColdMigrationFilter = { limit: MAX_LIMIT };
  if (type !== undefined) filter.migrationType = type;
  if (query.instance_uuid !== undefined) filter.instanceUuid = query.instance_uuid.toLowerCase();
  const match = (m: NovaMigrationRow) =>
    (query.status === undefined || m.status === query.status) &&
    (query.host !== undefined
      ? m.source_compute === query.host || m.dest_compute === query.host
      : query.source_compute === undefined || m.source_compute === query.source_compute);
  return { filter, match };
}

const newestFirst = (a: NovaMigrationRow, b: NovaMigrationRow) => b.created_at.localeCompare(a.created_at) || b.id - a.id;

/** Newest first (Nova sorts by created_at, then id, descending), after the marker, at most limit. */
export function page<T extends NovaMigrationRow>(rows: T[], marker: NovaMigrationRow | null, limit: number | null): T[] {
  const sorted = [...rows].sort(newestFirst);
  const after = marker ? sorted.filter((m) => newestFirst(m, marker) > 0) : sorted;
  return after.slice(0, limit === null ? undefined : limit);
}

/** The marker's migration, among the rows or else anywhere (Nova finds it whatever the filters); 404 when there is none (Nova: 400). */
async function markerOf(service: FerryService, rows: NovaMigrationRow[], marker: string | null): Promise<NovaMigrationRow | null> {
  if (marker === null) return null;
  const found = rows.find((m) => m.uuid === marker.toLowerCase()) ?? (UUID_PATTERN.test(marker) ? await service.getMigration(marker) : null);
  if (!found || found.uuid !== marker.toLowerCase()) throw new ApiError('not_found', `Marker ${marker} could not be found.`);
  return found;
}

/** Nova's next link: the same query with the last uuid as marker, when the page is full. */
function nextLinks(req: FastifyRequest, items: NovaMigrationRow[], limit: number | null): { rel: string; href: string }[] | undefined {
  const last = items[items.length - 1];
  if (limit === null || limit === 0 || items.length !== limit || !last) return undefined;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(req.query as Record<string, string>)) if (key !== 'marker') params.set(key, value);
  params.set('marker', last.uuid);
  return [{ rel: 'next', href: `${base(req)}/v2.1/os-migrations?${params.toString()}` }];
}

const READ_23: RouteConfig = { role: 'read', family: 'nova', versions: { min: '2.23' } };
const ABORT: RouteConfig = { role: 'operator', family: 'nova', versions: { min: '2.24' } };
const FORCE_COMPLETE: RouteConfig = { role: 'operator', family: 'nova', versions: { min: '2.22' } };
const READ: RouteConfig = { role: 'read', family: 'nova' };

export const novaMigrationRoutes: FastifyPluginAsync<PluginOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { service } = ctx;
  const tags = ['nova'];

  app.route({
    method: 'GET',
    url: '/v2.1/servers/:id/migrations',
    config: { ferry: READ_23 },
    schema: routeSchema(
      READ_23,
      { operationId: 'novaListServerMigrations', summary: "A server's in-progress live migrations (Nova takes no filters here).", tags },
      { params: ServerParams, querystring: NoQuery },
      { 200: json('Migrations.', z.object({ migrations: z.array(NovaServerMigrationSchema) })) },
      { backend: true, more: { 404: 'No such server.' } },
    ),
    handler: async (req) => {
      const inProgress = (await migrationsOf(service, req.params.id, true)).filter((m) => IN_PROGRESS_STATUSES.has(m.status));
      if (inProgress.length === 0) await assertServerExists(service, req.params.id);
      // Under the server's id, even when a confirmed resize made it another VM.
      return { migrations: inProgress.map((m) => novaServerMigration({ ...m, server_uuid: req.params.id.toLowerCase() }, req.microversion)) };
    },
  });

  app.route({
    method: 'GET',
    url: '/v2.1/servers/:id/migrations/:mid',
    config: { ferry: READ_23 },
    schema: routeSchema(
      READ_23,
      { operationId: 'novaShowServerMigration', summary: 'One in-progress live migration of a server, with its memory and disk progress.', tags },
      { params: MigrationParams, querystring: NoQuery },
      { 200: json('The migration.', z.object({ migration: NovaServerMigrationSchema })) },
      { backend: true, more: { 404: 'No such server, or no such migration in progress.' } },
    ),
    handler: async (req) => {
      const { params } = req;
      const m = await findByNovaId(service, params.id, params.mid).catch(async (err: unknown) => {
        if (err instanceof ApiError && err.status === 404 && err.message.startsWith('Migration')) {
          throw new ApiError('not_found', `In-progress live migration ${params.mid} is not found for server ${params.id}.`);
        }
        throw err;
      });
      if (!IN_PROGRESS_STATUSES.has(m.status)) {
        throw new ApiError('not_found', `In-progress live migration ${params.mid} is not found for server ${params.id}.`);
      }
      return { migration: novaServerMigration({ ...m, server_uuid: params.id.toLowerCase() }, req.microversion) };
    },
  });

  app.route({
    method: 'DELETE',
    url: '/v2.1/servers/:id/migrations/:mid',
    config: { ferry: ABORT },
    schema: routeSchema(
      ABORT,
      { operationId: 'novaAbortServerMigration', summary: 'Abort an in-progress live migration (the requestAbort update); 202.', tags },
      { params: MigrationParams, querystring: NoQuery },
      { 202: empty('The workflow accepted the abort.') },
      {
        backend: true,
        more: {
          400: 'The migration is not in an abortable state.',
          404: 'No such server or migration.',
          409: 'The workflow refused (past the point of no return); the message is its reason.',
        },
      },
    ),
    handler: async (req, reply) => {
      const m = await findByNovaId(service, req.params.id, req.params.mid);
      if (!abortableStatuses(req.microversion).has(m.status)) throw invalidState(m, 'abort live migration');
      await service.abort(m.uuid, 'Nova API: DELETE migration');
      ctx.metrics.controlRequests.inc({ action: 'abort', outcome: 'accepted' });
      return reply.code(202).send();
    },
  });

  app.route({
    method: 'POST',
    url: '/v2.1/servers/:id/migrations/:mid/action',
    config: { ferry: FORCE_COMPLETE },
    schema: routeSchema(
      FORCE_COMPLETE,
      { operationId: 'novaForceCompleteServerMigration', summary: 'force_complete a running live migration (the requestForceComplete update); 202.', tags },
      { params: MigrationParams, querystring: NoQuery, body: z.object({ force_complete: z.null() }).strict() },
      { 202: empty('The workflow accepted force-complete.') },
      {
        backend: true,
        more: {
          400: 'Invalid body, or the migration is not running.',
          404: 'No such server or migration.',
          409: 'The workflow refused; the message is its reason.',
        },
      },
    ),
    handler: async (req, reply) => {
      const m = await findByNovaId(service, req.params.id, req.params.mid);
      if (m.status !== 'running') throw invalidState(m, 'force complete');
      await service.forceComplete(m.uuid);
      ctx.metrics.controlRequests.inc({ action: 'force-complete', outcome: 'accepted' });
      return reply.code(202).send();
    },
  });

  app.route({
    method: 'GET',
    url: '/v2.1/os-migrations',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      {
        operationId: 'novaListMigrations',
        summary: 'Migrations of every server, newest first (Temporal visibility), filtered and paged as Nova.',
        description:
          'host, status, instance_uuid, migration_type, source_compute, hidden: every microversion. 2.59: limit, marker, changes-since ' +
          '(and migrations_links, the next page); 2.66: changes-before; 2.80: user_id, project_id. Below 2.59 the paging and changes-* ' +
          'parameters are ignored and user_id/project_id filter, as in Nova; from 2.59 one beyond the microversion is a 400 naming it. ' +
          'Any other parameter is a 400 naming it. A marker that names no migration is a 404 and changes-before earlier than ' +
          'changes-since matches nothing (Nova answers 400 to both). Reads the newest 1000 migrations the visibility filter matches.',
        tags,
      },
      { querystring: OsMigrationsQuery },
      { 200: json('Migrations.', NovaMigrationListSchema) },
      {
        backend: true,
        more: {
          400: 'An unknown or malformed parameter (named), or one beyond the microversion.',
          404: 'The marker names no migration (Nova answers 400).',
        },
      },
    ),
    handler: async (req) => {
      const asked = osMigrationsRequest(req.query, req.microversion);
      const [live, cold, ids] = await Promise.all([
        asked.visibility ? service.listMigrations(asked.visibility) : [],
        asked.cold ? service.coldMigrations.list(asked.cold.filter) : [],
        serverIds(service),
      ]);
      const coldRows = cold.map((v) => coldMigrationRow(v, ctx.config.flavors)).filter((m) => asked.cold?.match(m) ?? false);
      // A VM that a confirmed resize created is shown as the server it is.
      const rows = [...live, ...coldRows].filter(asked.keep).map((m) => ({ ...m, server_uuid: ids.get(m.server_uuid) ?? m.server_uuid }));
      const items = page(rows, await markerOf(service, rows, asked.marker), asked.limit);
      const answer: z.infer<typeof NovaMigrationListSchema> = { migrations: items.map((m) => novaMigration(m, req.microversion, base(req))) };
      if (atLeast(req.microversion, 59)) {
        const links = nextLinks(req, items, asked.limit);
        if (links) answer.migrations_links = links;
      }
      return answer;
    },
  });
};
