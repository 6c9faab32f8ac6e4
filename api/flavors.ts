// Nova's flavors from temporal.yaml's `flavors`: how the API finds one (by id, by name, or by a link's
// last segment), which one an instance has (the one whose size it has: ferry keeps no flavor per VM),
// and Nova's JSON views of them (nova/api/openstack/compute/views/flavors.py), per microversion.
import { z } from 'zod';
import type { FlavorConfig } from '../lib/config';
import type { InstanceView } from '../workflows/definitions';
import type { Flavor } from '../workflows/cold-migration-definitions';
import { atLeast, type Microversion } from './microversion';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** The flavor as the workflow takes it (workflows/cold-migration-definitions.ts FlavorSchema). */
export function toFlavor(f: FlavorConfig): Flavor {
  return { id: f.id, name: f.name, vcpus: f.vcpus, ram: f.ram, disk: f.disk };
}

/**
 * A flavorRef as Nova takes it: an id (string or integer), and here also a link to a flavor
 * (`.../flavors/<id>`, common.get_id_from_href: the last path segment), or a name (as
 * openstackclient resolves one before it asks). Null when none matches.
 */
export function findFlavor(flavors: readonly FlavorConfig[], ref: string | number): FlavorConfig | null {
  const text = String(ref).trim();
  const byId = flavors.find((f) => f.id === text);
  if (byId) return byId;
  if (/^https?:\/\//i.test(text) || text.includes('/')) {
    const path = text.replace(/^https?:\/\/[^/]+/i, '').split(/[?#]/)[0] ?? '';
    const last = decodeURIComponent(path.split('/').filter(Boolean).pop() ?? '');
    return flavors.find((f) => f.id === last) ?? null;
  }
  return flavors.find((f) => f.name === text) ?? null;
}

/** The flavor whose size the instance has (vCPUs, memory in MiB, disk in GiB; a 0 GiB flavor fits any disk), or null. */
export function currentFlavor(flavors: readonly FlavorConfig[], instance: Pick<InstanceView, 'vcpus' | 'memoryBytes' | 'diskBytes'>): FlavorConfig | null {
  const ram = Math.round(instance.memoryBytes / MiB);
  const exact = flavors.filter((f) => f.vcpus === instance.vcpus && f.ram === ram);
  return exact.find((f) => f.disk * GiB === instance.diskBytes) ?? exact.find((f) => f.disk === 0) ?? null;
}

/** Bytes of a flavor's root disk; null for 0 (the disk keeps its size). */
export function flavorDiskBytes(flavor: Pick<FlavorConfig, 'disk'>): number | null {
  return flavor.disk > 0 ? flavor.disk * GiB : null;
}

const Link = z.object({ rel: z.string(), href: z.string() });

export const NovaFlavorBriefSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    links: z.array(Link),
    description: z.string().nullable().optional().meta({ description: '2.55+' }),
  })
  .meta({ id: 'NovaFlavorBrief' });

export const NovaFlavorSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    ram: z.number().int().meta({ description: 'Memory, MiB.' }),
    disk: z.number().int().meta({ description: 'Root disk, GiB.' }),
    swap: z.union([z.literal(''), z.number().int()]).meta({ description: '"" below 2.75, 0 from 2.75 (ferry has no swap disks).' }),
    'OS-FLV-EXT-DATA:ephemeral': z.number().int(),
    'OS-FLV-DISABLED:disabled': z.boolean(),
    vcpus: z.number().int(),
    'os-flavor-access:is_public': z.boolean(),
    rxtx_factor: z.number(),
    links: z.array(Link),
    description: z.string().nullable().optional().meta({ description: '2.55+' }),
    extra_specs: z.record(z.string(), z.string()).optional().meta({ description: '2.61+' }),
  })
  .meta({ id: 'NovaFlavor' });

export function flavorLinks(base: string, id: string): { rel: string; href: string }[] {
  const path = encodeURIComponent(id);
  return [
    { rel: 'self', href: `${base}/v2.1/flavors/${path}` },
    { rel: 'bookmark', href: `${base}/flavors/${path}` },
  ];
}

/** views/flavors.py basic(): GET /flavors. */
export function novaFlavorBrief(f: FlavorConfig, v: Microversion, base: string): z.infer<typeof NovaFlavorBriefSchema> {
  const out: z.infer<typeof NovaFlavorBriefSchema> = { id: f.id, name: f.name, links: flavorLinks(base, f.id) };
  if (atLeast(v, 55)) out.description = f.description ?? null;
  return out;
}

/** views/flavors.py show(): GET /flavors/detail and /flavors/{id}. */
export function novaFlavor(f: FlavorConfig, v: Microversion, base: string): z.infer<typeof NovaFlavorSchema> {
  const out: z.infer<typeof NovaFlavorSchema> = {
    id: f.id,
    name: f.name,
    ram: f.ram,
    disk: f.disk,
    swap: atLeast(v, 75) ? 0 : '',
    'OS-FLV-EXT-DATA:ephemeral': 0,
    'OS-FLV-DISABLED:disabled': false,
    vcpus: f.vcpus,
    'os-flavor-access:is_public': true,
    rxtx_factor: 1.0,
    links: flavorLinks(base, f.id),
  };
  if (atLeast(v, 55)) out.description = f.description ?? null;
  if (atLeast(v, 61)) out.extra_specs = {};
  return out;
}

export const FLAVOR_SORT_KEYS = ['created_at', 'description', 'disabled', 'ephemeral_gb', 'flavorid', 'id', 'is_public', 'memory_mb', 'name', 'root_gb', 'rxtx_factor', 'swap', 'updated_at', 'vcpu_weight', 'vcpus'] as const;

/** The value Nova's FlavorList.get_all sorts by (fields ferry's flavors do not have sort as equal). */
export function sortValue(f: FlavorConfig, key: (typeof FLAVOR_SORT_KEYS)[number]): string | number {
  switch (key) {
    case 'flavorid':
    case 'id':
      return f.id;
    case 'name':
      return f.name;
    case 'description':
      return f.description ?? '';
    case 'memory_mb':
      return f.ram;
    case 'root_gb':
      return f.disk;
    case 'vcpus':
      return f.vcpus;
    default:
      return 0;
  }
}
