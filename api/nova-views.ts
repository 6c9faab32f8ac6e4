// Nova's JSON views of servers and migrations, field by field as each microversion shows them
// (nova/api/openstack/compute/views, server_migrations.py, migrations.py).
import { z } from 'zod';
import type { InstanceView, MigrationStatusView } from '../workflows/definitions';
import { IN_PROGRESS_STATUSES } from './context';
import { atLeast, type Microversion } from './microversion';
import type { ColdServerState } from './cold-operations';
import { vmState, type MigrationState } from './operations';

const POWER_STATE: Record<InstanceView['powerState'], number> = { Running: 1, Paused: 3, Halted: 4, Suspended: 7 };
const SERVER_STATUS: Record<InstanceView['powerState'], string> = { Running: 'ACTIVE', Paused: 'PAUSED', Halted: 'SHUTOFF', Suspended: 'SUSPENDED' };

const Link = z.object({ rel: z.string(), href: z.string() });

export const NovaServerSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    status: z.string().meta({ description: 'ACTIVE, PAUSED, SHUTOFF, SUSPENDED; MIGRATING while a live migration runs; RESIZE, VERIFY_RESIZE, REVERT_RESIZE during a resize or cold migration; ERROR when the latest migration ended in error.' }),
    links: z.array(Link),
    tenant_id: z.string().optional(),
    user_id: z.string().optional(),
    'OS-EXT-SRV-ATTR:host': z.string().nullable().optional(),
    'OS-EXT-SRV-ATTR:hypervisor_hostname': z.string().nullable().optional(),
    'OS-EXT-STS:task_state': z.string().nullable().optional(),
    'OS-EXT-STS:vm_state': z.string().optional(),
    'OS-EXT-STS:power_state': z.number().int().optional(),
    'OS-EXT-AZ:availability_zone': z.string().optional(),
    // openstackclient's `server list` reads image (Nova: "" for a volume-backed server) and, from 2.47, flavor.original_name.
    image: z.string().optional().meta({ description: 'Nova\'s "" of a server booted from a volume: ferry knows no images.' }),
    flavor: z
      .object({ vcpus: z.number(), ram: z.number(), disk: z.number(), ephemeral: z.number().optional(), swap: z.number().optional(), original_name: z.string().optional() })
      .optional(),
  })
  .meta({ id: 'NovaServer' });
export type NovaServer = z.infer<typeof NovaServerSchema>;

/** Nova's brief server (GET /servers, views/servers.py basic): no status. */
export const NovaServerBriefSchema = z.object({ id: z.string(), name: z.string(), links: z.array(Link) }).strict().meta({ id: 'NovaServerBrief' });

export function serverLinks(base: string, id: string): { rel: string; href: string }[] {
  return [
    { rel: 'self', href: `${base}/v2.1/servers/${id}` },
    { rel: 'bookmark', href: `${base}/servers/${id}` },
  ];
}

/** Nova's embedded flavor (2.47+): the configured flavor of the instance's size, or a name that says the size. */
function flavorOf(instance: InstanceView, flavorName: string | null): NonNullable<NovaServer['flavor']> {
  const ram = Math.round(instance.memoryBytes / 2 ** 20);
  const disk = Math.round(instance.diskBytes / 2 ** 30);
  return { vcpus: instance.vcpus, ram, disk, ephemeral: 0, swap: 0, original_name: flavorName ?? `${instance.vcpus}vcpu-${ram}mib-${disk}gib` };
}

/**
 * A server as Nova shows it. `migration`: 'migrating' while a migration workflow runs (status
 * MIGRATING, task_state migrating); 'error' when the instance's latest migration ended in error
 * (status ERROR, vm_state error, as Nova leaves an instance whose rollback failed). `cold`: an open
 * resize or cold migration (RESIZE, VERIFY_RESIZE, REVERT_RESIZE with Nova's vm and task states,
 * on its destination once it finished there), which wins over a live migration's state.
 */
export function novaServer(
  instance: InstanceView,
  migration: MigrationState,
  base: string,
  detail: boolean,
  cold: ColdServerState | null = null,
  flavorName: string | null = null,
): NovaServer {
  const migrating = migration === 'migrating';
  const status = cold?.status ?? (migrating ? 'MIGRATING' : migration === 'error' ? 'ERROR' : SERVER_STATUS[instance.powerState]);
  const summary: NovaServer = { id: instance.uuid, name: instance.name, status, links: serverLinks(base, instance.uuid) };
  if (!detail) return { id: summary.id, name: summary.name, links: summary.links } as NovaServer;
  const host = cold?.host ?? instance.host;
  return {
    ...summary,
    tenant_id: 'ferry',
    user_id: 'ferry',
    'OS-EXT-SRV-ATTR:host': host,
    'OS-EXT-SRV-ATTR:hypervisor_hostname': host,
    'OS-EXT-STS:task_state': cold ? cold.taskState : migrating ? 'migrating' : null,
    'OS-EXT-STS:vm_state': cold?.vmState ?? (migration === 'error' ? 'error' : vmState(instance)),
    'OS-EXT-STS:power_state': POWER_STATE[instance.powerState],
    'OS-EXT-AZ:availability_zone': 'nova',
    image: '',
    flavor: flavorOf(instance, flavorName),
  };
}

// ---- migrations ----

/** Fields Nova's two migration objects (server migrations and os-migrations) share. */
const migrationIdentity = {
  id: z.number().int(),
  uuid: z.string().optional().meta({ description: '2.59+' }),
  status: z.string(),
  source_compute: z.string().nullable(),
  source_node: z.string().nullable(),
  dest_compute: z.string().nullable(),
  dest_host: z.string().nullable(),
  dest_node: z.string().nullable(),
};
const migrationTimesAndOwner = {
  created_at: z.string(),
  updated_at: z.string(),
  user_id: z.string().nullable().optional().meta({ description: '2.80+' }),
  project_id: z.string().nullable().optional().meta({ description: '2.80+' }),
};

export const NovaServerMigrationSchema = z
  .object({
    ...migrationIdentity,
    server_uuid: z.string(),
    memory_total_bytes: z.number().nullable(),
    memory_processed_bytes: z.number().nullable(),
    memory_remaining_bytes: z.number().nullable(),
    disk_total_bytes: z.number().nullable(),
    disk_processed_bytes: z.number().nullable(),
    disk_remaining_bytes: z.number().nullable(),
    ...migrationTimesAndOwner,
  })
  .meta({ id: 'NovaServerMigration' });

export const NovaMigrationSchema = z
  .object({
    ...migrationIdentity,
    instance_uuid: z.string(),
    old_instance_type_id: z.number().nullable(),
    new_instance_type_id: z.number().nullable(),
    migration_type: z.string().optional().meta({ description: '2.23+: live-migration, resize or migration (cold).' }),
    links: z.array(Link).optional().meta({ description: '2.23+, for in-progress live migrations' }),
    ...migrationTimesAndOwner,
  })
  .meta({ id: 'NovaMigration' });

export const NovaMigrationListSchema = z
  .object({
    migrations: z.array(NovaMigrationSchema),
    migrations_links: z.array(Link).optional().meta({ description: '2.59+: the next page, when this one is full.' }),
  })
  .meta({ id: 'NovaMigrationList' });

/** Nova prints timestamps without a zone: 2016-01-29T13:42:02.000000. */
export function novaTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 19)}.${String(d.getUTCMilliseconds() * 1000).padStart(6, '0')}`;
}

/** GET /servers/{id}/migrations[/{mid}] (2.23+). */
export function novaServerMigration(m: MigrationStatusView, v: Microversion): z.infer<typeof NovaServerMigrationSchema> {
  const out: z.infer<typeof NovaServerMigrationSchema> = {
    id: m.id,
    server_uuid: m.server_uuid,
    status: m.status,
    source_compute: m.source_compute,
    source_node: m.source_node,
    dest_compute: m.dest_compute,
    dest_host: m.dest_host,
    dest_node: m.dest_node,
    memory_total_bytes: m.memory_total_bytes,
    memory_processed_bytes: m.memory_processed_bytes,
    memory_remaining_bytes: m.memory_remaining_bytes,
    disk_total_bytes: m.disk_total_bytes,
    disk_processed_bytes: m.disk_processed_bytes,
    disk_remaining_bytes: m.disk_remaining_bytes,
    created_at: novaTime(m.created_at),
    updated_at: novaTime(m.updated_at),
  };
  if (atLeast(v, 59)) out.uuid = m.uuid;
  if (atLeast(v, 80)) {
    out.user_id = m.user_id;
    out.project_id = m.project_id;
  }
  return out;
}

/**
 * What GET /os-migrations shows of any migration: a live migration's view, or a resize or cold
 * migration as coldMigrationRow makes it (Nova's statuses of those, its instance type ids).
 */
export type NovaMigrationRow = Pick<
  MigrationStatusView,
  'id' | 'uuid' | 'server_uuid' | 'source_compute' | 'source_node' | 'dest_compute' | 'dest_host' | 'dest_node' | 'created_at' | 'updated_at' | 'user_id' | 'project_id'
> & {
  status: string;
  migration_type: string;
  old_instance_type_id?: number | null;
  new_instance_type_id?: number | null;
};

/** GET /os-migrations. */
export function novaMigration(m: NovaMigrationRow, v: Microversion, base: string): z.infer<typeof NovaMigrationSchema> {
  const out: z.infer<typeof NovaMigrationSchema> = {
    id: m.id,
    instance_uuid: m.server_uuid,
    status: m.status,
    source_compute: m.source_compute,
    source_node: m.source_node,
    dest_compute: m.dest_compute,
    dest_host: m.dest_host,
    dest_node: m.dest_node,
    old_instance_type_id: m.old_instance_type_id ?? null,
    new_instance_type_id: m.new_instance_type_id ?? null,
    created_at: novaTime(m.created_at),
    updated_at: novaTime(m.updated_at),
  };
  if (atLeast(v, 23)) {
    out.migration_type = m.migration_type;
    // Nova links only live migrations in progress (migrations.py _output).
    if (m.migration_type === 'live-migration' && IN_PROGRESS_STATUSES.has(m.status)) {
      out.links = [
        { rel: 'self', href: `${base}/v2.1/servers/${m.server_uuid}/migrations/${m.id}` },
        { rel: 'bookmark', href: `${base}/servers/${m.server_uuid}/migrations/${m.id}` },
      ];
    }
  }
  if (atLeast(v, 59)) out.uuid = m.uuid;
  if (atLeast(v, 80)) {
    out.user_id = m.user_id;
    out.project_id = m.project_id;
  }
  return out;
}
