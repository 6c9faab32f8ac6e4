// XenAPI look-ups the host activities share: this host's own record, a VM by uuid, its disks.
import { ApplicationFailure } from '@temporalio/activity';
import type { XenApiClient } from '../../xenapi/client';
import { XenApiCode, XenApiError, isXenApiError } from '../../xenapi/errors';
import { NULL_REF, type HostRecord, type VmRecord } from '../../xenapi/records';

export interface ThisHost {
  ref: string;
  record: HostRecord;
}

/** The host record whose name_label is this agent's host (a pool master lists its peers too). */
export async function thisHost(xenapi: XenApiClient, name: string): Promise<ThisHost> {
  const hosts = await xenapi.getAllRecordsWhere('host', `field "name_label" = "${name}"`);
  const entry = Object.entries(hosts)[0];
  if (!entry) throw ApplicationFailure.nonRetryable(`XenAPI knows no host named ${name}`, 'HostNotFound');
  return { ref: entry[0], record: entry[1] };
}

/** A VM by uuid, or null when this XenAPI does not know it. */
export async function findVm(xenapi: XenApiClient, uuid: string): Promise<{ ref: string; record: VmRecord } | null> {
  try {
    const ref = await xenapi.getByUuid('VM', uuid);
    return { ref, record: await xenapi.getRecord('VM', ref) };
  } catch (err) {
    if (isXenApiError(err, XenApiCode.UUID_INVALID) || isXenApiError(err, XenApiCode.HANDLE_INVALID)) return null;
    throw err;
  }
}

/**
 * The VM if it is this host's: resident here, or halted (resident nowhere) and known to this
 * XenAPI, as a VM is after its host crashed.
 */
export async function localVm(xenapi: XenApiClient, here: ThisHost, uuid: string) {
  const vm = await findVm(xenapi, uuid);
  return vm && (vm.record.resident_on === here.ref || vm.record.resident_on === NULL_REF) ? vm : null;
}

/** The VM if it is resident on this host, else null. */
export async function residentVm(xenapi: XenApiClient, here: ThisHost, uuid: string) {
  const vm = await findVm(xenapi, uuid);
  return vm && vm.record.resident_on === here.ref ? vm : null;
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

export function vcpuCap(vm: VmRecord): number | null {
  const cap = Number(vm.VCPUs_params.cap ?? '0');
  return cap > 0 ? cap : null;
}

/**
 * A XenAPI failure as a Temporal failure: checks that fail for a reason of the VM or host are
 * final (retrying cannot change the answer); transport trouble stays retryable.
 */
const TRANSIENT = new Set<string>([XenApiCode.CANNOT_CONTACT_HOST, XenApiCode.HOST_OFFLINE, XenApiCode.SESSION_INVALID]);

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
