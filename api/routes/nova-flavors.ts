// Nova's flavors, read-only, from temporal.yaml's `flavors` (nova/api/openstack/compute/flavors.py):
//   GET /v2.1/flavors          brief: id, name, links (2.55 description)
//   GET /v2.1/flavors/detail   with ram, disk, vcpus, swap, ephemeral, is_public, rxtx_factor (2.61 extra_specs)
//   GET /v2.1/flavors/{id}     one flavor; 404 itemNotFound "Flavor X could not be found."
//   GET /v2.1/flavors/{id}/os-extra_specs[/{key}]   none: ferry's flavors have no extra specs
//                              (openstackclient's `flavor show` asks below 2.61)
// Filters and paging as Nova's index: minRam, minDisk, is_public, sort_key, sort_dir, limit, marker.
// ferry's flavors are all public and enabled; creating them is editing temporal.yaml.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { FlavorConfig } from '../../lib/config';
import type { PluginOptions } from '../context';
import { ApiError } from '../errors';
import { FLAVOR_SORT_KEYS, NovaFlavorBriefSchema, NovaFlavorSchema, novaFlavor, novaFlavorBrief, sortValue } from '../flavors';
import { json, routeSchema, type RouteConfig } from '../route';

const READ: RouteConfig = { role: 'read', family: 'nova' };

/** Nova's max_limit. */
const MAX_LIMIT = 1000;
const TRUE_SPELLINGS = new Set(['1', 't', 'true', 'on', 'y', 'yes']);
const FALSE_SPELLINGS = new Set(['0', 'f', 'false', 'off', 'n', 'no']);

/** schemas/flavors.py index_query (2.75+: nothing else). */
const FlavorsQuery = z
  .object({
    limit: z.string().regex(/^[0-9]+$/, 'must be a non-negative integer').transform(Number).optional().meta({ description: 'At most this many (above 1000: 1000).' }),
    marker: z.string().optional().meta({ description: 'The id of the last flavor of the previous page.' }),
    is_public: z
      .string()
      .regex(/^(?:[01tfyn]|true|false|on|off|yes|no|none)$/i, "must be one of Nova's boolean spellings or none")
      .optional()
      .meta({ description: 'true, false (Nova\'s spellings) or none (any): every ferry flavor is public.' }),
    minRam: z.string().regex(/^-?\d+$/, 'must be an integer').optional().meta({ description: 'Flavors with at least this much memory, MiB.' }),
    minDisk: z.string().regex(/^-?\d+$/, 'must be an integer').optional().meta({ description: 'Flavors with at least this big a root disk, GiB.' }),
    sort_key: z.enum(FLAVOR_SORT_KEYS).optional().meta({ description: 'Default flavorid.' }),
    sort_dir: z.enum(['asc', 'desc']).optional().meta({ description: 'Default asc.' }),
  })
  .strict();
type FlavorsQueryOut = z.output<typeof FlavorsQuery>;

const FlavorParams = z.object({ id: z.string().min(1).max(255).meta({ description: "The flavor's id (temporal.yaml flavors[].id)." }) });

function base(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

function integerFilter(name: string, text: string | undefined): number | null {
  if (text === undefined) return null;
  if (!/^-?\d+$/.test(text.trim())) throw new ApiError('bad_request', `Invalid ${name} filter [${text}]`);
  return Number(text);
}

/** flavors.py _get_flavors: filter, sort (flavorid asc), then page after the marker. */
export function selectFlavors(all: readonly FlavorConfig[], query: FlavorsQueryOut): FlavorConfig[] {
  const minRam = integerFilter('minRam', query.minRam);
  const minDisk = integerFilter('minDisk', query.minDisk);
  let publicOnly: boolean | null = true;
  if (query.is_public !== undefined) {
    const v = query.is_public.trim().toLowerCase();
    if (v === 'none') publicOnly = null;
    else if (TRUE_SPELLINGS.has(v)) publicOnly = true;
    else if (FALSE_SPELLINGS.has(v)) publicOnly = false;
    else throw new ApiError('bad_request', `Invalid is_public filter [${query.is_public}]`);
  }
  const key = query.sort_key ?? 'flavorid';
  const dir = query.sort_dir === 'desc' ? -1 : 1;
  const sorted = all
    // Every ferry flavor is public: asking for private ones finds none.
    .filter((f) => publicOnly !== false && (minRam === null || f.ram >= minRam) && (minDisk === null || f.disk >= minDisk))
    .sort((a, b) => {
      const x = sortValue(a, key);
      const y = sortValue(b, key);
      const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return order * dir || a.id.localeCompare(b.id);
    });
  let start = 0;
  if (query.marker !== undefined) {
    const at = sorted.findIndex((f) => f.id === query.marker);
    // Nova: 400 "marker [x] not found"; ferry: 404, as os-migrations (a marker naming nothing is not a malformed request).
    if (at < 0) throw new ApiError('not_found', `Marker ${query.marker} could not be found.`);
    start = at + 1;
  }
  const limit = Math.min(query.limit ?? MAX_LIMIT, MAX_LIMIT);
  return sorted.slice(start, start + limit);
}

/** Nova's flavors_links: a next link when the page is full (common.ViewBuilder._get_collection_links). */
function nextLink(req: FastifyRequest, page: FlavorConfig[], query: FlavorsQueryOut, collection: string): { rel: string; href: string }[] | undefined {
  const limit = Math.min(query.limit ?? MAX_LIMIT, MAX_LIMIT);
  const last = page[page.length - 1];
  if (!last || page.length < limit) return undefined;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(req.query as Record<string, string>)) if (k !== 'marker') params.set(k, v);
  params.set('marker', last.id);
  return [{ rel: 'next', href: `${base(req)}/v2.1/${collection}?${params.toString()}` }];
}

export const novaFlavorRoutes: FastifyPluginAsync<PluginOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const tags = ['nova'];
  const Link = z.object({ rel: z.string(), href: z.string() });

  app.route({
    method: 'GET',
    url: '/v2.1/flavors',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'novaListFlavors', summary: "Flavors, brief: id, name, links (2.55 description), from temporal.yaml's flavors.", tags },
      { querystring: FlavorsQuery },
      { 200: json('Flavors.', z.object({ flavors: z.array(NovaFlavorBriefSchema), flavors_links: z.array(Link).optional() })) },
      { more: { 404: 'The marker names no flavor (Nova answers 400).' } },
    ),
    handler: async (req) => {
      const page = selectFlavors(ctx.config.flavors, req.query);
      const links = nextLink(req, page, req.query, 'flavors');
      return { flavors: page.map((f) => novaFlavorBrief(f, req.microversion, base(req))), ...(links ? { flavors_links: links } : {}) };
    },
  });

  app.route({
    method: 'GET',
    url: '/v2.1/flavors/detail',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'novaListFlavorsDetail', summary: 'Flavors with their vCPUs, memory (MiB) and disk (GiB).', tags },
      { querystring: FlavorsQuery },
      { 200: json('Flavors.', z.object({ flavors: z.array(NovaFlavorSchema), flavors_links: z.array(Link).optional() })) },
      { more: { 404: 'The marker names no flavor (Nova answers 400).' } },
    ),
    handler: async (req) => {
      const page = selectFlavors(ctx.config.flavors, req.query);
      const links = nextLink(req, page, req.query, 'flavors/detail');
      return { flavors: page.map((f) => novaFlavor(f, req.microversion, base(req))), ...(links ? { flavors_links: links } : {}) };
    },
  });

  app.route({
    method: 'GET',
    url: '/v2.1/flavors/:id',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'novaShowFlavor', summary: 'One flavor.', tags },
      { params: FlavorParams, querystring: z.object({}).strict() },
      { 200: json('The flavor.', z.object({ flavor: NovaFlavorSchema })) },
      { more: { 404: 'No such flavor.' } },
    ),
    handler: async (req) => {
      const flavor = ctx.config.flavors.find((f) => f.id === req.params.id);
      if (!flavor) throw new ApiError('not_found', `Flavor ${req.params.id} could not be found.`);
      return { flavor: novaFlavor(flavor, req.microversion, base(req)) };
    },
  });

  const flavorOr404 = (id: string) => {
    const flavor = ctx.config.flavors.find((f) => f.id === id);
    if (!flavor) throw new ApiError('not_found', `Flavor ${id} could not be found.`);
    return flavor;
  };
  const ExtraSpecsParams = z.object({ flavor_id: FlavorParams.shape.id });

  app.route({
    method: 'GET',
    url: '/v2.1/flavors/:flavor_id/os-extra_specs',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'novaListFlavorExtraSpecs', summary: "A flavor's extra specs: none (flavors_extraspecs.py index).", tags },
      { params: ExtraSpecsParams, querystring: z.object({}).strict() },
      { 200: json('The extra specs.', z.object({ extra_specs: z.record(z.string(), z.string()) })) },
      { more: { 404: 'No such flavor.' } },
    ),
    handler: async (req) => {
      flavorOr404(req.params.flavor_id);
      return { extra_specs: {} };
    },
  });

  app.route({
    method: 'GET',
    url: '/v2.1/flavors/:flavor_id/os-extra_specs/:key',
    config: { ferry: READ },
    schema: routeSchema(
      READ,
      { operationId: 'novaShowFlavorExtraSpec', summary: 'One extra spec of a flavor: always 404 (no flavor has any).', tags },
      { params: ExtraSpecsParams.extend({ key: z.string().min(1).max(255) }), querystring: z.object({}).strict() },
      { 200: json('The extra spec.', z.record(z.string(), z.string())) },
      { more: { 404: 'No such flavor, or no such key (always).' } },
    ),
    handler: async (req) => {
      flavorOr404(req.params.flavor_id);
      throw new ApiError('not_found', `Flavor ${req.params.flavor_id} has no extra specs with key ${req.params.key}.`);
    },
  });
};
