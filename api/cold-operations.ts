// Request logic of resize, cold migrate, confirm and revert shared by the Nova actions and ferry's /v1:
// the checks Nova's API makes before it casts to the conductor (nova/compute/api.py resize,
// confirm_resize, revert_resize with @check_instance_state), and what a server shows while one runs
// (nova/api/openstack/common.py _STATE_MAP: RESIZE, VERIFY_RESIZE, REVERT_RESIZE).
import type { FlavorConfig } from '../lib/config';
import { COLD_MIGRATION_FINAL, type ColdMigrationView } from '../workflows/cold-migration-definitions';
import type { InstanceView } from '../workflows/definitions';
import type { ColdMigrationOperations } from './cold-migration-service';
import { ApiError } from './errors';
import { AlreadyMigratingError, RefusedError, type FerryService } from './ferry-service';
import { currentFlavor, findFlavor, flavorDiskBytes, toFlavor } from './flavors';
import { vmState, type Located, type Refusals } from './operations';

/** Nova's names of the actions, as its conflict messages quote them. */
export type ColdAction = 'resize' | 'migrate' | 'confirmResize' | 'revertResize';

/** What a Nova client sees of an instance while a resize or cold migration is open (or its latest ended in error). */
export interface ColdServerState {
  status: 'RESIZE' | 'VERIFY_RESIZE' | 'REVERT_RESIZE' | 'ERROR';
  vmState: string | null;
  taskState: string | null;
  /** Where the server runs as far as Nova says: the destination once the copy started there. */
  host: string | null;
  /** The destination's VM while it is the same server (hidden from listings). */
  shadowUuid: string | null;
  view: ColdMigrationView;
}

/**
 * Nova's task state for each step (compute/manager.py): resize_prep until the destination is
 * prepared, resize_migrating while the source copies and shuts down, resize_migrated once the
 * disks are over, resize_finish while the destination builds and starts the VM.
 */
export function resizeTaskState(view: Pick<ColdMigrationView, 'status' | 'step'>): string | null {
  switch (view.status) {
    case 'pre-migrating':
      return 'resize_prep';
    case 'migrating':
      return view.step === 'checking' || view.step === 'scheduling' || view.step === 'prepResize' ? 'resize_prep' : 'resize_migrating';
    case 'post-migrating':
      return view.step === 'finishMigration' ? 'resize_finish' : 'resize_migrated';
    case 'confirming':
      return 'resize_confirming';
    case 'reverting':
      return 'resize_reverting';
    default:
      return null;
  }
}

/** The server's state while the view is open; null once it is confirmed or reverted (the server is itself again). */
export function coldServerState(view: ColdMigrationView, instance: InstanceView | null): ColdServerState | null {
  const base = instance ? vmState(instance) : 'active';
  switch (view.status) {
    case 'pre-migrating':
    case 'migrating':
    case 'post-migrating':
      // The source VM is halted for the copy: Nova keeps vm_state active (or stopped) and says the task.
      return { status: 'RESIZE', vmState: base === 'stopped' ? 'stopped' : 'active', taskState: resizeTaskState(view), host: view.sourceHost, shadowUuid: shadow(view), view };
    case 'finished':
    case 'confirming':
      return { status: 'VERIFY_RESIZE', vmState: 'resized', taskState: resizeTaskState(view), host: view.destHost ?? view.sourceHost, shadowUuid: shadow(view), view };
    case 'reverting':
      return { status: 'REVERT_RESIZE', vmState: 'resized', taskState: 'resize_reverting', host: view.destHost ?? view.sourceHost, shadowUuid: shadow(view), view };
    case 'error':
      return { status: 'ERROR', vmState: 'error', taskState: null, host: view.sourceHost, shadowUuid: null, view };
    default:
      return null;
  }
}

function shadow(view: ColdMigrationView): string | null {
  return view.destInstanceUuid && view.destInstanceUuid.toLowerCase() !== view.instanceUuid ? view.destInstanceUuid.toLowerCase() : null;
}

/**
 * Each instance's open resize or cold migration (and one whose latest ended in error), by instance
 * uuid. One visibility query for the open runs plus their status queries; errors only of the latest.
 */
export async function coldStateByInstance(ops: ColdMigrationOperations, instances: Map<string, InstanceView>): Promise<Map<string, ColdServerState>> {
  const [open, errors] = await Promise.all([ops.list({ open: true, limit: 1000 }), ops.list({ open: false, status: 'error', limit: 100 })]);
  const out = new Map<string, ColdServerState>();
  for (const view of errors) {
    if (out.has(view.instanceUuid)) continue;
    const latest = await ops.get(view.instanceUuid);
    if (latest?.uuid === view.uuid) {
      const state = coldServerState(view, instances.get(view.instanceUuid) ?? null);
      if (state) out.set(view.instanceUuid, state);
    }
  }
  for (const view of open) {
    const state = coldServerState(view, instances.get(view.instanceUuid) ?? null);
    if (state) out.set(view.instanceUuid, state);
    else out.delete(view.instanceUuid);
  }
  return out;
}

/** Nova's InstanceInvalidState as its API words it (common.raise_http_conflict_for_instance_invalid_state). */
export function invalidState(action: string, uuid: string, attr: 'vm_state' | 'task_state', state: string): ApiError {
  return new ApiError('conflict', `Cannot '${action}' instance ${uuid} while it is in ${attr} ${state}`);
}

export interface ColdRequest {
  instanceUuid: string;
  /** resize: the flavorRef as given; absent: a cold migration (Nova's migrate). */
  flavorRef?: string | number;
  /** migrate only (Nova 2.56): the destination. */
  host?: string | null;
  requestedBy: { userId: string; projectId: string };
}

/**
 * Nova's API-side checks of resize and migrate (compute/api.py resize): the instance exists (404),
 * is active or stopped with no task (409 naming its vm_state or task_state), the flavor exists (400
 * FlavorNotFound), is not the one it has (400 CannotResizeToSameFlavor), does not shrink its disk
 * (400 CannotResizeDisk); a requested host exists (400 ComputeHostNotFound, 404 for /v1) and is not
 * the current one (400 CannotMigrateToSameHost, 409 for /v1). Then the workflow starts; it checks
 * everything again against the hosts.
 */
export async function startColdMigration(
  service: FerryService,
  flavors: readonly FlavorConfig[],
  request: ColdRequest,
  options: { autoConfirmSeconds: number; refusals: Refusals },
): Promise<ColdMigrationView> {
  const action: ColdAction = request.flavorRef === undefined ? 'migrate' : 'resize';
  const uuid = request.instanceUuid.toLowerCase();
  const located: Located | null = await service.locateInstance(uuid);
  if (!located) throw new ApiError('not_found', `Instance ${uuid} could not be found.`);
  await refuseBusy(service, action, located);

  let flavor: FlavorConfig | null = null;
  if (request.flavorRef !== undefined) {
    flavor = findFlavor(flavors, request.flavorRef);
    if (!flavor) throw new ApiError(options.refusals === 'nova' ? 'bad_request' : 'not_found', `Flavor ${String(request.flavorRef)} could not be found.`);
    const current = currentFlavor(flavors, located.instance);
    // Nova answers 400 to both; ferry's /v1 keeps schema-valid requests out of 400.
    const refused = options.refusals === 'nova' ? 'bad_request' : 'conflict';
    if (current?.id === flavor.id) throw new ApiError(refused, 'When resizing, instances must change flavor!');
    const newDisk = flavorDiskBytes(flavor);
    if (newDisk !== null && newDisk < located.instance.diskBytes) {
      throw new ApiError(refused, 'Server disk was unable to be resized because: Unable to resize disk down.');
    }
  }
  if (request.host) {
    if (!(await service.describeCluster()).hosts.some((h) => h.name === request.host)) {
      throw new ApiError(options.refusals === 'nova' ? 'bad_request' : 'not_found', `Compute host ${request.host} could not be found.`);
    }
    if (request.host === located.host.name) {
      throw new ApiError(options.refusals === 'nova' ? 'bad_request' : 'conflict', 'Cannot migrate to the host where the server exists.');
    }
  }
  try {
    return await service.coldMigrations.start({
      instanceUuid: uuid,
      flavor: flavor ? toFlavor(flavor) : null,
      host: request.host ?? null,
      autoConfirmSeconds: options.autoConfirmSeconds,
      requestedBy: request.requestedBy,
    });
  } catch (err) {
    if (err instanceof AlreadyMigratingError) {
      const latest = await service.coldMigrations.get(uuid);
      const state = latest ? coldServerState(latest, located.instance) : null;
      if (state?.taskState) throw invalidState(action, uuid, 'task_state', state.taskState);
      throw invalidState(action, uuid, 'vm_state', state?.vmState ?? 'resized');
    }
    throw err;
  }
}

/** check_instance_state(vm_state=[ACTIVE, STOPPED], task_state=[None]): a resize, a live migration, or a paused VM refuses. */
async function refuseBusy(service: FerryService, action: ColdAction, located: Located): Promise<void> {
  const uuid = located.instance.uuid.toLowerCase();
  const latest = await service.coldMigrations.get(uuid);
  const cold = latest ? coldServerState(latest, located.instance) : null;
  if (cold?.taskState) throw invalidState(action, uuid, 'task_state', cold.taskState);
  if (cold && cold.vmState !== 'active' && cold.vmState !== 'stopped' && cold.vmState) throw invalidState(action, uuid, 'vm_state', cold.vmState);
  const live = await service.listMigrationSummaries({ instanceUuid: uuid, open: true, limit: 1 });
  if (live.length > 0) throw invalidState(action, uuid, 'task_state', 'migrating');
  const state = vmState(located.instance);
  if (state !== 'active' && state !== 'stopped') throw invalidState(action, uuid, 'vm_state', state);
}

/**
 * confirmResize and revertResize (compute/api.py, @check_instance_state(vm_state=[RESIZED])): only
 * while the instance's latest resize or cold migration is finished (VERIFY_RESIZE); otherwise 409
 * naming the vm_state (active, when there is none) or the task state (confirming, reverting). The
 * workflow's own refusal (its update validator) is a 409 with its reason.
 */
export async function controlColdMigration(service: FerryService, action: 'confirmResize' | 'revertResize', instanceUuid: string): Promise<ColdMigrationView> {
  const uuid = instanceUuid.toLowerCase();
  const located = await service.locateInstance(uuid);
  const latest = await service.coldMigrations.get(uuid);
  if (!located && !latest) throw new ApiError('not_found', `Instance ${uuid} could not be found.`);
  const state = latest && !COLD_MIGRATION_FINAL.has(latest.status) ? coldServerState(latest, located?.instance ?? null) : null;
  if (!latest || !state || state.vmState !== 'resized') {
    const vm = state?.vmState ?? (located ? vmState(located.instance) : 'active');
    throw invalidState(action, uuid, 'vm_state', vm);
  }
  if (state.taskState) throw invalidState(action, uuid, 'task_state', state.taskState);
  try {
    return action === 'confirmResize' ? await service.coldMigrations.confirm(latest.uuid) : await service.coldMigrations.revert(latest.uuid);
  } catch (err) {
    if (err instanceof RefusedError) throw new ApiError('conflict', `Cannot '${action}' instance ${uuid}: ${err.message}`);
    throw err;
  }
}
