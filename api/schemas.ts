// zod schemas of ferry's /v1 API: request validation and, through z.toJSONSchema, the OpenAPI document.
// The response schemas mirror the workflow contract (workflows/definitions.ts); the type checks at the
// bottom fail the typecheck if the two drift apart.
import { z } from 'zod';
import {
  LiveMigrationInputSchema,
  MIGRATION_PHASES,
  MIGRATION_STATUSES,
  type ClusterView,
  type ControlAccepted,
  type HostView,
  type InstanceView,
  type MigrationStatusView,
  type TransferProgress,
} from '../workflows/definitions';

export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Host names as temporal.yaml allows them (they name task queues). */
export const HOST_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

export const Uuid = z.string().regex(UUID_PATTERN, 'must be a UUID');
export const HostName = z.string().regex(HOST_PATTERN, 'must be a host name: lowercase letters, digits and dashes');
/** A Nova server id: its uuid; any other text is a server that is not found (404), as in Nova, so that clients can fall back to a name. */
export const ServerId = z.string().min(1).max(255).meta({ description: 'The server (instance) uuid; another id is not found (404).' });

/** A route that takes no query parameters: any parameter is a 400 naming it. */
export const NoQuery = z.object({}).strict();

/** A decimal integer in a query string: the pattern is what the document promises, the number what the route reads. */
export function queryInteger(pattern: RegExp, description: string) {
  return z
    .string()
    .regex(pattern, `must match ${pattern.source}`)
    .transform(Number)
    .meta({ description });
}

const VERSIONED_BODIES = new WeakSet<z.ZodType>();

/**
 * A Nova body whose shape depends on the microversion: documented as the latest microversion takes
 * it, validated by its route at the request's microversion (the validator compiler lets it through).
 */
export function versionedBody<T extends z.ZodType>(schema: T): T {
  VERSIONED_BODIES.add(schema);
  return schema;
}

export function isVersionedBody(schema: unknown): boolean {
  return typeof schema === 'object' && schema !== null && VERSIONED_BODIES.has(schema as z.ZodType);
}

export const MigrationStatusEnum = z.enum(MIGRATION_STATUSES).meta({ id: 'MigrationStatus' });
export const MigrationPhaseEnum = z.enum(MIGRATION_PHASES).meta({ id: 'MigrationPhase' });

export const TransferProgressSchema = z
  .object({
    memoryTotalBytes: z.number(),
    memoryProcessedBytes: z.number(),
    memoryRemainingBytes: z.number(),
    diskTotalBytes: z.number(),
    diskProcessedBytes: z.number(),
    diskRemainingBytes: z.number(),
    fraction: z.number().min(0).max(1),
    fractionPerSecond: z.number(),
    etaSeconds: z.number().nullable(),
    transferPhase: z.enum(['precopy', 'stop_and_copy', 'done']),
    vcpuCap: z.number().optional(),
    guestPaused: z.boolean().optional(),
  })
  .meta({ id: 'TransferProgress' });

const nullableNumber = z.number().nullable();

export const AppliedMigrationPolicySchema = z
  .object({
    name: z.string().nullable().meta({ description: 'The policy that selected the VM; null when none did (migration.* applies).' }),
    reason: z.string().meta({ description: 'The selector terms that matched (and the policies it won over), or "default: no policy matched".' }),
    settings: z
      .object({
        completionTimeoutPerGiB: z.number(),
        timeoutAction: z.enum(['abort', 'force_complete']),
        progressTimeout: z.number(),
        autoConverge: z.object({ enabled: z.boolean(), capSteps: z.array(z.number()), stepSeconds: z.number(), forceCompleteAfterLastStep: z.boolean() }),
      })
      .meta({ description: "What the transfer runs with: the request's options, else the policy's, else migration.*." }),
  })
  .meta({ id: 'AppliedMigrationPolicy' });

export const MigrationSchema = z
  .object({
    id: z.number().int().meta({ description: "Nova's integer migration id: 31-bit FNV-1a of the run id." }),
    uuid: z.string().meta({ description: 'The workflow run id, also Nova\'s migration uuid and ferry\'s migration id.' }),
    workflowId: z.string(),
    server_uuid: z.string(),
    status: MigrationStatusEnum,
    phase: MigrationPhaseEnum,
    source_compute: z.string().nullable(),
    source_node: z.string().nullable(),
    dest_compute: z.string().nullable(),
    dest_host: z.string().nullable(),
    dest_node: z.string().nullable(),
    migration_type: z.literal('live-migration'),
    block_migration: z.boolean().nullable(),
    memory_total_bytes: nullableNumber,
    memory_processed_bytes: nullableNumber,
    memory_remaining_bytes: nullableNumber,
    disk_total_bytes: nullableNumber,
    disk_processed_bytes: nullableNumber,
    disk_remaining_bytes: nullableNumber,
    created_at: z.string(),
    updated_at: z.string(),
    user_id: z.string().nullable(),
    project_id: z.string().nullable(),
    progress: TransferProgressSchema.nullable(),
    attempts: z.array(z.object({ host: z.string(), reason: z.string() })),
    error: z.object({ type: z.string(), message: z.string() }).nullable(),
    abortable: z.boolean(),
    notAbortableReason: z.string().nullable(),
    forceCompleteRequested: z.boolean(),
    waitingFor: z.string().nullable().meta({ description: 'What the migration waits for now (a host, an agent, a slot).' }),
    cleanups: z
      .array(z.object({ workflowId: z.string(), host: z.string(), steps: z.array(z.string()) }))
      .meta({ description: 'Cleanups left to migrationCleanup workflows until a host that was down returns.' }),
    policy: AppliedMigrationPolicySchema.nullable().meta({
      description: "The migration policy (temporal.yaml's migration.policies) that applies and why; null until the source host confirmed the VM, and in runs from before policies.",
    }),
  })
  .meta({ id: 'Migration', description: "A live migration: Nova's migration fields plus ferry's phase and progress." });

export const MigrationListSchema = z.object({ migrations: z.array(MigrationSchema) }).meta({ id: 'MigrationList' });

// The rest is the workflow's own input schema: one definition of what a migration accepts.
const startFields = {
  instanceUuid: Uuid,
  blockMigration: LiveMigrationInputSchema.shape.blockMigration,
  options: LiveMigrationInputSchema.shape.options,
};
/** A start: force (skip the destination checks) only with a requested host, as the document says. */
export const StartMigrationSchema = z
  .union([
    z
      .object({
        ...startFields,
        host: HostName.nullish().meta({ description: 'Destination host; absent or null lets the scheduler choose.' }),
        force: z.literal(false).default(false),
      })
      .strict(),
    z
      .object({
        ...startFields,
        host: HostName.meta({ description: 'Destination host.' }),
        force: z.literal(true).meta({ description: 'Skip the destination checks: needs host.' }),
      })
      .strict(),
  ])
  .meta({ id: 'StartMigration' });
export type StartMigrationBody = z.output<typeof StartMigrationSchema>;

export const MigrationStartedSchema = z
  .object({
    id: z.string().meta({ description: 'Migration id (the workflow run id).' }),
    workflowId: z.string(),
    novaId: z.number().int(),
    instanceUuid: z.string(),
    location: z.string(),
  })
  .meta({ id: 'MigrationStarted' });

export const ControlAcceptedSchema = z
  .object({ accepted: z.literal(true), status: MigrationStatusEnum, phase: MigrationPhaseEnum })
  .meta({ id: 'ControlAccepted' });

export const AbortBodySchema = z
  .object({ reason: z.string().max(500).optional() })
  .strict()
  .meta({ id: 'AbortRequest' });

export const ListMigrationsQuerySchema = z
  .object({
    status: MigrationStatusEnum.optional(),
    host: HostName.optional().meta({ description: 'Source or destination host.' }),
    instance: Uuid.optional(),
    open: z.enum(['true', 'false']).optional().meta({ description: 'true: only running workflows; false: only closed ones.' }),
    limit: queryInteger(/^(?:[1-9]\d{0,1}|[1-4]\d{2}|500)$/, 'At most this many, 1 to 500 (default 50).').optional(),
  })
  .strict();

export const MigrationIdParams = z.object({
  id: Uuid.meta({ description: 'Migration id (workflow run id), or an instance uuid for its latest migration.' }),
});

export const InstanceSchema = z
  .object({
    uuid: z.string(),
    name: z.string(),
    powerState: z.enum(['Running', 'Paused', 'Halted', 'Suspended']),
    host: z.string(),
    memoryBytes: z.number(),
    vcpus: z.number(),
    vcpuCap: z.number().nullable().meta({ description: 'VCPUs_params cap in percent of one vCPU; null when uncapped.' }),
    diskBytes: z.number(),
    storage: z.enum(['shared', 'local', 'none']),
    migration: z
      .object({ id: z.string(), status: MigrationStatusEnum.nullable(), workflowId: z.string() })
      .nullable()
      .meta({ description: 'The running migration of this instance, if any.' }),
  })
  .meta({ id: 'Instance' });

export const HostSchema = z
  .object({
    name: z.string(),
    pool: z.string(),
    up: z.boolean(),
    downReason: z.string().nullable(),
    enabled: z.boolean(),
    productVersion: z.string().nullable(),
    platformVersion: z.string().nullable(),
    memoryTotalBytes: z.number(),
    memoryFreeBytes: z.number(),
    instanceCount: z.number().int(),
    migrations: z
      .object({
        outbound: z.array(z.string()).meta({ description: 'Migration ids leaving this host.' }),
        inbound: z.array(z.string()).meta({ description: 'Migration ids arriving at this host.' }),
      })
      .meta({ description: 'Running migrations (from Temporal visibility).' }),
  })
  .meta({ id: 'Host' });

export const HostListSchema = z.object({ hosts: z.array(HostSchema), observedAt: z.string() }).meta({ id: 'HostList' });
export const InstanceListSchema = z
  .object({ instances: z.array(InstanceSchema), observedAt: z.string() })
  .meta({ id: 'InstanceList' });

export const HealthSchema = z
  .object({ status: z.enum(['ok', 'unavailable']), checks: z.record(z.string(), z.string()).optional() })
  .meta({ id: 'Health' });

// ---- compile-time checks that the schemas match the workflow contract ----
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const assertTrue = <T extends true>(_t?: T): void => undefined;
assertTrue<Same<z.infer<typeof MigrationSchema>, MigrationStatusView>>();
assertTrue<Same<z.infer<typeof TransferProgressSchema>, TransferProgress>>();
assertTrue<Same<z.infer<typeof ControlAcceptedSchema>, ControlAccepted>>();
assertTrue<Same<Omit<z.infer<typeof InstanceSchema>, 'migration'>, InstanceView>>();
export type { ClusterView, HostView };
