// ferry's own migration API: start (202 + Location), list (one Temporal visibility query: search
// attributes and memo), show (a closed run from its memo, a running one from its status query, live),
// abort and force-complete (the workflow's updates: accepted, or 409 with the workflow's reason), and
// a Server-Sent Events stream of progress.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { MigrationStatusView } from '../../workflows/definitions';
import { FINAL_STATUSES, type PluginOptions } from '../context';
import { ApiError } from '../errors';
import { RefusedError } from '../ferry-service';
import { startLiveMigration } from '../operations';
import { json, routeSchema, type RouteConfig } from '../route';
import {
  AbortBodySchema,
  ControlAcceptedSchema,
  ListMigrationsQuerySchema,
  MigrationIdParams,
  MigrationListSchema,
  MigrationSchema,
  MigrationStartedSchema,
  NoQuery,
  queryInteger,
  StartMigrationSchema,
} from '../schemas';

const EventsQuery = z
  .object({ interval: queryInteger(/^(?:[1-9]\d{2,3}|10000)$/, 'Poll interval in ms, 100 to 10000 (default 500).').optional() })
  .strict();

/** What an `error` event's data says. */
export const StreamErrorSchema = z.object({ code: z.string(), message: z.string() }).meta({ id: 'StreamError' });

/**
 * One event of the progress stream as it is on the wire (OpenAPI 3.1 describes each event of a
 * text/event-stream with the schema): its `event` name and its `data` line, a JSON text.
 */
export const MigrationEventSchema = z
  .object({
    event: z.enum(['migration', 'end', 'error']),
    data: z.string().meta({
      contentMediaType: 'application/json',
      description: 'JSON: a Migration for `migration` and `end`, a StreamError for `error`.',
    }),
  })
  .meta({
    id: 'MigrationEvent',
    description:
      'One Server-Sent Event: `migration` (data: the Migration) whenever status, phase or progress change; `error` (data: {code, message}) ' +
      'when Temporal does not answer for a while; `end` (data: the final Migration) last.',
  });

const READ: RouteConfig = { role: 'read', family: 'v1' };
const OPERATOR: RouteConfig = { role: 'operator', family: 'v1' };

export function migrationLocation(runId: string): string {
  return `/v1/migrations/${runId}`;
}

export const v1MigrationRoutes: FastifyPluginAsync<PluginOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { service, metrics } = ctx;
  const tags = ['migrations'];

  const load = async (id: string): Promise<MigrationStatusView> => {
    const view = await service.getMigration(id);
    if (!view) throw new ApiError('not_found', `Migration ${id} could not be found.`);
    return view;
  };

  app.route({
    method: 'POST',
    url: '/v1/migrations',
    config: { ferry: OPERATOR },
    schema: routeSchema(
      OPERATOR,
      {
        operationId: 'startMigration',
        summary: 'Start a live migration of an instance.',
        description:
          'Starts the liveMigration workflow (id live-migration-<instanceUuid>, so one per instance at a time). ' +
          'Answers 202 with the migration id (the workflow run id) and its Location.',
        tags,
      },
      { querystring: NoQuery, body: StartMigrationSchema },
      {
        202: {
          ...json('Accepted: the workflow runs.', MigrationStartedSchema),
          headers: z.object({ location: z.string().meta({ description: 'The migration: /v1/migrations/{id}.' }) }),
        },
      },
      {
        backend: true,
        more: {
          404: 'No such instance.',
          409: 'The instance is not active or paused, or already migrating.',
          400: 'Invalid body; or the requested host does not exist or is the current one.',
        },
      },
    ),
    handler: async (req, reply) => {
      const body = req.body;
      const started = await startLiveMigration(service, {
        ...body,
        requestedBy: { userId: req.principal?.userId ?? 'anonymous', projectId: req.principal?.projectId ?? 'ferry' },
      });
      metrics.migrationsStarted.inc();
      const location = migrationLocation(started.runId);
      return reply
        .code(202)
        .header('location', location)
        .send({ id: started.runId, workflowId: started.workflowId, novaId: started.novaId, instanceUuid: body.instanceUuid.toLowerCase(), location });
    },
  });

  app.route({
    method: 'GET',
    url: '/v1/migrations',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      {
        operationId: 'listMigrations',
        summary: 'List migrations, newest first, filtered by status, host and instance.',
        description:
          'One Temporal visibility query (search attributes MigrationStatus, SourceHost, DestHost, InstanceUuid); each row is the ' +
          "migration's memo: a closed migration's final view, a running one's view as of its last change of status or 10 % of progress " +
          '(status and hosts are current). Show a migration for its live progress.',
        tags,
      },
      { querystring: ListMigrationsQuerySchema },
      { 200: json('Migrations.', MigrationListSchema) },
      { backend: true },
    ),
    handler: async (req) => {
      const { query } = req;
      const migrations = await service.listMigrations({
        status: query.status,
        host: query.host,
        instanceUuid: query.instance,
        open: query.open === undefined ? undefined : query.open === 'true',
        limit: query.limit ?? 50,
      });
      return { migrations };
    },
  });

  app.route({
    method: 'GET',
    url: '/v1/migrations/:id',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      {
        operationId: 'showMigration',
        summary: 'One migration with its live progress.',
        description:
          "A running migration: the workflow's status query (1 s deadline, else its memo) with the transfer's latest heartbeat. " +
          'A closed one: its final view from the memo, kept in memory after the first read.',
        tags,
      },
      { params: MigrationIdParams, querystring: NoQuery },
      { 200: json('The migration.', MigrationSchema) },
      { backend: true, more: { 404: 'No such migration.' } },
    ),
    handler: async (req) => load(req.params.id),
  });

  const control = (action: 'abort' | 'force-complete') =>
    app.route({
      method: 'POST',
      url: `/v1/migrations/:id/${action}`,
      config: { ferry: OPERATOR },
      schema: routeSchema(
        OPERATOR,
        {
          operationId: action === 'abort' ? 'abortMigration' : 'forceCompleteMigration',
          summary:
            action === 'abort'
              ? 'Abort: cancel the transfer and roll back (the requestAbort update).'
              : 'Force-complete: pause the VM on the source so that pre-copy converges (the requestForceComplete update).',
          tags,
        },
        { params: MigrationIdParams, querystring: NoQuery, body: (action === 'abort' ? AbortBodySchema : z.object({}).strict()).nullish() },
        { 202: json('The workflow accepted the request.', ControlAcceptedSchema) },
        {
          backend: true,
          more: {
            404: 'No such migration.',
            409: 'The workflow refused; the message is its reason (e.g. past the point of no return, already finished).',
          },
        },
      ),
      handler: async (req, reply) => {
        const { params, body } = req;
        try {
          const reason = body && 'reason' in body ? body.reason : undefined;
          const answer = action === 'abort' ? await service.abort(params.id, reason) : await service.forceComplete(params.id);
          metrics.controlRequests.inc({ action, outcome: 'accepted' });
          return reply.code(202).send(answer);
        } catch (err) {
          if (err instanceof RefusedError) metrics.controlRequests.inc({ action, outcome: 'refused' });
          throw err;
        }
      },
    });
  control('abort');
  control('force-complete');

  app.route({
    method: 'GET',
    url: '/v1/migrations/:id/events',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      {
        operationId: 'migrationEvents',
        summary: 'Server-Sent Events: the migration each time it changes, until it reaches a final status.',
        description:
          'A text/event-stream whose events are MigrationEvent: `event: migration|error|end` and one `data:` line of JSON. ' +
          '`migration` (data: the Migration object) whenever status, phase or progress change; `error` ' +
          '(data: {code, message}) when Temporal does not answer for a while; `end` (data: the final Migration) last.',
        tags,
      },
      { params: MigrationIdParams, querystring: EventsQuery },
      { 200: { description: 'text/event-stream of MigrationEvent.', content: { 'text/event-stream': { schema: MigrationEventSchema } } } },
      { backend: true, more: { 404: 'No such migration.' } },
    ),
    handler: async (req, reply) => {
      const { params, query, log } = req;
      let view = await load(params.id);
      metrics.streams.inc();
      const interval = query.interval ?? ctx.pollIntervalMs;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        // One stream per connection: when the stream ends the socket goes too, so close() never waits on it.
        connection: 'close',
        'x-accel-buffering': 'no',
        'x-openstack-request-id': req.id,
      });
      let closed = false;
      req.raw.on('close', () => {
        closed = true;
      });
      const send = (event: z.infer<typeof MigrationEventSchema>['event'], data: MigrationStatusView | z.infer<typeof StreamErrorSchema>) => {
        if (!closed) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      const fingerprint = (v: MigrationStatusView) => JSON.stringify([v.status, v.phase, v.progress, v.dest_compute, v.error, v.updated_at]);
      let last = fingerprint(view);
      send('migration', view);
      let failures = 0;
      while (!closed && !ctx.closing && !FINAL_STATUSES.has(view.status)) {
        await new Promise((resolve) => setTimeout(resolve, interval));
        if (closed || ctx.closing) break;
        try {
          const next = await service.getMigration(params.id);
          if (!next) throw new Error('the migration disappeared');
          failures = 0;
          view = next;
          const print = fingerprint(view);
          if (print !== last) {
            last = print;
            send('migration', view);
          }
        } catch (err) {
          failures += 1;
          log.warn({ err, failures }, 'progress stream: status query failed');
          send('error', { code: 'unavailable', message: (err as Error).message });
          if (failures >= 20) break;
        }
      }
      if (!closed) {
        // `end` carries the final migration. A server going away, or Temporal not answering for a
        // while, ends the stream without it: the client reconnects and watches on.
        if (FINAL_STATUSES.has(view.status)) send('end', view);
        res.end();
      }
    },
  });
};
