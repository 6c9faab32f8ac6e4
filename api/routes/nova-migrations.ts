// Nova's migration API over ferry's workflows: a Nova migration is a liveMigration workflow run, its
// integer id the 31-bit FNV-1a hash of the run id (novaMigrationId in workflows/definitions.ts), looked
// up among the runs of the server's workflow id (live-migration-<server uuid>).
//   GET    /v2.1/servers/{id}/migrations               2.23+  in-progress live migrations
//   GET    /v2.1/servers/{id}/migrations/{mid}         2.23+
//   DELETE /v2.1/servers/{id}/migrations/{mid}         2.24+  abort (requestAbort update)
//   POST   /v2.1/servers/{id}/migrations/{mid}/action  2.22+  {"force_complete": null}
//   GET    /v2.1/os-migrations                                every migration, filtered
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { MIGRATION_STATUSES, type MigrationStatusView, type NovaMigrationStatus } from '../../workflows/definitions';
import { IN_PROGRESS_STATUSES, type PluginOptions } from '../context';
import { ApiError } from '../errors';
import type { FerryService, MigrationFilter } from '../ferry-service';
import { atLeast, type Microversion } from '../microversion';
import { NovaMigrationSchema, NovaServerMigrationSchema, novaMigration, novaServerMigration } from '../nova-views';

import { addRoute } from '../route-spec';
import { HOST_PATTERN, UUID_PATTERN } from '../schemas';

const ServerParams = z.object({ id: z.string() });
const MigrationParams = z.object({ id: z.string(), mid: z.string() });

function base(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

/**
 * A server's migrations from one visibility query; the one in progress (an instance has at most one)
 * is shown live, with its memory and disk progress, the closed ones from their memo.
 */
async function migrationsOf(service: FerryService, serverId: string, open?: boolean): Promise<MigrationStatusView[]> {
  if (!UUID_PATTERN.test(serverId)) return [];
  const rows = await service.listMigrations({ instanceUuid: serverId.toLowerCase(), limit: 200, open });
  return Promise.all(rows.map(async (m) => (IN_PROGRESS_STATUSES.has(m.status) ? ((await service.getMigration(m.uuid)) ?? m) : m)));
}

async function assertServerExists(service: FerryService, serverId: string): Promise<void> {
  if (!(await service.locateInstance(serverId))) throw new ApiError('not_found', `Instance ${serverId} could not be found.`);
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

const OsMigrationsQuery = z.looseObject({
  instance_uuid: z.string().optional(),
  status: z.string().optional(),
  source_compute: z.string().optional(),
  host: z.string().optional().meta({ description: 'Source or destination host.' }),
  migration_type: z.string().optional(),
  hidden: z.string().optional(),
  limit: z.string().optional().meta({ description: '2.59+; default and maximum 1000.' }),
});

/** Turns Nova's filters into a visibility filter, or null when they cannot match anything. */
function osMigrationsFilter(query: z.infer<typeof OsMigrationsQuery>, v: Microversion): MigrationFilter | null {
  const filter: MigrationFilter = { limit: 1000 };
  if (query.migration_type !== undefined && query.migration_type !== 'live-migration') return null;
  if (query.instance_uuid !== undefined) {
    if (!UUID_PATTERN.test(query.instance_uuid)) return null;
    filter.instanceUuid = query.instance_uuid.toLowerCase();
  }
  if (query.status !== undefined) {
    if (!(MIGRATION_STATUSES as readonly string[]).includes(query.status)) return null;
    filter.status = query.status as NovaMigrationStatus;
  }
  for (const [key, field] of [['host', 'host'], ['source_compute', 'sourceHost']] as const) {
    const value = query[key];
    if (value === undefined) continue;
    if (!HOST_PATTERN.test(value)) return null;
    filter[field] = value;
  }
  if (query.limit !== undefined && atLeast(v, 59)) {
    const limit = /^\d+$/.test(query.limit) ? Number(query.limit) : NaN;
    if (!(limit >= 0)) throw new ApiError('bad_request', `Invalid input for query parameters limit. Value: ${query.limit}.`);
    filter.limit = Math.min(limit, 1000);
  }
  return filter;
}

export const novaMigrationRoutes: FastifyPluginAsync<PluginOptions> = async (app, { ctx }) => {
  const { service } = ctx;

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v2.1/servers/:id/migrations',
      operationId: 'novaListServerMigrations',
      summary: "A server's in-progress live migrations.",
      tags: ['nova'],
      role: 'read',
      family: 'nova',
      versions: { min: '2.23' },
      params: ServerParams,
      responses: { 200: { description: 'Migrations.', schema: z.object({ migrations: z.array(NovaServerMigrationSchema) }) }, 404: { description: 'No such server.' } },
    },
    async ({ params, microversion }) => {
      const inProgress = (await migrationsOf(service, params.id, true)).filter((m) => IN_PROGRESS_STATUSES.has(m.status));
      if (inProgress.length === 0) await assertServerExists(service, params.id);
      return { migrations: inProgress.map((m) => novaServerMigration(m, microversion)) };
    },
  );

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v2.1/servers/:id/migrations/:mid',
      operationId: 'novaShowServerMigration',
      summary: 'One in-progress live migration of a server, with its memory and disk progress.',
      tags: ['nova'],
      role: 'read',
      family: 'nova',
      versions: { min: '2.23' },
      params: MigrationParams,
      responses: { 200: { description: 'The migration.', schema: z.object({ migration: NovaServerMigrationSchema }) }, 404: { description: 'Not found or not in progress.' } },
    },
    async ({ params, microversion }) => {
      const m = await findByNovaId(service, params.id, params.mid).catch(async (err: unknown) => {
        if (err instanceof ApiError && err.status === 404 && err.message.startsWith('Migration')) {
          throw new ApiError('not_found', `In-progress live migration ${params.mid} is not found for server ${params.id}.`);
        }
        throw err;
      });
      if (!IN_PROGRESS_STATUSES.has(m.status)) {
        throw new ApiError('not_found', `In-progress live migration ${params.mid} is not found for server ${params.id}.`);
      }
      return { migration: novaServerMigration(m, microversion) };
    },
  );

  addRoute(
    app,
    ctx,
    {
      method: 'DELETE',
      url: '/v2.1/servers/:id/migrations/:mid',
      operationId: 'novaAbortServerMigration',
      summary: 'Abort an in-progress live migration (the requestAbort update); 202.',
      tags: ['nova'],
      role: 'operator',
      family: 'nova',
      versions: { min: '2.24' },
      params: MigrationParams,
      responses: {
        202: { description: 'The workflow accepted the abort.' },
        400: { description: 'The migration is not in an abortable state.' },
        404: { description: 'No such migration.' },
        409: { description: 'The workflow refused (past the point of no return); the message is its reason.' },
      },
    },
    async ({ params, microversion, reply }) => {
      const m = await findByNovaId(service, params.id, params.mid);
      if (!abortableStatuses(microversion).has(m.status)) throw invalidState(m, 'abort live migration');
      await service.abort(m.uuid, 'Nova API: DELETE migration');
      ctx.metrics.controlRequests.inc({ action: 'abort', outcome: 'accepted' });
      return reply.code(202).send();
    },
  );

  addRoute(
    app,
    ctx,
    {
      method: 'POST',
      url: '/v2.1/servers/:id/migrations/:mid/action',
      operationId: 'novaForceCompleteServerMigration',
      summary: 'force_complete a running live migration (the requestForceComplete update); 202.',
      tags: ['nova'],
      role: 'operator',
      family: 'nova',
      versions: { min: '2.22' },
      params: MigrationParams,
      body: z.object({ force_complete: z.null() }).strict(),
      responses: {
        202: { description: 'The workflow accepted force-complete.' },
        400: { description: 'The migration is not running.' },
        404: { description: 'No such migration.' },
        409: { description: 'The workflow refused; the message is its reason.' },
      },
    },
    async ({ params, reply }) => {
      const m = await findByNovaId(service, params.id, params.mid);
      if (m.status !== 'running') throw invalidState(m, 'force complete');
      await service.forceComplete(m.uuid);
      ctx.metrics.controlRequests.inc({ action: 'force-complete', outcome: 'accepted' });
      return reply.code(202).send();
    },
  );

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v2.1/os-migrations',
      operationId: 'novaListMigrations',
      summary: 'Migrations of every server, newest first (Temporal visibility).',
      description: 'Filters: instance_uuid, status, source_compute, host, migration_type; limit from 2.59. Pagination markers are not supported.',
      tags: ['nova'],
      role: 'read',
      family: 'nova',
      query: OsMigrationsQuery,
      responses: { 200: { description: 'Migrations.', schema: z.object({ migrations: z.array(NovaMigrationSchema) }) } },
    },
    async ({ req, query, microversion }) => {
      const filter = osMigrationsFilter(query, microversion);
      const rows = filter ? await service.listMigrations(filter) : [];
      return { migrations: rows.map((m) => novaMigration(m, microversion, base(req))) };
    },
  );
};
