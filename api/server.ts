// The operator API: a Fastify server built from one plugin per route group. Errors are rendered in
// Nova's shape under / and /v2.1, and in ferry's shape elsewhere; every body has a code and a message.
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { FerryConfig } from '../lib/config';
import { createLogger, type Logger } from '../lib/logger';
import { authenticatorFromConfig, type Authenticator } from './auth';
import type { ApiContext } from './context';
import { ApiError, kindForStatus, novaErrorBody, v1ErrorBody } from './errors';
import {
  AlreadyMigratingError,
  BackendUnavailableError,
  MigrationNotFoundError,
  RefusedError,
  type FerryService,
} from './ferry-service';
import { ApiMetrics, type MigrationMetricsSource } from './metrics';
import { RouteRegistry } from './route-spec';
import { healthRoutes } from './routes/health';
import { novaMigrationRoutes } from './routes/nova-migrations';
import { novaServerRoutes } from './routes/nova-servers';
import { v1HostRoutes } from './routes/v1-hosts';
import { v1MigrationRoutes } from './routes/v1-migrations';
import { versionRoutes } from './routes/versions';
import { InvalidFilterError } from './visibility-query';

export interface BuildServerOptions {
  config: FerryConfig;
  service: FerryService;
  logger?: Logger;
  /** Defaults to the one temporal.yaml asks for. */
  auth?: Authenticator;
  pollIntervalMs?: number;
  /** Where /metrics reads the migrations from (the Temporal service); omitted: request metrics only. */
  metricsSource?: MigrationMetricsSource;
}

export function isNovaPath(url: string): boolean {
  const path = url.split('?')[0] ?? '';
  return path === '/' || path === '/v2.1' || path.startsWith('/v2.1/');
}

/** Maps anything thrown by a route or by Fastify to an ApiError. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof MigrationNotFoundError) return new ApiError('not_found', err.message);
  if (err instanceof AlreadyMigratingError) return new ApiError('conflict', err.message);
  if (err instanceof RefusedError) return new ApiError('conflict', err.message);
  if (err instanceof InvalidFilterError) return new ApiError('bad_request', err.message);
  if (err instanceof BackendUnavailableError) return new ApiError('unavailable', err.message);
  const fastifyError = err as Partial<FastifyError>;
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return new ApiError(kindForStatus(fastifyError.statusCode), fastifyError.message ?? 'Bad request');
  }
  return new ApiError('internal', 'Unexpected API error; see the API log.');
}

export function buildServer(options: BuildServerOptions): FastifyInstance {
  const logger = options.logger ?? createLogger('api');
  const app = Fastify({
    loggerInstance: logger,
    routerOptions: { ignoreTrailingSlash: true },
    bodyLimit: 1024 * 1024,
    // Nova's request ids: every log line of a request carries it, and Nova clients print it.
    genReqId: () => `req-${randomUUID()}`,
    // One line per request, written in onResponse: reads that succeed at debug (they are polled
    // hundreds of times a second), everything else at info.
    disableRequestLogging: true,
  });
  const ctx: ApiContext = {
    config: options.config,
    service: options.service,
    auth: options.auth ?? authenticatorFromConfig(options.config),
    registry: new RouteRegistry(),
    metrics: new ApiMetrics({ source: options.metricsSource, hosts: options.config.hosts.map((h) => h.name) }),
    pollIntervalMs: options.pollIntervalMs ?? 500,
    closing: false,
  };

  const render = (req: FastifyRequest, error: ApiError) =>
    isNovaPath(req.url) ? novaErrorBody(error.status, error.message) : v1ErrorBody(error.kind, error.status, error.message);

  app.setErrorHandler((err, req, reply) => {
    const error = toApiError(err);
    if (error.status >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ status: error.status, reason: error.message }, 'request refused');
    if (err instanceof BackendUnavailableError) ctx.metrics.backendErrors.inc({ route: req.routeOptions.url ?? 'unmatched' });
    void reply.code(error.status).headers(error.headers).type('application/json; charset=utf-8').send(render(req, error));
  });
  app.setNotFoundHandler((req, reply) => {
    const error = new ApiError('not_found', 'The resource could not be found.');
    void reply.code(404).type('application/json; charset=utf-8').send(render(req, error));
  });
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-openstack-request-id', req.id);
    if (isNovaPath(req.url)) reply.header('x-compute-request-id', req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    ctx.metrics.requestDuration.observe({ method: req.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    const quiet = req.method === 'GET' && reply.statusCode < 400;
    req.log[quiet ? 'debug' : 'info']({ method: req.method, url: req.url, statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request answered');
  });
  app.addHook('preClose', async () => {
    ctx.closing = true;
  });
  app.addHook('onClose', async () => {
    await ctx.service.close();
  });

  void app.register(healthRoutes, { ctx });
  void app.register(versionRoutes, { ctx });
  void app.register(novaServerRoutes, { ctx });
  void app.register(novaMigrationRoutes, { ctx });
  void app.register(v1MigrationRoutes, { ctx });
  void app.register(v1HostRoutes, { ctx });
  return app as unknown as FastifyInstance;
}

/** "127.0.0.1:8774" → { host, port }. */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i), port: Number(listen.slice(i + 1)) };
}
