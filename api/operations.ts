// Request logic shared by ferry's /v1 routes and the Nova-compatible routes: the synchronous checks
// Nova's API makes before it hands a live migration to the conductor, and the lookups of running
// migrations by instance.
import type { HostView, InstanceView, LiveMigrationRequest } from '../workflows/definitions';
import { FINAL_STATUSES } from '../workflows/definitions';
import { ApiError } from './errors';
import { AlreadyMigratingError, type FerryService, type StartedMigration } from './ferry-service';

export interface Located {
  instance: InstanceView;
  host: HostView;
}

const VM_STATE: Record<InstanceView['powerState'], string> = {
  Running: 'active',
  Paused: 'paused',
  Halted: 'stopped',
  Suspended: 'suspended',
};

export function vmState(instance: InstanceView): string {
  return VM_STATE[instance.powerState];
}

/**
 * How the API refuses what the workflow would refuse anyway. Nova's API refuses an unknown host at
 * once (400, ComputeHostNotFound) and leaves the current host to the conductor (UnableToMigrateToSelf:
 * a 400 below 2.34, where the API waits for the pre-checks, a migration in error from 2.34). ferry's
 * /v1 keeps every schema-valid request out of 400: an unknown host is a 404, the current host a 409.
 */
export type Refusals = 'nova' | 'v1';

/**
 * Nova's API-side checks (nova/compute/api.py live_migrate, nova/api/.../migrate_server.py): the
 * instance exists (404), is active or paused (409), the requested host exists, and no migration of
 * the instance runs (409); /v1 also refuses the current host at once. They read the host inventory,
 * a moment old; a refusal is confirmed with the host's latest report first (a VM that just moved is
 * not refused on its old host), and the workflow checks everything again with the hosts themselves.
 */
export async function startLiveMigration(service: FerryService, request: LiveMigrationRequest, refusals: Refusals = 'v1'): Promise<StartedMigration> {
  let located: Located | null = await service.locateInstance(request.instanceUuid);
  if (!located) throw new ApiError('not_found', `Instance ${request.instanceUuid} could not be found.`);
  const refusable = (l: Located) => !isActive(l.instance) || (refusals === 'v1' && request.host === l.host.name);
  if (refusable(located)) located = await confirmed(service, located.host.name, located.instance.uuid);
  else if (request.host) {
    // The listing may lag a move that the requested host's own report already shows.
    located = (await confirmed(service, request.host, located.instance.uuid)) ?? located;
  }
  if (located && !isActive(located.instance)) {
    throw new ApiError('conflict', `Cannot 'os-migrateLive' instance ${located.instance.uuid} while it is in vm_state ${vmState(located.instance)}`);
  }
  if (request.host) {
    if (!(await service.describeCluster()).hosts.some((h) => h.name === request.host)) {
      throw new ApiError(refusals === 'nova' ? 'bad_request' : 'not_found', `Compute host ${request.host} could not be found.`);
    }
    if (refusals === 'v1' && located && request.host === located.host.name) {
      throw new ApiError('conflict', `Unable to migrate instance (${located.instance.uuid}) to current host (${located.host.name}).`);
    }
  }
  if (request.force && !request.host) {
    throw new ApiError('bad_request', "Can't force to a non-provided destination");
  }
  try {
    return await service.startMigration(request);
  } catch (err) {
    if (err instanceof AlreadyMigratingError) {
      throw new ApiError('conflict', `Cannot 'os-migrateLive' instance ${request.instanceUuid} while it is in task_state migrating`);
    }
    throw err;
  }
}

function isActive(instance: InstanceView): boolean {
  return instance.powerState === 'Running' || instance.powerState === 'Paused';
}

/** The instance as that host's latest report has it; null when the host does not list it (it moved: the workflow finds it). */
async function confirmed(service: FerryService, hostName: string, uuid: string): Promise<Located | null> {
  const host = await service.hostNow(hostName);
  const instance = host?.instances.find((i) => i.uuid === uuid);
  return host && instance ? { host, instance } : null;
}

/** What a Nova client sees of an instance's migrations: is one running, did the latest end in error. */
export type MigrationState = 'migrating' | 'error' | null;

/** The state of each instance's latest migration (visibility only). */
export async function migrationStateByInstance(service: FerryService): Promise<Map<string, MigrationState>> {
  const [running, errors] = await Promise.all([
    service.listMigrationSummaries({ open: true, limit: 1000 }),
    service.listMigrationSummaries({ status: 'error', limit: 1000 }),
  ]);
  const state = new Map<string, MigrationState>();
  const errorInstances = [...new Set(errors.map((m) => m.instanceUuid.toLowerCase()))];
  // An error counts only while it is the instance's latest migration: a later one supersedes it.
  await Promise.all(
    errorInstances.map(async (uuid) => {
      const latest = (await service.listMigrationSummaries({ instanceUuid: uuid, limit: 20 })).sort((a, b) => b.startedAt.localeCompare(a.startedAt))[0];
      if (latest?.status === 'error' && !latest.running) state.set(uuid, 'error');
    }),
  );
  for (const m of running) state.set(m.instanceUuid.toLowerCase(), 'migrating');
  return state;
}

/**
 * The conductor's pre-check failures Nova's API answers 400 for when it waits for them (below 2.34,
 * nova/api/openstack/compute/migrate_server.py), as the workflow names them.
 */
export const PRE_CHECK_FAILURES: ReadonlySet<string> = new Set([
  'NoValidHost',
  'ComputeServiceUnavailable',
  'InvalidHypervisorType',
  'InvalidCPUInfo',
  'UnableToMigrateToSelf',
  'DestinationHypervisorTooOld',
  'InvalidLocalStorage',
  'InvalidSharedStorage',
  'HypervisorUnavailable',
  'MigrationPreCheckError',
  'ComputeHostNotFound',
  'InstanceNotFound',
  'InvalidHost',
]);

/** Phases a migration reaches only once a destination passed its checks (Nova's conductor then casts to the source). */
const PAST_CHECKS = new Set(['preparing', 'precopy', 'stop_and_copy', 'post_migration']);

/**
 * Below 2.34 Nova's API waits for the conductor's pre-checks (live_migrate with async_ false) and
 * answers 400 with the reason when they fail. The same here: the migration's view is read until it
 * is past its checks or has ended, for at most `waitMs` (then the answer is 202 and the migration
 * goes on). A migration that ended with a pre-check failure is a 400 with its message.
 */
export async function waitForPreChecks(service: FerryService, runId: string, waitMs: number, pollMs = 250): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const view = await service.getMigration(runId);
    if (view) {
      if (view.error && FINAL_STATUSES.has(view.status) && PRE_CHECK_FAILURES.has(view.error.type)) {
        // Nova answers each exception's own text; only MigrationPreCheckError says "Migration pre-check error".
        const generic = view.error.type === 'MigrationPreCheckError' && !view.error.message.startsWith('Migration pre-check error');
        throw new ApiError('bad_request', generic ? `Migration pre-check error: ${view.error.message}` : view.error.message);
      }
      if (FINAL_STATUSES.has(view.status) || view.status === 'running' || PAST_CHECKS.has(view.phase)) return;
    }
    if (Date.now() + pollMs > deadline) return;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
