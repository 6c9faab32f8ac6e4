// What a route declares besides its zod schemas (fastify-type-provider-zod): its role, its family
// (Nova's /v2.1 or ferry's /v1) and, for Nova, the microversions in which it exists. Fastify keeps it
// in the route's config; server.ts's one onRequest hook reads it to authorize and negotiate. The
// helpers here build the documented responses, so that every status a route can answer is declared.
import { z } from 'zod';
import type { Principal, Role } from './auth';
import { NovaErrorSchema, V1ErrorSchema } from './errors';
import type { Microversion } from './microversion';

export type ApiFamily = 'nova' | 'v1';

export interface RouteConfig {
  /** null: public. */
  role: Role | null;
  family: ApiFamily;
  /** Nova only: the microversions in which the route exists (404 outside, as in Nova). */
  versions?: { min: string; max?: string };
  /** Nova only: served without microversion negotiation (the root version document). */
  unversioned?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    ferry?: RouteConfig;
  }
  interface FastifyRequest {
    /** Who is calling; null on public routes. Set by the onRequest hook. */
    principal: Principal | null;
    /** The negotiated microversion (2.1 outside Nova's versioned routes). Set by the onRequest hook. */
    microversion: Microversion;
  }
}

/** The OpenAPI tags, in the order the document lists them. */
export const TAGS = [
  { name: 'migrations', description: 'Live migrations (ferry /v1).' },
  { name: 'cluster', description: 'Hosts and instances (ferry /v1).' },
  { name: 'nova', description: 'Nova-compatible subset (/v2.1).' },
  { name: 'operations', description: 'Health, readiness, metrics, this document.' },
];

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request: the message names the parameter or field.',
  401: 'No token or an invalid token.',
  403: 'The token has the read role, or in keystone mode roles that map to neither of ferry\'s; this needs the operator role.',
  404: 'Not found.',
  406: 'Unsupported microversion.',
  409: 'Conflict.',
  503: 'Temporal did not answer.',
};

type Responses = Record<number, unknown>;

/** A documented response with a body. */
export function json(description: string, schema: z.ZodType): { description: string; content: Record<string, { schema: z.ZodType }> } {
  return { description, content: { 'application/json': { schema } } };
}

/** A documented response of another media type (text). */
export function text(description: string, contentType: string): { description: string; content: Record<string, { schema: z.ZodType }> } {
  return { description, content: { [contentType]: { schema: z.string() } } };
}

/** A documented response without a body (202 of Nova's actions): @fastify/swagger leaves out the content of a null schema. */
export function empty(description: string): z.ZodType {
  return z.null().meta({ description });
}

export interface ErrorOptions {
  /** The route validates params, query or body: 400. */
  input?: boolean;
  /** The route reads Temporal: 503 when it does not answer. */
  backend?: boolean;
  /** Other statuses the route answers, with what they mean. */
  more?: Record<number, string>;
}

/** The error responses a route can answer, given its config: auth, microversions, input, Temporal. */
export function errorResponses(config: RouteConfig, options: ErrorOptions = {}): Responses {
  const statuses: Record<number, string> = {};
  const schema = config.family === 'nova' ? NovaErrorSchema : V1ErrorSchema;
  if (options.input) statuses[400] = ERROR_DESCRIPTIONS[400] as string;
  if (config.family === 'nova' && !config.unversioned) {
    statuses[400] = ERROR_DESCRIPTIONS[400] as string;
    statuses[406] = ERROR_DESCRIPTIONS[406] as string;
    if (config.versions) statuses[404] = `Not found; also outside microversions ${config.versions.min}${config.versions.max ? ` to ${config.versions.max}` : ' and later'}.`;
  }
  if (config.role) {
    statuses[401] = ERROR_DESCRIPTIONS[401] as string;
    // In keystone mode any protected route can answer 403 (roles that map to neither of ferry's)
    // and 503 (Keystone did not answer), whatever the route does.
    statuses[403] = config.role === 'operator' ? (ERROR_DESCRIPTIONS[403] as string) : 'Keystone mode: the token\'s roles map to neither of ferry\'s roles.';
    statuses[503] = options.backend ? `${ERROR_DESCRIPTIONS[503] as string} In keystone mode, also: Keystone did not answer.` : 'Keystone mode: Keystone did not answer.';
  } else if (options.backend) statuses[503] = ERROR_DESCRIPTIONS[503] as string;
  Object.assign(statuses, options.more ?? {});
  return Object.fromEntries(Object.entries(statuses).map(([status, description]) => [status, json(description, schema)]));
}

/** The security requirement of a route's role. */
export function security(role: Role | null): Record<string, string[]>[] {
  return role ? [{ bearer: [role] }, { authToken: [role] }] : [];
}

export interface RouteDoc {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
}

interface InputParts {
  params?: z.ZodType;
  querystring?: z.ZodType;
  body?: z.ZodType;
}

/**
 * A route's fastify schema: its zod parts (validated by fastify-type-provider-zod), its documented
 * responses plus every error it can answer, its security and its microversions in the description.
 */
export function routeSchema<P extends InputParts>(config: RouteConfig, doc: RouteDoc, parts: P, responses: Responses, errors: ErrorOptions = {}) {
  const input = errors.input ?? Object.values(parts).some((part) => part !== undefined);
  const descriptions = [doc.description];
  if (config.versions) descriptions.push(`Microversions ${config.versions.min}${config.versions.max ? ` to ${config.versions.max}` : ' and later'}.`);
  const description = descriptions.filter(Boolean).join('\n\n');
  return {
    ...parts,
    operationId: doc.operationId,
    summary: doc.summary,
    ...(description ? { description } : {}),
    tags: doc.tags,
    security: security(config.role),
    response: { ...errorResponses(config, { ...errors, input }), ...responses },
  };
}
