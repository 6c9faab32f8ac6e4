// One declaration per route: method, path, role, zod schemas for params, query and body, and the
// documented responses. `addRoute` registers it with Fastify (auth, microversion, validation, then the
// handler) and records it in the registry from which api/openapi.ts builds /openapi.json.
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Authenticator, Principal, Role } from './auth';
import { ApiError, describeZodError } from './errors';
import { MIN_VERSION, inRange, negotiate, versionHeaders, type Microversion } from './microversion';

export type ApiFamily = 'nova' | 'v1';

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  /** Defaults to application/json when a schema is given. */
  contentType?: string;
  headers?: Record<string, string>;
}

export interface RouteSpec<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> {
  method: 'GET' | 'POST' | 'DELETE';
  /** Fastify syntax: /v1/migrations/:id */
  url: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** null: public. */
  role: Role | null;
  family: ApiFamily;
  /** Nova only: the microversions in which the route exists (404 outside, as in Nova). */
  versions?: { min: string; max?: string };
  /** Nova only: served without microversion negotiation (the root version document). */
  unversioned?: boolean;
  params?: P;
  query?: Q;
  body?: B;
  responses: Record<number, ResponseSpec>;
}

export interface RouteContext<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  params: z.output<P>;
  query: z.output<Q>;
  body: z.output<B>;
  principal: Principal | null;
  microversion: Microversion;
  req: FastifyRequest;
  reply: FastifyReply;
  log: FastifyBaseLogger;
}

export class RouteRegistry {
  readonly routes: RouteSpec[] = [];
}

export interface RouteDeps {
  auth: Authenticator;
  registry: RouteRegistry;
}

function parsePart<T extends z.ZodType>(schema: T | undefined, value: unknown, what: string): z.output<T> {
  if (!schema) return undefined as z.output<T>;
  const result = schema.safeParse(value ?? (what === 'body' ? undefined : {}));
  if (!result.success) throw new ApiError('bad_request', `Invalid ${what}: ${describeZodError(result.error)}`);
  return result.data;
}

export function addRoute<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(
  app: FastifyInstance,
  deps: RouteDeps,
  spec: RouteSpec<P, Q, B>,
  handler: (ctx: RouteContext<P, Q, B>) => Promise<unknown>,
): void {
  deps.registry.routes.push(spec as unknown as RouteSpec);
  app.route({
    method: spec.method,
    url: spec.url,
    config: { family: spec.family, operationId: spec.operationId },
    handler: async (req, reply) => {
      const principal = spec.role ? deps.auth.authorize(req.headers, spec.role) : null;
      let microversion = MIN_VERSION;
      if (spec.family === 'nova' && !spec.unversioned) {
        microversion = negotiate(req.headers);
        reply.headers(versionHeaders(microversion));
        if (spec.versions && !inRange(microversion, spec.versions.min, spec.versions.max)) {
          throw new ApiError('not_found', 'The resource could not be found.');
        }
      }
      const ctx: RouteContext<P, Q, B> = {
        params: parsePart(spec.params, req.params, 'path'),
        query: parsePart(spec.query, req.query, 'query'),
        body: parsePart(spec.body, req.body, 'body'),
        principal,
        microversion,
        req,
        reply,
        log: req.log,
      };
      return handler(ctx);
    },
  });
}
