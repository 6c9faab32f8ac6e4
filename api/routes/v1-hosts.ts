// Hosts and instances, from the describeCluster workflow (which asks every host agent), joined with
// the running migrations from Temporal visibility.
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { HostView, InstanceView } from '../../workflows/definitions';
import type { PluginOptions } from '../context';
import { ApiError } from '../errors';
import type { MigrationSummary } from '../ferry-service';

import { addRoute } from '../route-spec';
import { HostListSchema, HostName, HostSchema, InstanceListSchema, InstanceSchema, Uuid } from '../schemas';

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

export const v1HostRoutes: FastifyPluginAsync<PluginOptions> = async (app, { ctx }) => {
  const { service } = ctx;
  const snapshot = async () => {
    const [cluster, running] = await Promise.all([service.describeCluster(), service.listMigrationSummaries({ open: true, limit: 1000 })]);
    return { cluster, running, byInstance: new Map(running.map((m) => [m.instanceUuid.toLowerCase(), m])) };
  };

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v1/hosts',
      operationId: 'listHosts',
      summary: 'Hosts: up or down (agent polling and XenAPI answering), capacity, running migrations.',
      tags: ['cluster'],
      role: 'read',
      family: 'v1',
      responses: { 200: { description: 'Hosts.', schema: HostListSchema } },
    },
    async () => {
      const { cluster, running } = await snapshot();
      return { hosts: cluster.hosts.map((h) => hostOut(h, running)), observedAt: cluster.observedAt };
    },
  );

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v1/hosts/:name',
      operationId: 'showHost',
      summary: 'One host.',
      tags: ['cluster'],
      role: 'read',
      family: 'v1',
      params: z.object({ name: HostName }),
      responses: { 200: { description: 'The host.', schema: HostSchema }, 404: { description: 'No such host.' } },
    },
    async ({ params }) => {
      const { cluster, running } = await snapshot();
      const host = cluster.hosts.find((h) => h.name === params.name);
      if (!host) throw new ApiError('not_found', `Host ${params.name} could not be found.`);
      return hostOut(host, running);
    },
  );

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v1/instances',
      operationId: 'listInstances',
      summary: 'Instances on every host, with their running migration.',
      tags: ['cluster'],
      role: 'read',
      family: 'v1',
      query: z.object({ host: HostName.optional() }).strict(),
      responses: { 200: { description: 'Instances.', schema: InstanceListSchema } },
    },
    async ({ query }) => {
      const { cluster, byInstance } = await snapshot();
      const instances = cluster.hosts
        .filter((h) => query.host === undefined || h.name === query.host)
        .flatMap((h) => h.instances.map((i) => instanceOut(i, byInstance)));
      return { instances, observedAt: cluster.observedAt };
    },
  );

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/v1/instances/:uuid',
      operationId: 'showInstance',
      summary: 'One instance and its running migration.',
      tags: ['cluster'],
      role: 'read',
      family: 'v1',
      params: z.object({ uuid: Uuid }),
      responses: { 200: { description: 'The instance.', schema: InstanceSchema }, 404: { description: 'No such instance.' } },
    },
    async ({ params }) => {
      const [located, { byInstance }] = await Promise.all([service.locateInstance(params.uuid), snapshot()]);
      if (!located) throw new ApiError('not_found', `Instance ${params.uuid} could not be found.`);
      return instanceOut(located.instance, byInstance);
    },
  );
};
