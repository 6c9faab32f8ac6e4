// XenAPI look-ups the host activities share. An agent logs in to its pool's master (one database
// per pool: refs are pool-wide, a VM keeps its ref when it moves inside the pool) and acts on its
// own host, which it finds by its management address.
import { ApplicationFailure } from '@temporalio/activity';
import type { HostConfig } from '../../lib/config';
import type { XenApiClient } from '../../xenapi/client';
import { XenApiCode, XenApiError, isXenApiError } from '../../xenapi/errors';
import { NULL_REF, type HostRecord, type VmRecord } from '../../xenapi/records';

export interface ThisHost {
  ref: string;
  record: HostRecord;
  /** Whether this host is its pool's master (halted VMs with no affinity count as the master's). */
  isMaster: boolean;
}

export interface FoundVm {
  ref: string;
  record: VmRecord;
}

/**
 * This agent's host in the pool's database: the host whose `address` is the one the agent was
 * configured with (xapi's management address), as every member of a pool answers for all of them.
 */
export async function thisHost(xenapi: XenApiClient, host: HostConfig): Promise<ThisHost> {
  const address = new URL(host.xenapiUrl).hostname;
  const hosts = await xenapi.getAllRecordsWhere('host', `field "address" = "${address}"`);
  const entry = Object.entries(hosts)[0];
  if (!entry) throw ApplicationFailure.nonRetryable(`no host of the pool has the address ${address} (${host.name})`, 'HostNotFound');
  const pools = Object.values(await xenapi.getAllRecords('pool'));
  return { ref: entry[0], record: entry[1], isMaster: pools.some((p) => p.master === entry[0]) };
}

/** A VM of this pool by uuid, or null when the pool's database does not know it. */
export async function findVm(xenapi: XenApiClient, uuid: string): Promise<FoundVm | null> {
  try {
    const ref = await xenapi.getByUuid('VM', uuid);
    return { ref, record: await xenapi.getRecord('VM', ref) };
  } catch (err) {
    if (isXenApiError(err, XenApiCode.UUID_INVALID) || isXenApiError(err, XenApiCode.HANDLE_INVALID)) return null;
    throw err;
  }
}

/** The VM runs (or is paused) on this host: its domain lives here. */
export function runsHere(vm: FoundVm | null, here: ThisHost): boolean {
  return vm !== null && vm.record.resident_on === here.ref && vm.record.power_state !== 'Halted';
}

/**
 * A halted VM is resident nowhere; it counts as this host's when its affinity points here, or
 * when it has none and this host is the master (so that exactly one agent lists it).
 */
export function ownsHalted(vm: VmRecord, here: ThisHost): boolean {
  if (vm.resident_on !== NULL_REF || vm.power_state !== 'Halted') return false;
  return vm.affinity === here.ref || (vm.affinity === NULL_REF && here.isMaster);
}

/** The migration task xapi lists in the VM's current_operations (xapi_vm_lifecycle.ml), if any. */
export function migrationTaskOf(vm: VmRecord): string | null {
  const entry = Object.entries(vm.current_operations).find(([, op]) => op === 'migrate_send' || op === 'pool_migrate');
  return entry?.[0] ?? null;
}

export interface VmDisk {
  vdiRef: string;
  srUuid: string;
  shared: boolean;
  sizeBytes: number;
}

export async function vmDisks(xenapi: XenApiClient, vm: VmRecord): Promise<VmDisk[]> {
  const disks: VmDisk[] = [];
  for (const vbdRef of vm.VBDs) {
    const vbd = await xenapi.getRecord('VBD', vbdRef);
    if (vbd.type !== 'Disk' || vbd.empty) continue;
    const vdi = await xenapi.getRecord('VDI', vbd.VDI);
    const sr = await xenapi.getRecord('SR', vdi.SR);
    disks.push({ vdiRef: vbd.VDI, srUuid: sr.uuid, shared: sr.shared, sizeBytes: Number(vdi.virtual_size) });
  }
  return disks;
}

/** The cap in the VM's record (VCPUs_params), which a new domain starts with. */
export function vcpuCap(vm: VmRecord): number | null {
  const cap = Number(vm.VCPUs_params.cap ?? '0');
  return cap > 0 ? cap : null;
}

/**
 * A XenAPI failure as a Temporal failure: checks that fail for a reason of the VM or host are
 * final (retrying cannot change the answer); transport trouble stays retryable.
 */
const TRANSIENT = new Set<string>([XenApiCode.CANNOT_CONTACT_HOST, XenApiCode.HOST_OFFLINE, XenApiCode.SESSION_INVALID, XenApiCode.HOST_IS_SLAVE]);

export function xenFailure(err: unknown, context: string): unknown {
  if (err instanceof XenApiError && !TRANSIENT.has(err.code)) {
    return ApplicationFailure.create({
      message: `${context}: ${err.message}`,
      type: err.code,
      nonRetryable: true,
      details: [err.params],
    });
  }
  return err;
}
