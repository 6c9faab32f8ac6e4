// The operator API: a Fastify server built from one plugin per route group, each route declared with
// its zod schemas (fastify-type-provider-zod validates them, @fastify/swagger turns them into
// /openapi.json). One onRequest hook authorizes (the role in the route's config) and negotiates Nova's
// microversion. A method a known path does not serve answers 405 with Allow. Errors are rendered in
// Nova's shape under / and /v2.1, and in ferry's shape elsewhere; every body has a code and a message.
import { randomUUID } from 'node:crypto';
import fastifySwagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyRequest, type HTTPMethods } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import type { z } from 'zod';
import type { FerryConfig } from '../lib/config';
import { createLogger, type Logger } from '../lib/logger';
import { authenticatorFromConfig, type Authenticator } from './auth';
import type { ApiContext, PluginOptions } from './context';
import { ApiError, kindForStatus, novaErrorBody, v1ErrorBody } from './errors';
import {
  AlreadyMigratingError,
  BackendUnavailableError,
  MigrationNotFoundError,
  RefusedError,
  type FerryService,
} from './ferry-service';
import { ApiMetrics, type MigrationMetricsSource } from './metrics';
import { MAX_VERSION, MIN_VERSION, formatVersion, inRange, negotiate, versionHeaders } from './microversion';
import { TAGS } from './route';
import { healthRoutes } from './routes/health';
import { novaFlavorRoutes } from './routes/nova-flavors';
import { novaInstanceActionRoutes } from './routes/nova-instance-actions';
import { novaMigrationRoutes } from './routes/nova-migrations';
import { novaServerRoutes } from './routes/nova-servers';
import { novaServiceRoutes } from './routes/nova-services';
import { v1ColdMigrationRoutes } from './routes/v1-cold-migrations';
import { v1HostRoutes } from './routes/v1-hosts';
import { v1MaintenanceRoutes } from './routes/v1-maintenance';
import { v1MigrationRoutes } from './routes/v1-migrations';
import { versionRoutes } from './routes/versions';
import { isVersionedBody } from './schemas';
import { InvalidFilterError } from './visibility-query';

export interface BuildServerOptions {
  config: FerryConfig;
  service: FerryService;
  logger?: Logger;
  /** Defaults to the one temporal.yaml asks for. */
  auth?: Authenticator;
  pollIntervalMs?: number;
  /** Below microversion 2.34, how long os-migrateLive waits for the pre-checks (default 60 s). */
  preCheckWaitMs?: number;
  /** Where /metrics reads the migrations from (the Temporal service); omitted: request metrics only. */
  metricsSource?: MigrationMetricsSource;
}

/**
 * The route groups, in order. Adding one is one line here; every route it declares is documented
 * and gets its 405 answers.
 */
export const ROUTE_PLUGINS: FastifyPluginAsync<PluginOptions>[] = [
  healthRoutes,
  versionRoutes,
  novaServerRoutes,
  novaFlavorRoutes,
  novaMigrationRoutes,
  novaInstanceActionRoutes,
  novaServiceRoutes,
  v1MigrationRoutes,
  v1ColdMigrationRoutes,
  v1HostRoutes,
  v1MaintenanceRoutes,
];

export function isNovaPath(url: string): boolean {
  const path = url.split('?')[0] ?? '';
  return path === '/' || path === '/v2.1' || path.startsWith('/v2.1/');
}

/** Maps anything thrown by a route or by Fastify to an ApiError. */
export function toApiError(err: unknown, nova = false): ApiError {
  if (err instanceof ApiError) return err;
  if (hasZodFastifySchemaValidationErrors(err)) return new ApiError('bad_request', describeValidation(err.validationContext, err.validation, nova));
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

type ValidationIssue = { instancePath: string; message?: string; keyword: string; params: Record<string, unknown> };

const PART_NAMES: Record<string, string> = { querystring: 'query', params: 'path', body: 'body', headers: 'header' };

/** One line naming each parameter or field that is wrong; unknown ones by name, as Nova's jsonschema does. */
export function describeValidation(context: string | undefined, issues: ValidationIssue[], nova: boolean): string {
  const part = PART_NAMES[context ?? ''] ?? context ?? 'request';
  const lines = issues.map((issue) => {
    const where = issue.instancePath.replace(/^\//, '').replace(/\//g, '.');
    if (issue.keyword === 'unrecognized_keys') {
      const keys = (issue.params.keys as string[] | undefined) ?? [];
      const named = keys.map((k) => `'${k}'`).join(', ');
      const verb = keys.length === 1 ? 'was' : 'were';
      return `Additional properties are not allowed (${named} ${verb} unexpected)${where ? ` in ${where}` : ''}`;
    }
    const branches = issue.params.errors;
    if (issue.keyword === 'invalid_union' && Array.isArray(branches)) {
      // Each shape the value could have had, with what it lacks for that shape.
      const shapes = (branches as { path: PropertyKey[]; message: string }[][]).map((branch) =>
        branch.map((i) => (i.path.length > 0 ? `${i.path.map(String).join('.')}: ${i.message}` : i.message)).join(', '),
      );
      return `${where ? `${where}: ` : ''}matches none of its shapes: ${shapes.map((text, i) => `(${i + 1}) ${text}`).join('; ')}`;
    }
    const message = issue.message ?? issue.keyword;
    return where ? `${where}: ${message}` : message;
  });
  if (nova && part === 'query') return `Invalid input for query parameters: ${lines.join('; ')}`;
  if (nova && part === 'body') return `Invalid input for field/attribute: ${lines.join('; ')}`;
  return `Invalid ${part}: ${lines.join('; ')}`;
}

export function buildServer(options: BuildServerOptions): FastifyInstance {
  const logger = options.logger ?? createLogger('api');
  const app = Fastify({
    loggerInstance: logger,
    // A path parameter the document allows (at most 255 characters, each up to 12 once percent-encoded) always routes.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 4096 },
    bodyLimit: 1024 * 1024,
    // Nova's request ids: every log line of a request carries it, and Nova clients print it.
    genReqId: () => `req-${randomUUID()}`,
    // One line per request, written in onResponse: reads that succeed at debug (they are polled
    // hundreds of times a second), everything else at info.
    logController: new LogController({ disableRequestLogging: true }),
  });
  const ctx: ApiContext = {
    config: options.config,
    service: options.service,
    auth: options.auth ?? authenticatorFromConfig(options.config),
    metrics: new ApiMetrics({ source: options.metricsSource, hosts: options.config.hosts.map((h) => h.name) }),
    pollIntervalMs: options.pollIntervalMs ?? 500,
    preCheckWaitMs: options.preCheckWaitMs ?? 60_000,
    closing: false,
  };

  const render = (req: FastifyRequest, error: ApiError) =>
    isNovaPath(req.url) ? novaErrorBody(error.status, error.message) : v1ErrorBody(error.kind, error.status, error.message);

  // A Nova body that depends on the microversion is validated by its route (schemas.ts versionedBody).
  app.setValidatorCompiler<z.ZodType>((route) => (isVersionedBody(route.schema) ? (data: unknown) => ({ value: data }) : validatorCompiler(route)));
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('principal', null);
  app.decorateRequest('microversion', null as never);

  app.setErrorHandler((err, req, reply) => {
    const error = toApiError(err, isNovaPath(req.url));
    if (error.status >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ status: error.status, reason: error.message }, 'request refused');
    if (err instanceof BackendUnavailableError) ctx.metrics.backendErrors.inc({ route: req.routeOptions.url ?? 'unmatched' });
    void reply.code(error.status).headers(error.headers).type('application/json; charset=utf-8').send(render(req, error));
  });
  app.setNotFoundHandler((req, reply) => {
    const error = new ApiError('not_found', 'The resource could not be found.');
    void reply.code(404).type('application/json; charset=utf-8').send(render(req, error));
  });
  // The one hook that authorizes and negotiates: the route's config says its role, family and microversions.
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-openstack-request-id', req.id);
    if (isNovaPath(req.url)) reply.header('x-compute-request-id', req.id);
    req.microversion = MIN_VERSION;
    const route = req.routeOptions.config.ferry;
    if (!route) return;
    req.principal = route.role ? await ctx.auth.authorize(req.headers, route.role) : null;
    if (route.family === 'nova' && !route.unversioned) {
      req.microversion = negotiate(req.headers);
      reply.headers(versionHeaders(req.microversion));
      if (route.versions && !inRange(req.microversion, route.versions.min, route.versions.max)) {
        throw new ApiError('not_found', 'The resource could not be found.');
      }
    }
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

  void app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ferry',
        version: '0.1.0',
        description:
          "ferry's operator API: its own API under /v1, and a Nova-compatible subset under /v2.1 " +
          `(microversions ${formatVersion(MIN_VERSION)} to ${formatVersion(MAX_VERSION)}, named in the OpenStack-API-Version: compute 2.X ` +
          'or X-OpenStack-Nova-API-Version header; none means 2.1). The Nova routes are documented as served at 2.80 ' +
          '(what changes below it is said in each description). ' +
          'Nova migration ids are the 31-bit FNV-1a hash of the workflow run id; ferry migration ids are the run ids.',
      },
      tags: TAGS,
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'Read token or operator token from the environment variables temporal.yaml names.' },
          authToken: { type: 'apiKey', in: 'header', name: 'X-Auth-Token', description: 'The same tokens, as Nova clients send them.' },
        },
      },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });

  // Every route's path and methods, as the plugins declare them: the 405 answers below need them.
  const methodsByPath = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    if (route.config?.ferry === undefined) return;
    const methods = methodsByPath.get(route.url) ?? new Set<string>();
    for (const m of [route.method].flat()) methods.add(m);
    if (methods.has('GET')) methods.add('HEAD');
    methodsByPath.set(route.url, methods);
  });
  for (const plugin of ROUTE_PLUGINS) void app.register(plugin, { ctx });
  void app.register(async (scope) => {
    for (const [url, methods] of methodsByPath) {
      const allow = [...methods].sort().join(', ');
      const others = OTHER_METHODS.filter((m) => !methods.has(m));
      const refuse = async () => {
        throw new ApiError('method_not_allowed', `The method is not allowed for this resource; allowed: ${allow}.`, { allow });
      };
      // Refused in onRequest, before a body (or the lack of one) is looked at.
      scope.route({ method: others, url, schema: { hide: true }, onRequest: refuse, handler: refuse });
    }
  });
  return app as unknown as FastifyInstance;
}

/** Methods that answer 405 on a known path that does not serve them (HEAD comes with GET). */
const OTHER_METHODS: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'QUERY'];

/** "127.0.0.1:8774" → { host, port }. */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i), port: Number(listen.slice(i + 1)) };
}
