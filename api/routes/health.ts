// Operations endpoints: liveness, readiness (Temporal answers), Prometheus metrics, the OpenAPI document.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PluginOptions } from '../context';
import { json, routeSchema, text, type RouteConfig } from '../route';
import { HealthSchema } from '../schemas';

const PUBLIC: RouteConfig = { role: null, family: 'v1' };

export const healthRoutes: FastifyPluginAsync<PluginOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.route({
    method: 'GET',
    url: '/healthz',
    config: { ferry: PUBLIC },
    schema: routeSchema(PUBLIC, { operationId: 'healthz', summary: 'Liveness: the API process answers.', tags: ['operations'] }, {}, {
      200: json('Alive.', HealthSchema),
    }),
    handler: async () => ({ status: 'ok' as const }),
  });

  app.route({
    method: 'GET',
    url: '/readyz',
    config: { ferry: PUBLIC },
    schema: routeSchema(PUBLIC, { operationId: 'readyz', summary: 'Readiness: Temporal answers and a conductor worker polls its queue.', tags: ['operations'] }, {}, {
      200: json('Ready.', HealthSchema),
      503: json('Temporal does not answer, or no conductor polls its queue.', HealthSchema),
    }),
    handler: async (_req, reply) => {
      const ready = await ctx.service.checkReady().catch((err: Error) => ({ ok: false, checks: { temporal: err.message } }));
      return reply.code(ready.ok ? 200 : 503).send({ status: ready.ok ? 'ok' : 'unavailable', checks: ready.checks });
    },
  });

  app.route({
    method: 'GET',
    url: '/metrics',
    config: { ferry: PUBLIC },
    schema: routeSchema(
      PUBLIC,
      {
        operationId: 'metrics',
        summary:
          'Prometheus metrics (text exposition format 0.0.4): requests, migrations by status, their duration, bytes, downtime and queue wait, slots per host.',
        tags: ['operations'],
      },
      {},
      { 200: text('Metrics.', 'text/plain') },
    ),
    handler: async (_req, reply) => {
      const body = await ctx.metrics.render();
      return reply.type(ctx.metrics.contentType).send(body);
    },
  });

  app.route({
    method: 'GET',
    url: '/openapi.json',
    config: { ferry: PUBLIC },
    schema: routeSchema(
      PUBLIC,
      { operationId: 'openapi', summary: 'This API, as an OpenAPI 3.1 document generated from its zod schemas by @fastify/swagger.', tags: ['operations'] },
      {},
      { 200: json('OpenAPI 3.1 document.', z.record(z.string(), z.unknown())) },
    ),
    handler: async () => fastify.swagger() as unknown as Record<string, unknown>,
  });
};
