// Hosts and instances, from the host inventory (each agent's latest report, lib/host-inventory.ts),
// joined with the running migrations from Temporal visibility.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { HostView, InstanceView } from '../../workflows/definitions';
import type { PluginOptions } from '../context';
import { ApiError } from '../errors';
import type { MigrationSummary } from '../ferry-service';
import { json, routeSchema, type RouteConfig } from '../route';
import { HostListSchema, HostName, HostSchema, InstanceListSchema, InstanceSchema, NoQuery, Uuid } from '../schemas';

type HostOut = z.infer<typeof HostSchema>;
type InstanceOut = z.infer<typeof InstanceSchema>;

function hostOut(host: HostView, running: MigrationSummary[]): HostOut {
  return {
    name: host.name,
    pool: host.pool,
    up: host.up,
    downReason: host.downReason,
    enabled: host.enabled,
    productVersion: host.productVersion,
    platformVersion: host.platformVersion,
    memoryTotalBytes: host.memoryTotalBytes,
    memoryFreeBytes: host.memoryFreeBytes,
    instanceCount: host.instances.length,
    migrations: {
      outbound: running.filter((m) => m.sourceHost === host.name).map((m) => m.runId),
      inbound: running.filter((m) => m.destHost === host.name).map((m) => m.runId),
    },
  };
}

function instanceOut(instance: InstanceView, running: Map<string, MigrationSummary>): InstanceOut {
  const m = running.get(instance.uuid.toLowerCase());
  return { ...instance, migration: m ? { id: m.runId, status: m.status, workflowId: m.workflowId } : null };
}

const READ: RouteConfig = { role: 'read', family: 'v1' };

export const v1HostRoutes: FastifyPluginAsync<PluginOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { service } = ctx;
  const snapshot = async () => {
    const [cluster, running] = await Promise.all([service.describeCluster(), service.listMigrationSummaries({ open: true, limit: 1000 })]);
    return { cluster, running, byInstance: new Map(running.map((m) => [m.instanceUuid.toLowerCase(), m])) };
  };
  const tags = ['cluster'];

  app.route({
    method: 'GET',
    url: '/v1/hosts',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'listHosts', summary: 'Hosts: up or down (agent polling and XenAPI answering), capacity, running migrations.', tags },
      { querystring: NoQuery },
      { 200: json('Hosts.', HostListSchema) },
      { backend: true },
    ),
    handler: async () => {
      const { cluster, running } = await snapshot();
      return { hosts: cluster.hosts.map((h) => hostOut(h, running)), observedAt: cluster.observedAt };
    },
  });

  app.route({
    method: 'GET',
    url: '/v1/hosts/:name',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'showHost', summary: 'One host.', tags },
      { params: z.object({ name: HostName }), querystring: NoQuery },
      { 200: json('The host.', HostSchema) },
      { backend: true, more: { 404: 'No such host.' } },
    ),
    handler: async (req) => {
      const { cluster, running } = await snapshot();
      const host = cluster.hosts.find((h) => h.name === req.params.name);
      if (!host) throw new ApiError('not_found', `Host ${req.params.name} could not be found.`);
      return hostOut(host, running);
    },
  });

  app.route({
    method: 'GET',
    url: '/v1/instances',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'listInstances', summary: 'Instances on every host, with their running migration.', tags },
      { querystring: z.object({ host: HostName.optional() }).strict() },
      { 200: json('Instances.', InstanceListSchema) },
      { backend: true },
    ),
    handler: async (req) => {
      const { cluster, byInstance } = await snapshot();
      const instances = cluster.hosts
        .filter((h) => req.query.host === undefined || h.name === req.query.host)
        .flatMap((h) => h.instances.map((i) => instanceOut(i, byInstance)));
      return { instances, observedAt: cluster.observedAt };
    },
  });

  app.route({
    method: 'GET',
    url: '/v1/instances/:uuid',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'showInstance', summary: 'One instance and its running migration.', tags },
      { params: z.object({ uuid: Uuid }), querystring: NoQuery },
      { 200: json('The instance.', InstanceSchema) },
      { backend: true, more: { 404: 'No such instance.' } },
    ),
    handler: async (req) => {
      const [located, { byInstance }] = await Promise.all([service.locateInstance(req.params.uuid), snapshot()]);
      if (!located) throw new ApiError('not_found', `Instance ${req.params.uuid} could not be found.`);
      return instanceOut(located.instance, byInstance);
    },
  });
};
