// Operations endpoints: liveness, readiness (Temporal answers), Prometheus metrics, the OpenAPI document.
import type { FastifyPluginAsync } from 'fastify';
import { HealthSchema } from '../schemas';
import { buildOpenApi } from '../openapi';
import type { PluginOptions } from '../context';
import { addRoute } from '../route-spec';

export const healthRoutes: FastifyPluginAsync<PluginOptions> = async (app, { ctx }) => {
  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/healthz',
      operationId: 'healthz',
      summary: 'Liveness: the API process answers.',
      tags: ['operations'],
      role: null,
      family: 'v1',
      responses: { 200: { description: 'Alive.', schema: HealthSchema } },
    },
    async () => ({ status: 'ok' }),
  );

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/readyz',
      operationId: 'readyz',
      summary: 'Readiness: Temporal answers and a conductor worker polls its queue.',
      tags: ['operations'],
      role: null,
      family: 'v1',
      responses: {
        200: { description: 'Ready.', schema: HealthSchema },
        503: { description: 'Temporal does not answer.', schema: HealthSchema },
      },
    },
    async ({ reply }) => {
      const ready = await ctx.service.checkReady().catch((err: Error) => ({ ok: false, checks: { temporal: err.message } }));
      reply.code(ready.ok ? 200 : 503);
      return { status: ready.ok ? 'ok' : 'unavailable', checks: ready.checks };
    },
  );

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/metrics',
      operationId: 'metrics',
      summary: 'Prometheus metrics (text exposition format 0.0.4): requests, migrations by status, their duration, bytes, downtime and queue wait, slots per host.',
      tags: ['operations'],
      role: null,
      family: 'v1',
      responses: { 200: { description: 'Metrics.', contentType: 'text/plain; version=0.0.4' } },
    },
    async ({ reply }) => {
      const text = await ctx.metrics.render();
      reply.type(ctx.metrics.contentType);
      return text;
    },
  );

  addRoute(
    app,
    ctx,
    {
      method: 'GET',
      url: '/openapi.json',
      operationId: 'openapi',
      summary: 'This API, as an OpenAPI 3.1 document generated from its zod schemas.',
      tags: ['operations'],
      role: null,
      family: 'v1',
      responses: { 200: { description: 'OpenAPI 3.1 document.', contentType: 'application/json' } },
    },
    async () => buildOpenApi(ctx.registry.routes),
  );
};
