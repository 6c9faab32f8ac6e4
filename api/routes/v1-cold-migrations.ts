// ferry's own resize and cold migration API (the coldMigration workflow):
//   POST /v1/cold-migrations               start: {instanceUuid, flavor?, host?}; 202 + Location
//   GET  /v1/cold-migrations               list, newest first (instance, open, type, status, limit)
//   GET  /v1/cold-migrations/{id}          one, by run id or instance uuid (its latest): status, step,
//                                          disk bytes moved, downtime, when it confirms by itself
//   POST /v1/cold-migrations/{id}/confirm  the confirmResize update (twice answers the same)
//   POST /v1/cold-migrations/{id}/revert   the revertResize update (after a confirm: 409 with why)
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { COLD_MIGRATION_STATUSES } from '../../workflows/cold-migration-definitions';
import { startColdMigration } from '../cold-operations';
import { ColdMigrationListSchema, ColdMigrationSchema } from '../cold-views';
import type { PluginOptions } from '../context';
import { ApiError } from '../errors';
import { MigrationNotFoundError } from '../ferry-service';
import { json, routeSchema, type RouteConfig } from '../route';
import { HostName, NoQuery, Uuid, queryInteger } from '../schemas';

const READ: RouteConfig = { role: 'read', family: 'v1' };
const OPERATOR: RouteConfig = { role: 'operator', family: 'v1' };

export const StartColdMigrationSchema = z
  .object({
    instanceUuid: Uuid,
    flavor: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .meta({ description: "A resize: the flavor's id or name (temporal.yaml flavors). Absent: a cold migration that keeps the size." }),
    host: HostName.nullish().meta({ description: 'Destination host; absent or null lets the scheduler choose.' }),
  })
  .strict()
  .meta({ id: 'StartColdMigration' });

const ListQuery = z
  .object({
    instance: Uuid.optional(),
    open: z.enum(['true', 'false']).optional().meta({ description: 'true: in progress or waiting for confirm/revert; false: confirmed, reverted or error.' }),
    type: z.enum(['resize', 'migration']).optional(),
    status: z.enum(COLD_MIGRATION_STATUSES).optional(),
    limit: queryInteger(/^(?:[1-9]\d{0,1}|[1-4]\d{2}|500)$/, 'At most this many, 1 to 500 (default 50).').optional(),
  })
  .strict();

const IdParams = z.object({ id: Uuid.meta({ description: 'Cold migration id (workflow run id), or an instance uuid for its latest.' }) });

export function coldMigrationLocation(runId: string): string {
  return `/v1/cold-migrations/${runId}`;
}

export const v1ColdMigrationRoutes: FastifyPluginAsync<PluginOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { service, metrics } = ctx;
  const tags = ['migrations'];

  app.route({
    method: 'POST',
    url: '/v1/cold-migrations',
    config: { ferry: OPERATOR },
    schema: routeSchema(
      OPERATOR,
      {
        operationId: 'startColdMigration',
        summary: 'Resize (with a flavor) or cold-migrate an instance.',
        description:
          'Starts the coldMigration workflow (id cold-migration-<instanceUuid>: one per instance at a time). It copies the disks while the VM runs, ' +
          'shuts it down, copies what changed, starts it on the destination with the new size, and waits in status finished (VERIFY_RESIZE) for ' +
          'confirm or revert, or for migration.resizeConfirmWindowSeconds when that is set. Answers 202 with the first view and its Location.',
        tags,
      },
      { querystring: NoQuery, body: StartColdMigrationSchema },
      {
        202: {
          ...json('Accepted: the workflow runs.', ColdMigrationSchema),
          headers: z.object({ location: z.string().meta({ description: 'The cold migration: /v1/cold-migrations/{id}.' }) }),
        },
      },
      {
        backend: true,
        more: {
          404: 'No such instance, flavor or host.',
          409: 'The instance is paused, suspended, migrating or resizing; the flavor is its own or has a smaller disk; the host is its own.',
        },
      },
    ),
    handler: async (req, reply) => {
      const body = req.body;
      const view = await startColdMigration(
        service,
        ctx.config.flavors,
        {
          instanceUuid: body.instanceUuid,
          ...(body.flavor !== undefined ? { flavorRef: body.flavor } : {}),
          host: body.host ?? null,
          requestedBy: { userId: req.principal?.userId ?? 'anonymous', projectId: req.principal?.projectId ?? 'ferry' },
        },
        { autoConfirmSeconds: ctx.config.migration.resizeConfirmWindowSeconds, refusals: 'v1' },
      );
      metrics.migrationsStarted.inc();
      return reply.code(202).header('location', coldMigrationLocation(view.uuid)).send(view);
    },
  });

  app.route({
    method: 'GET',
    url: '/v1/cold-migrations',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      {
        operationId: 'listColdMigrations',
        summary: 'Resizes and cold migrations, newest first.',
        description: 'One visibility query; each open run answers its status query (2 s, then what visibility says), each closed one its final view.',
        tags,
      },
      { querystring: ListQuery },
      { 200: json('Resizes and cold migrations.', ColdMigrationListSchema) },
      { backend: true },
    ),
    handler: async (req) => {
      const { query } = req;
      const coldMigrations = await service.coldMigrations.list({
        instanceUuid: query.instance,
        open: query.open === undefined ? undefined : query.open === 'true',
        migrationType: query.type,
        status: query.status,
        limit: query.limit ?? 50,
      });
      return { coldMigrations };
    },
  });

  app.route({
    method: 'GET',
    url: '/v1/cold-migrations/:id',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'getColdMigration', summary: 'One resize or cold migration, live while it runs: step, disk bytes moved, downtime.', tags },
      { params: IdParams, querystring: NoQuery },
      { 200: json('The cold migration.', ColdMigrationSchema) },
      { backend: true, more: { 404: 'No such cold migration, and no instance with one.' } },
    ),
    handler: async (req) => {
      const view = await service.coldMigrations.get(req.params.id);
      if (!view) throw new ApiError('not_found', `Cold migration ${req.params.id} could not be found.`);
      return view;
    },
  });

  for (const action of ['confirm', 'revert'] as const) {
    app.route({
      method: 'POST',
      url: `/v1/cold-migrations/:id/${action}`,
      config: { ferry: OPERATOR },
      schema: routeSchema(
        OPERATOR,
        {
          operationId: action === 'confirm' ? 'confirmColdMigration' : 'revertColdMigration',
          summary:
            action === 'confirm'
              ? 'Confirm a finished resize or cold migration (the confirmResize update): the source VM, its disks and the snapshot are removed.'
              : 'Revert a finished resize or cold migration (the revertResize update): the copy is removed and the source VM starts again with its old size.',
          description: `Answers at once with the view (status ${action === 'confirm' ? 'confirming' : 'reverting'}); the work runs after. ${
            action === 'confirm' ? 'Confirming again answers the same.' : 'A revert after a confirm is refused (409, with why).'
          }`,
          tags,
        },
        { params: IdParams, querystring: NoQuery },
        { 200: json('Accepted: the view.', ColdMigrationSchema) },
        { backend: true, more: { 404: 'No such cold migration.', 409: "The workflow refused (not finished yet, already confirmed or reverted); the message is its reason." } },
      ),
      handler: async (req) => {
        try {
          const view = action === 'confirm' ? await service.coldMigrations.confirm(req.params.id) : await service.coldMigrations.revert(req.params.id);
          metrics.controlRequests.inc({ action, outcome: 'accepted' });
          return view;
        } catch (err) {
          if (err instanceof MigrationNotFoundError) throw new ApiError('not_found', err.message);
          metrics.controlRequests.inc({ action, outcome: 'refused' });
          throw err;
        }
      },
    });
  }
};
