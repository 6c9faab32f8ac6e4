// ferry's own migration API: start (202 + Location), list (one Temporal visibility query: search
// attributes and memo), show (a closed run from its memo, a running one from its status query, live),
// abort and force-complete (the workflow's updates: accepted, or 409 with the workflow's reason), and
// a Server-Sent Events stream of progress.
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { MigrationStatusView } from '../../workflows/definitions';
import { FINAL_STATUSES, type PluginOptions } from '../context';
import { ApiError } from '../errors';
import { RefusedError } from '../ferry-service';
import { startLiveMigration } from '../operations';
import { addRoute } from '../route-spec';
import {
  AbortBodySchema,
  ControlAcceptedSchema,
  ListMigrationsQuerySchema,
  MigrationIdParams,
  MigrationListSchema,
  MigrationSchema,
  MigrationStartedSchema,
  StartMigrationSchema,
} from '../schemas';

const EventsQuery = z
  .object({ interval: z.coerce.number().int().min(100).max(10_000).optional().meta({ description: 'Poll interval in ms (default 500).' }) })
  .strict();

export function migrationLocation(runId: string): string {
  return `/v1/migrations/${runId}`;
}

export const v1MigrationRoutes: FastifyPluginAsync<PluginOptions> = async (app, { ctx }) => {
  const { service, metrics } = ctx;

  const load = async (id: string): Promise<MigrationStatusView> => {
    const view = await service.getMigration(id);
    if (!view) throw new ApiError('not_found', `Migration ${id} could not be found.`);
    return view;
  };

  addRoute(
    app,
    ctx,
    {
      method: 'POST',
      url: '/v1/migrations',
      operationId: 'startMigration',
      summary: 'Start a live migration of an instance.',
      description:
        'Starts the liveMigration workflow (id live-migration-<instanceUuid>, so one per instance at a time). ' +
        'Answers 202 with the migration id (the workflow run id) and its Location.',
      tags: ['migrations'],
      role: 'operator',
      family: 'v1',
      body: StartMigrationSchema,
      responses: {
        202: { description: 'Accepted: the workflow runs.', schema: MigrationStartedSchema, headers: { Location: 'The migration: /v1/migrations/{id}.' } },
        404: { description: 'No such instance.' },
        409: { description: 'The instance is not active or paused, or already migrating.' },
      },
    },
    async ({ body, principal, reply }) => {
      const started = await startLiveMigration(service, {
        ...body,
        requestedBy: { userId: principal?.userId ?? 'anonymous', projectId: 'ferry' },
      });
      metrics.migrationsStarted.inc();
      const location = migrationLocation(started.runId);
      reply.code(202).header('location', location);
      return { id: started.runId, workflowId: started.workflowId, novaId: started.novaId, instanceUuid: body.instanceUuid.toLowerCase(), location };
    },
  );

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v1/migrations',
      operationId: 'listMigrations',
      summary: 'List migrations, newest first, filtered by status, host and instance.',
      description:
        'One Temporal visibility query (search attributes MigrationStatus, SourceHost, DestHost, InstanceUuid); each row is the ' +
        "migration's memo: a closed migration's final view, a running one's view as of its last change of status or 10 % of progress " +
        '(status and hosts are current). Show a migration for its live progress.',
      tags: ['migrations'],
      role: 'read',
      family: 'v1',
      query: ListMigrationsQuerySchema,
      responses: { 200: { description: 'Migrations.', schema: MigrationListSchema } },
    },
    async ({ query }) => {
      const migrations = await service.listMigrations({
        status: query.status,
        host: query.host,
        instanceUuid: query.instance,
        open: query.open === undefined ? undefined : query.open === 'true',
        limit: query.limit,
      });
      return { migrations };
    },
  );

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v1/migrations/:id',
      operationId: 'showMigration',
      summary: 'One migration with its live progress.',
      description:
        "A running migration: the workflow's status query (1 s deadline, else its memo) with the transfer's latest heartbeat. " +
        'A closed one: its final view from the memo, kept in memory after the first read.',
      tags: ['migrations'],
      role: 'read',
      family: 'v1',
      params: MigrationIdParams,
      responses: { 200: { description: 'The migration.', schema: MigrationSchema }, 404: { description: 'No such migration.' } },
    },
    async ({ params }) => load(params.id),
  );

  const control = (action: 'abort' | 'force-complete') =>
    addRoute(
      app,
      ctx,
      {
        method: 'POST',
        url: `/v1/migrations/:id/${action}`,
        operationId: action === 'abort' ? 'abortMigration' : 'forceCompleteMigration',
        summary:
          action === 'abort'
            ? 'Abort: cancel the transfer and roll back (the requestAbort update).'
            : 'Force-complete: pause the VM on the source so that pre-copy converges (the requestForceComplete update).',
        tags: ['migrations'],
        role: 'operator',
        family: 'v1',
        params: MigrationIdParams,
        body: action === 'abort' ? AbortBodySchema.optional() : z.object({}).strict().optional(),
        responses: {
          202: { description: 'The workflow accepted the request.', schema: ControlAcceptedSchema },
          404: { description: 'No such migration.' },
          409: { description: 'The workflow refused; the message is its reason (e.g. past the point of no return, already finished).' },
        },
      },
      async ({ params, body, reply }) => {
        try {
          const reason = body && 'reason' in body ? body.reason : undefined;
          const answer = action === 'abort' ? await service.abort(params.id, reason) : await service.forceComplete(params.id);
          metrics.controlRequests.inc({ action, outcome: 'accepted' });
          reply.code(202);
          return answer;
        } catch (err) {
          if (err instanceof RefusedError) metrics.controlRequests.inc({ action, outcome: 'refused' });
          throw err;
        }
      },
    );
  control('abort');
  control('force-complete');

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v1/migrations/:id/events',
      operationId: 'migrationEvents',
      summary: 'Server-Sent Events: the migration each time it changes, until it reaches a final status.',
      description:
        'Events: `migration` (data: the Migration object) whenever status, phase or progress change; `error` ' +
        '(data: {code, message}) when Temporal does not answer for a while; `end` (data: the final Migration) last.',
      tags: ['migrations'],
      role: 'read',
      family: 'v1',
      params: MigrationIdParams,
      query: EventsQuery,
      responses: { 200: { description: 'text/event-stream of migration events.', contentType: 'text/event-stream' }, 404: { description: 'No such migration.' } },
    },
    async ({ params, query, req, reply, log }) => {
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
      });
      let closed = false;
      req.raw.on('close', () => {
        closed = true;
      });
      const send = (event: string, data: unknown) => {
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
        // A server going away ends the stream without `end`: the client reconnects elsewhere.
        if (!ctx.closing) send('end', view);
        res.end();
      }
    },
  );
};
