// A host's maintenance: start (the hostMaintenance workflow disables the host and drains it), show
// (live from the workflow's query while it runs), pause, resume, cancel and leave (its updates:
// accepted with the new view, or 409 with the workflow's reason).
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { MAINTENANCE_STATUSES, type MaintenanceView } from '../../workflows/definitions';
import type { PluginOptions } from '../context';
import { ApiError } from '../errors';
import type { MaintenanceAction } from '../maintenance-service';
import { json, routeSchema, type RouteConfig } from '../route';
import { HostName, NoQuery } from '../schemas';

const FailureSchema = z.object({ type: z.string(), message: z.string() });

export const MaintenanceVmSchema = z
  .object({
    uuid: z.string(),
    name: z.string(),
    memoryBytes: z.number(),
    state: z.enum(['waiting', 'migrating', 'moved', 'failed', 'gone', 'returning', 'returned', 'returnFailed']),
    attempts: z.number().int(),
    migration: z.string().nullable().meta({ description: 'The child liveMigration workflow id (live-migration-<uuid>): /v1/migrations/{uuid} shows it.' }),
    destHost: z.string().nullable(),
    bytesSent: z.number(),
    reason: FailureSchema.nullable().meta({ description: 'Why its last attempt failed, or why it cannot move (e.g. NoValidHost).' }),
  })
  .meta({ id: 'MaintenanceVm' });

export const MaintenanceSchema = z
  .object({
    host: z.string(),
    workflowId: z.string(),
    status: z.enum(MAINTENANCE_STATUSES),
    reason: z.string().nullable(),
    startedAt: z.string(),
    updatedAt: z.string(),
    parallelism: z.number().int(),
    vms: z.array(MaintenanceVmSchema),
    counts: z.object({
      total: z.number().int(),
      moved: z.number().int(),
      migrating: z.number().int(),
      waiting: z.number().int(),
      failed: z.number().int(),
      gone: z.number().int(),
      returned: z.number().int(),
    }),
    bytesMoved: z.number(),
    bytesLeft: z.number(),
    etaSeconds: z.number().nullable(),
    bringBack: z.boolean().nullable(),
  })
  .meta({ id: 'Maintenance', description: "A host's maintenance: the hostMaintenance workflow's status query (a closed run: its result)." });

// The schema and the workflow's view must stay the same type.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const assertTrue = <T extends true>(_t?: T): void => undefined;
assertTrue<Same<z.infer<typeof MaintenanceSchema>, MaintenanceView>>();

const StartBody = z
  .object({
    parallelism: z.number().int().min(1).max(64).optional().meta({ description: 'Migrations at once (default: the outbound limit per host).' }),
    maxAttempts: z.number().int().min(1).max(10).optional().meta({ description: 'Migrations tried per VM before it counts as unable to move (default 3).' }),
  })
  .strict()
  .nullish();
const CancelBody = z
  .object({ abortRunning: z.boolean().optional().meta({ description: 'Abort the running migrations (default false: let them finish).' }) })
  .strict()
  .nullish();
const LeaveBody = z
  .object({ bringBack: z.boolean().optional().meta({ description: 'Bring each VM the drain moved back to this host (default false).' }) })
  .strict()
  .nullish();
const Params = z.object({ name: HostName });

const READ: RouteConfig = { role: 'read', family: 'v1' };
const OPERATOR: RouteConfig = { role: 'operator', family: 'v1' };

export const v1MaintenanceRoutes: FastifyPluginAsync<PluginOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { service } = ctx;
  const tags = ['maintenance'];

  const knownHost = async (name: string) => {
    if (!(await service.hostNow(name))) throw new ApiError('not_found', `Host ${name} could not be found.`);
  };

  app.route({
    method: 'POST',
    url: '/v1/hosts/:name/maintenance',
    config: { ferry: OPERATOR },
    schema: routeSchema(
      OPERATOR,
      {
        operationId: 'startMaintenance',
        summary: 'Put a host in maintenance: disable it and live-migrate every running VM off it.',
        description:
          'Starts the hostMaintenance workflow (id host-maintenance-<host>): host.disable, then each running VM as a child ' +
          'liveMigration (largest first, under the migration limits), failures retried on another run of the scheduler, ' +
          'VMs that cannot move reported. The run stays open until leave.',
        tags,
      },
      { params: Params, querystring: NoQuery, body: StartBody },
      { 202: json('Accepted: the workflow runs.', MaintenanceSchema) },
      { backend: true, more: { 404: 'No such host.', 409: 'The host is already in maintenance.' } },
    ),
    handler: async (req, reply) => {
      await knownHost(req.params.name);
      const view = await service.maintenance.start(req.params.name, req.body ?? {});
      return reply.code(202).header('location', `/v1/hosts/${req.params.name}/maintenance`).send(view);
    },
  });

  app.route({
    method: 'GET',
    url: '/v1/hosts/:name/maintenance',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      {
        operationId: 'showMaintenance',
        summary: "A host's latest maintenance with each VM's state, bytes moved and the estimated time left.",
        tags,
      },
      { params: Params, querystring: NoQuery },
      { 200: json('The maintenance.', MaintenanceSchema) },
      { backend: true, more: { 404: 'No such host, or it was never in maintenance.' } },
    ),
    handler: async (req) => {
      const view = await service.maintenance.get(req.params.name);
      if (!view) throw new ApiError('not_found', `Host ${req.params.name} has no maintenance.`);
      return view;
    },
  });

  const control = (action: MaintenanceAction, summary: string, body?: typeof CancelBody | typeof LeaveBody) =>
    app.route({
      method: 'POST',
      url: `/v1/hosts/:name/maintenance/${action}`,
      config: { ferry: OPERATOR },
      schema: routeSchema(
        OPERATOR,
        { operationId: `${action}Maintenance`, summary, tags },
        { params: Params, querystring: NoQuery, body: body ?? z.object({}).strict().nullish() },
        { 202: json('The workflow accepted: the maintenance as it is now.', MaintenanceSchema) },
        {
          backend: true,
          more: { 404: 'No such host, or it was never in maintenance.', 409: "The workflow refused; the message is its reason (e.g. leave while draining)." },
        },
      ),
      handler: async (req, reply) => {
        const options = (req.body ?? {}) as { abortRunning?: boolean; bringBack?: boolean };
        const view = await service.maintenance.control(req.params.name, action, options);
        if (!view) throw new ApiError('not_found', `Host ${req.params.name} has no maintenance.`);
        return reply.code(202).send(view);
      },
    });
  control('pause', 'Pause the drain: no new migration starts; running ones go on.');
  control('resume', 'Resume a paused drain.');
  control('cancel', 'Cancel the drain: running migrations finish (or are aborted with abortRunning); the host stays disabled until leave.', CancelBody);
  control('leave', 'Leave maintenance: enable the host and, with bringBack, migrate the moved VMs back to it.', LeaveBody);
};
