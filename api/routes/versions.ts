// Nova's version documents: GET / lists the API versions, GET /v2.1 describes v2.1 and its
// microversion range. Both are public, as in Nova.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PluginOptions } from '../context';
import { MAX_VERSION, MIN_VERSION, formatVersion } from '../microversion';
import { json, routeSchema, type RouteConfig } from '../route';

const Link = z.object({ rel: z.string(), href: z.string(), type: z.string().optional() });
const VersionSchema = z
  .object({
    id: z.string(),
    status: z.string(),
    version: z.string(),
    min_version: z.string(),
    updated: z.string(),
    links: z.array(Link),
    'media-types': z.array(z.object({ base: z.string(), type: z.string() })).optional(),
  })
  .meta({ id: 'NovaVersion' });

function baseUrl(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

function v21(req: FastifyRequest, detailed: boolean): z.infer<typeof VersionSchema> {
  const links: z.infer<typeof Link>[] = [{ rel: 'self', href: `${baseUrl(req)}/v2.1/` }];
  const doc: z.infer<typeof VersionSchema> = {
    id: 'v2.1',
    status: 'CURRENT',
    version: formatVersion(MAX_VERSION),
    min_version: formatVersion(MIN_VERSION),
    updated: '2013-07-23T11:33:21Z',
    links,
  };
  if (detailed) {
    links.push({ rel: 'describedby', type: 'text/html', href: 'http://docs.openstack.org/' });
    doc['media-types'] = [{ base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' }];
  }
  return doc;
}

const ROOT: RouteConfig = { role: null, family: 'nova', unversioned: true };
const V21: RouteConfig = { role: null, family: 'nova' };

export const versionRoutes: FastifyPluginAsync<PluginOptions> = async (fastify) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.route({
    method: 'GET',
    url: '/',
    config: { ferry: ROOT },
    schema: routeSchema(ROOT, { operationId: 'listVersions', summary: 'Nova API versions.', tags: ['nova'] }, {}, {
      200: json('Versions.', z.object({ versions: z.array(VersionSchema) })),
    }),
    handler: async (req) => ({ versions: [v21(req, false)] }),
  });
  app.route({
    method: 'GET',
    url: '/v2.1',
    config: { ferry: V21 },
    schema: routeSchema(V21, { operationId: 'showVersion', summary: 'The v2.1 version document with its microversion range.', tags: ['nova'] }, {}, {
      200: json('Version 2.1.', z.object({ version: VersionSchema })),
    }),
    handler: async (req) => ({ version: v21(req, true) }),
  });
};
