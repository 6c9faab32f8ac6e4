// The public interface of the coldMigration workflow (Nova's resize and cold migrate, the XenServer
// migrations blueprint): its input, statuses, view, updates and query. The API, the CLI and the
// workflow meet here; anything that drives a resize without ferry's API uses exactly these names.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';

export const COLD_MIGRATION_WORKFLOW = 'coldMigration';

/**
 * One resize or cold migration of an instance at a time: the workflow id is derived from it. The
 * run stays open after `finished` (VERIFY_RESIZE) until confirm, revert or the auto-confirm.
 */
export function coldMigrationWorkflowId(instanceUuid: string): string {
  return `cold-migration-${instanceUuid.toLowerCase()}`;
}

/** A flavor (Nova's): the size a resize gives the VM. Resolved by the API from temporal.yaml's `flavors`. */
export const FlavorSchema = z
  .object({
    id: z.string().min(1),
    name: z.string().min(1),
    vcpus: z.number().int().positive(),
    /** Memory in MiB (Nova's `ram`). */
    ram: z.number().int().positive(),
    /** Root disk in GiB (Nova's `disk`); 0 = the image's size, never grown. */
    disk: z.number().int().min(0),
  })
  .strict();
export type Flavor = z.infer<typeof FlavorSchema>;

const uuid = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a UUID')
  .transform((s) => s.toLowerCase());

export const ColdMigrationInputSchema = z
  .object({
    instanceUuid: uuid,
    /** The new size (resize); null: a plain cold migration, the same size (Nova's `migrate`). */
    flavor: FlavorSchema.nullable().default(null),
    /** Requested destination host (Nova 2.56 `migrate` with `host`); null lets the scheduler choose. */
    host: z.string().min(1).nullable().default(null),
    /** Confirm by itself this long after `finished` (Nova's resize_confirm_window); 0 = never. */
    autoConfirmSeconds: z.number().int().min(0).default(0),
    /** How long a clean shutdown may take before the VM is shut down hard (seconds). */
    cleanShutdownTimeoutSeconds: z.number().int().positive().default(60),
    /** Who asked, for Nova's migration record (user_id, project_id). */
    requestedBy: z.object({ userId: z.string(), projectId: z.string() }).strict().optional(),
  })
  .strict();
export type ColdMigrationInput = z.input<typeof ColdMigrationInputSchema>;
export type ColdMigrationRequest = z.output<typeof ColdMigrationInputSchema>;

/** Nova's migration statuses for resize and cold migration (nova/objects/migration.py, compute/manager.py). */
export const COLD_MIGRATION_STATUSES = [
  'pre-migrating',
  'migrating',
  'post-migrating',
  'finished',
  'confirming',
  'confirmed',
  'reverting',
  'reverted',
  'error',
] as const;
export type ColdMigrationStatus = (typeof COLD_MIGRATION_STATUSES)[number];
export const COLD_MIGRATION_FINAL: ReadonlySet<ColdMigrationStatus> = new Set(['confirmed', 'reverted', 'error']);

/** The steps, with the seed's and Nova's names, in order. */
export const COLD_MIGRATION_STEPS = [
  'checking',
  'scheduling',
  'prepResize',
  'snapshot',
  'transferBase',
  'shutdown',
  'transferLeaf',
  'finishMigration',
  'verifyResize',
  'confirmResize',
  'revertResize',
  'rollback',
  'done',
] as const;
export type ColdMigrationStep = (typeof COLD_MIGRATION_STEPS)[number];

/** The instance's size before and after. */
export interface InstanceSize {
  vcpus: number;
  ramMiB: number;
  diskBytes: number;
}

/** The status query's answer (and every update's). */
export interface ColdMigrationView {
  workflowId: string;
  /** The run id (Nova's migration uuid). */
  uuid: string;
  instanceUuid: string;
  /** Nova's migration_type: `resize` when a flavor was given, else `migration`. */
  migrationType: 'resize' | 'migration';
  status: ColdMigrationStatus;
  step: ColdMigrationStep;
  sourceHost: string | null;
  destHost: string | null;
  /** The instance's uuid on the destination (a new VM there until confirm). */
  destInstanceUuid: string | null;
  oldSize: InstanceSize | null;
  newFlavor: Flavor | null;
  newSize: InstanceSize | null;
  /** Disk bytes sent so far and in all (base and leaf). */
  diskProcessedBytes: number;
  diskTotalBytes: number | null;
  /** From the shutdown's start to the destination VM's start; null until it started. */
  downtimeMs: number | null;
  /** When the auto-confirm will confirm, while finished. */
  autoConfirmAt: string | null;
  error: { type: string; message: string } | null;
  /**
   * Steps a host did not do within hostTimeout, left to a coldMigrationCleanup workflow (id
   * `cold-migration-cleanup-<run>-<host>`) that waits for the host. Absent when there are none.
   */
  cleanups?: Array<{ workflowId: string; host: string; steps: string[] }>;
  userId: string | null;
  projectId: string | null;
  createdAt: string;
  updatedAt: string;
}

/**
 * The view a run starts with: the workflow's first, and the API's answer to a start before the
 * workflow answers its query (one home for the shape).
 */
export function newColdMigrationView(init: {
  runId: string;
  instanceUuid: string;
  flavor: Flavor | null;
  createdAt: string;
  requestedBy?: { userId: string; projectId: string } | undefined;
  /** By default coldMigrationWorkflowId(instanceUuid). */
  workflowId?: string;
  sourceHost?: string | null;
  destHost?: string | null;
}): ColdMigrationView {
  const instanceUuid = init.instanceUuid.toLowerCase();
  return {
    workflowId: init.workflowId ?? coldMigrationWorkflowId(instanceUuid),
    uuid: init.runId,
    instanceUuid,
    migrationType: init.flavor ? 'resize' : 'migration',
    status: 'pre-migrating',
    step: 'checking',
    sourceHost: init.sourceHost ?? null,
    destHost: init.destHost ?? null,
    destInstanceUuid: null,
    oldSize: null,
    newFlavor: init.flavor,
    newSize: null,
    diskProcessedBytes: 0,
    diskTotalBytes: null,
    downtimeMs: null,
    autoConfirmAt: null,
    error: null,
    userId: init.requestedBy?.userId ?? null,
    projectId: init.requestedBy?.projectId ?? null,
    createdAt: init.createdAt,
    updatedAt: init.createdAt,
  };
}

/** Confirm and revert answer at once with the view; refused (with why) in a status that does not allow them. */
export const confirmResizeUpdate = defineUpdate<ColdMigrationView>('confirmResize');
export const revertResizeUpdate = defineUpdate<ColdMigrationView>('revertResize');
export const coldMigrationStatusQuery = defineQuery<ColdMigrationView>('coldMigrationStatus');
