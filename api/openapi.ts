// The OpenAPI 3.1 document, generated from the route registry and its zod schemas (z.toJSONSchema,
// JSON Schema 2020-12, which is OpenAPI 3.1's dialect). Schemas with a meta id become components.
import { z } from 'zod';
import { NovaErrorSchema, V1ErrorSchema } from './errors';
import { MAX_VERSION, MIN_VERSION, formatVersion } from './microversion';
import type { RouteSpec } from './route-spec';

type Json = Record<string, unknown>;

class Components {
  readonly schemas: Record<string, Json> = {};

  /** Converts a zod schema; hoists named sub-schemas into components and returns the reference or inline schema. */
  add(schema: z.ZodType, io: 'input' | 'output'): Json {
    const converted = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Json;
    const defs = (converted.$defs ?? {}) as Record<string, Json>;
    delete converted.$defs;
    delete converted.$schema;
    for (const [id, def] of Object.entries(defs)) this.put(id, rewriteRefs(def) as Json);
    const id = z.globalRegistry.get(schema)?.id;
    const body = rewriteRefs(converted) as Json;
    // A named schema may come back as a bare reference to its own hoisted definition.
    if (typeof body.$ref === 'string' && Object.keys(body).length === 1) return body;
    if (typeof id === 'string') {
      delete body.id;
      const name = this.put(id, body);
      return { $ref: `#/components/schemas/${name}` };
    }
    return body;
  }

  private put(id: string, def: Json): string {
    const existing = this.schemas[id];
    if (existing === undefined || JSON.stringify(existing) === JSON.stringify(def)) {
      this.schemas[id] = def;
      return id;
    }
    // Same schema seen as input and as output with different shapes (defaults): keep both.
    return this.put(`${id}Input`, def);
  }
}

function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (value && typeof value === 'object') {
    const out: Json = {};
    for (const [k, v] of Object.entries(value as Json)) {
      if (k === '$ref' && typeof v === 'string' && v.startsWith('#/$defs/')) out[k] = `#/components/schemas/${v.slice(8)}`;
      else if (k === 'id' && typeof v === 'string' && Object.keys(value as Json).includes('$ref')) continue;
      else out[k] = rewriteRefs(v);
    }
    return out;
  }
  return value;
}

function objectShape(schema: z.ZodType | undefined): Record<string, z.ZodType> {
  if (schema && schema instanceof z.ZodObject) return schema.shape as Record<string, z.ZodType>;
  return {};
}

function parameters(spec: RouteSpec, components: Components): Json[] {
  const out: Json[] = [];
  for (const [name, field] of Object.entries(objectShape(spec.params))) {
    out.push({ name, in: 'path', required: true, schema: components.add(field, 'input'), description: z.globalRegistry.get(field)?.description });
  }
  for (const [name, field] of Object.entries(objectShape(spec.query))) {
    out.push({ name, in: 'query', required: !field.safeParse(undefined).success, schema: components.add(field, 'input'), description: z.globalRegistry.get(field)?.description });
  }
  if (spec.family === 'nova') {
    out.push({ $ref: '#/components/parameters/OpenStackApiVersion' }, { $ref: '#/components/parameters/NovaApiVersion' });
  }
  return out.map((p) => JSON.parse(JSON.stringify(p)) as Json);
}

export function buildOpenApi(routes: RouteSpec[], serverUrl?: string): Json {
  const components = new Components();
  const errorRef = { v1: components.add(V1ErrorSchema, 'output'), nova: components.add(NovaErrorSchema, 'output') };
  const paths: Record<string, Record<string, Json>> = {};
  for (const spec of routes) {
    const path = spec.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const responses: Record<string, Json> = {};
    const errorContent = { 'application/json': { schema: errorRef[spec.family] } };
    const addError = (status: number, description: string) => {
      responses[String(status)] ??= { description, content: errorContent };
    };
    for (const [status, response] of Object.entries(spec.responses)) {
      const entry: Json = { description: response.description };
      if (response.schema) entry.content = { [response.contentType ?? 'application/json']: { schema: components.add(response.schema, 'output') } };
      else if (response.contentType) entry.content = { [response.contentType]: { schema: { type: 'string' } } };
      else if (Number(status) >= 400) entry.content = errorContent;
      if (response.headers) {
        entry.headers = Object.fromEntries(Object.entries(response.headers).map(([h, d]) => [h, { description: d, schema: { type: 'string' } }]));
      }
      responses[status] = entry;
    }
    if (spec.params || spec.query || spec.body) addError(400, 'Invalid request.');
    if (spec.role) {
      addError(401, 'No token or an invalid token.');
      if (spec.role === 'operator') addError(403, 'The token has the read role; this needs the operator role.');
    }
    if (spec.family === 'nova') addError(406, 'Unsupported microversion.');
    const operation: Json = {
      operationId: spec.operationId,
      summary: spec.summary,
      tags: spec.tags,
      parameters: parameters(spec, components),
      responses,
    };
    const descriptions = [spec.description];
    if (spec.versions) descriptions.push(`Microversions ${spec.versions.min}${spec.versions.max ? ` to ${spec.versions.max}` : ' and later'}.`);
    const description = descriptions.filter(Boolean).join('\n\n');
    if (description) operation.description = description;
    if (spec.role) operation.security = [{ bearer: [spec.role] }, { authToken: [spec.role] }];
    else operation.security = [];
    if (spec.body) {
      operation.requestBody = { required: !spec.body.safeParse(undefined).success, content: { 'application/json': { schema: components.add(spec.body, 'input') } } };
    }
    (paths[path] ??= {})[spec.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'ferry',
      version: '0.1.0',
      description:
        "ferry's operator API: its own API under /v1, and a Nova-compatible subset under /v2.1 " +
        `(microversions ${formatVersion(MIN_VERSION)} to ${formatVersion(MAX_VERSION)}). ` +
        'Nova migration ids are the 31-bit FNV-1a hash of the workflow run id; ferry migration ids are the run ids.',
    },
    servers: serverUrl ? [{ url: serverUrl }] : undefined,
    tags: [
      { name: 'migrations', description: 'Live migrations (ferry /v1).' },
      { name: 'cluster', description: 'Hosts and instances (ferry /v1).' },
      { name: 'nova', description: 'Nova-compatible subset (/v2.1).' },
      { name: 'operations', description: 'Health, readiness, metrics, this document.' },
    ],
    paths,
    components: {
      schemas: components.schemas,
      parameters: {
        OpenStackApiVersion: {
          name: 'OpenStack-API-Version',
          in: 'header',
          required: false,
          schema: { type: 'string', examples: ['compute 2.80', 'compute latest'] },
          description: 'Requested microversion; absent means 2.1.',
        },
        NovaApiVersion: {
          name: 'X-OpenStack-Nova-API-Version',
          in: 'header',
          required: false,
          schema: { type: 'string', examples: ['2.80'] },
          description: 'Legacy microversion header, used when OpenStack-API-Version names no compute version.',
        },
      },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'Read token or operator token from the environment variables temporal.yaml names.' },
        authToken: { type: 'apiKey', in: 'header', name: 'X-Auth-Token', description: 'The same tokens, as Nova clients send them.' },
      },
    },
  };
}
