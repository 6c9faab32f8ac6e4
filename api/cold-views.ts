// How a resize or cold migration (the coldMigration workflow's view) is shown: as a row of Nova's
// os-migrations (migration_type resize or migration, Nova's statuses, its instance type ids) and as
// ferry's own /v1 cold migration (the whole view, with progress and downtime). The zod schema of the
// latter mirrors workflows/cold-migration-definitions.ts; the check at the bottom fails the
// typecheck if the two drift apart.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { FlavorConfig } from '../lib/config';
import { COLD_MIGRATION_STATUSES, COLD_MIGRATION_STEPS, FlavorSchema, type ColdMigrationView } from '../workflows/cold-migration-definitions';
import { novaMigrationId } from '../workflows/definitions';
import type { InstanceAction } from './ferry-service';
import { currentFlavor } from './flavors';
import { requestIdOf } from './instance-actions';
import type { NovaMigrationRow } from './nova-views';

/**
 * Nova's instance type ids are its database ids: here a flavor's position in temporal.yaml plus one
 * (stable while the list is), null when no configured flavor has that size. A cold migration keeps
 * the size: both ids are the same, as in Nova.
 */
function instanceTypeId(flavors: readonly FlavorConfig[], flavor: FlavorConfig | null): number | null {
  if (!flavor) return null;
  const at = flavors.findIndex((f) => f.id === flavor.id);
  return at < 0 ? null : at + 1;
}

export function coldMigrationRow(view: ColdMigrationView, flavors: readonly FlavorConfig[]): NovaMigrationRow {
  const old = view.oldSize ? currentFlavor(flavors, { vcpus: view.oldSize.vcpus, memoryBytes: view.oldSize.ramMiB * 2 ** 20, diskBytes: view.oldSize.diskBytes }) : null;
  const oldId = instanceTypeId(flavors, old);
  const newId = view.newFlavor ? instanceTypeId(flavors, flavors.find((f) => f.id === view.newFlavor?.id) ?? null) : oldId;
  return {
    id: novaMigrationId(view.uuid),
    uuid: view.uuid,
    server_uuid: view.instanceUuid,
    status: view.status,
    migration_type: view.migrationType,
    source_compute: view.sourceHost,
    source_node: view.sourceHost,
    dest_compute: view.destHost,
    dest_host: view.destHost,
    dest_node: view.destHost,
    old_instance_type_id: oldId,
    new_instance_type_id: newId,
    created_at: view.createdAt,
    updated_at: view.updatedAt,
    user_id: view.userId,
    project_id: view.projectId,
  };
}

/** A uuid derived from a run id and a word: the request id of a run's confirm or revert, stable across reads. */
function derivedUuid(runId: string, what: string): string {
  const hex = createHash('sha1').update(`${runId}:${what}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${((parseInt(hex.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${hex.slice(18, 20)}-${hex.slice(20, 32)}`;
}

/**
 * A resize or cold migration as Nova's instance actions: `resize` or `migrate` (request id
 * req-<run id>), then `confirmResize` or `revertResize` once asked (their own request ids, derived
 * from the run id). Nova's message is 'Error' for the action that failed. No events: the run's
 * history is not read for these.
 */
export function coldInstanceActions(view: ColdMigrationView): InstanceAction[] {
  const base = {
    instanceUuid: view.instanceUuid,
    migrationUuid: view.uuid,
    userId: view.userId,
    projectId: view.projectId,
    events: [],
  };
  const decided = view.status === 'confirming' || view.status === 'confirmed' ? 'confirmResize' : view.status === 'reverting' || view.status === 'reverted' ? 'revertResize' : null;
  const actions: InstanceAction[] = [
    {
      ...base,
      action: view.migrationType === 'resize' ? 'resize' : 'migrate',
      requestId: requestIdOf(view.uuid),
      startTime: view.createdAt,
      updatedAt: decided ? view.createdAt : view.updatedAt,
      message: view.status === 'error' && !decided ? 'Error' : null,
    },
  ];
  if (decided) {
    actions.push({
      ...base,
      action: decided,
      requestId: requestIdOf(derivedUuid(view.uuid, decided)),
      startTime: view.updatedAt,
      updatedAt: view.updatedAt,
      message: view.status === 'error' ? 'Error' : null,
    });
  }
  return actions;
}

const InstanceSizeSchema = z.object({ vcpus: z.number(), ramMiB: z.number(), diskBytes: z.number() });

export const ColdMigrationSchema = z
  .object({
    workflowId: z.string(),
    uuid: z.string().meta({ description: "The workflow run id: ferry's cold migration id and Nova's migration uuid." }),
    instanceUuid: z.string(),
    migrationType: z.enum(['resize', 'migration']).meta({ description: "Nova's migration_type: resize when a flavor was given." }),
    status: z.enum(COLD_MIGRATION_STATUSES).meta({ id: 'ColdMigrationStatus', description: "Nova's resize statuses; finished is VERIFY_RESIZE (confirm or revert)." }),
    step: z.enum(COLD_MIGRATION_STEPS).meta({ id: 'ColdMigrationStep' }),
    sourceHost: z.string().nullable(),
    destHost: z.string().nullable(),
    destInstanceUuid: z.string().nullable().meta({ description: 'The VM on the destination until confirm.' }),
    oldSize: InstanceSizeSchema.nullable(),
    newFlavor: FlavorSchema.nullable(),
    newSize: InstanceSizeSchema.nullable(),
    diskProcessedBytes: z.number(),
    diskTotalBytes: z.number().nullable(),
    downtimeMs: z.number().nullable().meta({ description: "From the source's shutdown to the destination VM's start." }),
    autoConfirmAt: z.string().nullable().meta({ description: 'When the resize confirm window confirms it by itself, while finished.' }),
    error: z.object({ type: z.string(), message: z.string() }).nullable(),
    userId: z.string().nullable(),
    projectId: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'ColdMigration', description: 'A resize or cold migration: the coldMigration workflow\'s view.' });

export const ColdMigrationListSchema = z.object({ coldMigrations: z.array(ColdMigrationSchema) }).meta({ id: 'ColdMigrationList' });

// ---- compile-time check that the schema matches the workflow contract ----
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const assertTrue = <T extends true>(_t?: T): void => undefined;
assertTrue<Same<z.infer<typeof ColdMigrationSchema>, ColdMigrationView>>();
