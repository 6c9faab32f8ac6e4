// The XenAPI calls a cold migration and a resize need, each as xapi defines it:
//   VM.snapshot, VDI.snapshot (xapi_vm_snapshot.ml, xapi_vdi.ml, xapi_vm_clone.ml; on a VHD SR, SM's snapshot turns the
//     disk into a hidden read-only parent with two copy-on-write leaves: the VM's and the snapshot's)
//   VDI.resize (xapi_vdi.ml resize: SM grows the VHD; a shrink is SM's VDISize error)
//   VDI.destroy (xapi_vdi.ml destroy_and_data_destroy_common; SM hides a parent that has children)
//   SR.scan (xapi_sr.ml scan/update_vdis: VDIs of files that appeared are introduced, VDIs whose
//     file vanished are forgotten)
//   VM.set_memory_limits, VM.set_VCPUs_max, VM.set_VCPUs_at_startup (xapi_vm.ml, the power-state
//     rule from message_forwarding.ml with_vm_operation and xapi_vm_lifecycle.ml allowed_power_states)
import { readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { XenApiCode, XenApiError } from '../xenapi/errors';
import type { Methods } from './api';
import type { SimHost } from './host';
import { NULL_REF, newUuid } from './ids';
import type { SimPool } from './pool';
import type { Rec } from './store';
import { createCow, diskVirtualSize, findDiskFile, readCowHeader, resizeDisk, type DiskKind } from './vdi-chain';

const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));
const smConfig = (r: Rec) => ({ ...((r.sm_config ?? {}) as Record<string, string>) });

/** xapi_vm_helpers.ml invalid_value with the message xapi_vm.ml gives for vCPU counts. */
const VCPU_RULE = 'VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max';

/** An int64 argument (a decimal string on the wire); INVALID_VALUE otherwise. */
function int64(name: string, v: unknown): bigint {
  const s = str(v);
  if (!/^-?\d+$/.test(s)) throw new XenApiError(XenApiCode.INVALID_VALUE, [name, s]);
  return BigInt(s);
}

/** Is the VDI attached to a VM whose domain runs (VBD of a Running or Paused VM)? */
function attachedToRunningVm(pool: SimPool, vdiRef: string): boolean {
  return pool.store.find('VBD', (r) => r.VDI === vdiRef).some((vbd) => {
    const vm = pool.store.table('VM').get(str(pool.store.raw('VBD', vbd).VM));
    return !!vm && vm.power_state !== 'Halted';
  });
}

function assertManaged(pool: SimPool, vdiRef: string): Rec {
  const rec = pool.store.raw('VDI', vdiRef);
  if (rec.managed === false) throw new XenApiError(XenApiCode.VDI_NOT_MANAGED, [vdiRef]);
  return rec;
}

/**
 * SM's VHD snapshot of one VDI: its content becomes a new hidden parent (the file renamed, so no
 * byte is copied), the VDI itself becomes an empty leaf on it (the VM keeps writing there), and a
 * second empty leaf on the same parent is the snapshot VDI. Returns the snapshot VDI's ref.
 */
export function snapshotVdi(pool: SimPool, vdiRef: string, vmSnapshotTime: Date): string {
  const s = pool.store;
  const vdi = s.raw('VDI', vdiRef);
  const dir = pool.srDir(str(vdi.SR));
  const uuid = str(vdi.uuid);
  const file = findDiskFile(dir, uuid);
  if (!file) throw new XenApiError(XenApiCode.INTERNAL_ERROR, [`the file of VDI ${uuid} is missing`]);
  const size = Number(vdi.virtual_size);
  const parentUuid = newUuid();
  renameSync(file.path, join(dir, `${parentUuid}.${file.kind === 'cow' ? 'cow' : 'img'}`));
  createCow(join(dir, `${uuid}.cow`), size, parentUuid);
  const snapUuid = newUuid();
  createCow(join(dir, `${snapUuid}.cow`), size, parentUuid);
  // SM reports a VHD's file size as its physical utilisation: an empty leaf is its header.
  const emptyLeaf = String(statSync(join(dir, `${snapUuid}.cow`)).size);
  const grandParent = smConfig(vdi)['vhd-parent'];
  s.add('VDI', {
    ...vdi,
    uuid: parentUuid,
    name_label: 'base copy',
    name_description: '',
    managed: false,
    read_only: true,
    is_a_snapshot: false,
    snapshot_of: NULL_REF,
    other_config: {},
    sm_config: grandParent ? { 'vhd-parent': grandParent } : {},
  });
  s.update('VDI', vdiRef, { sm_config: { ...smConfig(vdi), 'vhd-parent': parentUuid }, physical_utilisation: emptyLeaf });
  return s.add('VDI', {
    ...vdi,
    uuid: snapUuid,
    is_a_snapshot: true,
    snapshot_of: vdiRef,
    snapshot_time: vmSnapshotTime,
    physical_utilisation: emptyLeaf,
    read_only: false,
    managed: true,
    other_config: {},
    sm_config: { ...smConfig(vdi), 'vhd-parent': parentUuid },
  });
}

/** VM.snapshot: a new VM record (a template and a snapshot of `vm`) with snapshots of its disks. */
export function snapshotVm(pool: SimPool, vmRef: string, newName: string, ignoreVdis: string[]): string {
  const s = pool.store;
  const vm = s.raw('VM', vmRef);
  const now = new Date();
  const snapRef = s.add('VM', {
    ...vm,
    uuid: newUuid(),
    name_label: newName,
    // xapi_vm_clone.ml: ~is_a_template:(is_a_snapshot || ...), ~is_a_snapshot, snapshot_of, snapshot_time.
    is_a_template: true,
    is_a_snapshot: true,
    snapshot_of: vmRef,
    snapshot_time: now,
    power_state: 'Halted',
    domid: '-1',
    resident_on: NULL_REF,
    current_operations: {},
    other_config: { ...(vm.other_config as Record<string, string>) },
    tags: [...((vm.tags ?? []) as string[])],
  });
  for (const vbdRef of s.find('VBD', (r) => r.VM === vmRef)) {
    const vbd = s.raw('VBD', vbdRef);
    const vdiRef = str(vbd.VDI);
    const copy = vdiRef !== NULL_REF && vbd.type !== 'CD' && !ignoreVdis.includes(vdiRef);
    const snapVdi = copy ? snapshotVdi(pool, vdiRef, now) : NULL_REF;
    s.add('VBD', { ...vbd, uuid: newUuid(), VM: snapRef, VDI: snapVdi, empty: snapVdi === NULL_REF, currently_attached: false });
  }
  for (const vifRef of s.find('VIF', (r) => r.VM === vmRef)) {
    s.add('VIF', { ...s.raw('VIF', vifRef), uuid: newUuid(), VM: snapRef, currently_attached: false });
  }
  return snapRef;
}

/**
 * SR.scan: introduces a VDI for every disk file of the SR's directory that has none (a file that
 * is another file's parent is a hidden "base copy": managed false, read-only), brings vhd-parent
 * up to date from the files, and forgets VDIs whose file is gone.
 */
export function scanSr(pool: SimPool, srRef: string): void {
  const s = pool.store;
  const dir = pool.srDir(srRef);
  const files = new Map<string, { kind: DiskKind; parent?: string; size: number; bytes: number }>();
  for (const name of readdirSync(dir)) {
    const m = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(img|cow)$/.exec(name);
    if (!m) continue; // staging directories, .partial files of incoming migrations, temporaries
    const uuid = m[1] as string;
    const kind: DiskKind = m[2] === 'cow' ? 'cow' : 'raw';
    if (files.has(uuid) && kind === 'raw') continue; // a delta wins over a raw file of the same uuid
    const path = join(dir, name);
    try {
      files.set(uuid, { kind, parent: kind === 'cow' ? readCowHeader(path).parent : undefined, size: diskVirtualSize(path, kind), bytes: statSync(path).size });
    } catch {
      // A file being written (a rename not done yet, a header not there yet): the next scan sees it.
    }
  }
  const parents = new Set([...files.values()].map((f) => f.parent).filter((p): p is string => !!p));
  const known = new Map(s.find('VDI', (r) => r.SR === srRef).map((ref) => [str(s.raw('VDI', ref).uuid), ref]));
  for (const [uuid, ref] of known) {
    const f = files.get(uuid);
    if (!f) {
      for (const vbd of s.find('VBD', (r) => r.VDI === ref)) s.update('VBD', vbd, { VDI: NULL_REF, empty: true });
      s.remove('VDI', ref);
      continue;
    }
    const vdiRec = s.raw('VDI', ref);
    const sm = smConfig(vdiRec);
    if ((sm['vhd-parent'] ?? undefined) !== f.parent) {
      if (f.parent) sm['vhd-parent'] = f.parent;
      else delete sm['vhd-parent'];
      s.update('VDI', ref, { sm_config: sm });
    }
    // SM's scan reports each VHD's size on disk (a leaf grows as its VM writes).
    if (vdiRec.physical_utilisation !== String(f.bytes)) s.update('VDI', ref, { physical_utilisation: String(f.bytes) });
  }
  for (const [uuid, f] of files) {
    if (known.has(uuid)) continue;
    const hidden = parents.has(uuid);
    pool.store.add('VDI', {
      uuid,
      name_label: hidden ? 'base copy' : '',
      name_description: '',
      SR: srRef,
      type: 'user',
      sharable: false,
      read_only: hidden,
      managed: !hidden,
      missing: false,
      other_config: {},
      sm_config: f.parent ? { 'vhd-parent': f.parent } : {},
      is_a_snapshot: false,
      snapshot_of: NULL_REF,
      snapshot_time: new Date(0),
      virtual_size: String(f.size),
      physical_utilisation: String(f.bytes),
    });
  }
}

export function addStorageMethods(host: SimHost, m: Methods): void {
  const pool = host.pool;
  const s = pool.store;
  const def = (name: string, arity: number | [number, number], fn: (args: unknown[]) => unknown) => m.set(name, { arity, fn });
  const assertVm = (vm: string, op: string) => {
    const rec = host.vm(vm);
    if (rec.is_control_domain) throw new XenApiError(XenApiCode.OPERATION_NOT_ALLOWED, [`${op} is not allowed on a control domain`]);
    pool.assertOperationAllowed(vm, op);
    return rec;
  };

  // datamodel_vm.ml: snapshot(vm, new_name[, ignore_vdis]) -> the new VM's ref.
  def('VM.snapshot', [2, 3], ([vm, newName, ignore]) => {
    const rec = assertVm(str(vm), 'snapshot');
    if (rec.is_a_snapshot) throw new XenApiError(XenApiCode.OPERATION_NOT_ALLOWED, ['Snapshotting a snapshot is not allowed']);
    host.assertPowerState(str(vm), 'Running', 'Halted', 'Paused');
    return snapshotVm(pool, str(vm), str(newName), Array.isArray(ignore) ? ignore.map(str) : []);
  });

  // xapi_vdi.ml snapshot(vdi, driver_params): what Nova's snapshot_attached_here calls on the VM's
  // root VDI (vm_utils._vdi_snapshot), live; the same SM operation as one disk of VM.snapshot.
  def('VDI.snapshot', [1, 2], ([vdi]) => {
    const ref = str(vdi);
    const rec = assertManaged(pool, ref);
    if (rec.sharable) throw new XenApiError(XenApiCode.VDI_IS_SHARABLE, [ref]);
    return snapshotVdi(pool, ref, new Date());
  });

  def('VDI.resize', 2, ([vdi, size]) => {
    const ref = str(vdi);
    const rec = assertManaged(pool, ref);
    const want = int64('size', size);
    if (attachedToRunningVm(pool, ref)) throw new XenApiError(XenApiCode.VDI_IN_USE, [ref, 'resize']);
    if (want < BigInt(str(rec.virtual_size))) {
      // SM (FileSR/VHD resize): raise xs_errors.XenError('VDISize', opterr='shrinking not allowed').
      throw new XenApiError(XenApiCode.SR_BACKEND_FAILURE_79, ['', 'VDI Invalid size [opterr=shrinking not allowed]', '']);
    }
    resizeDisk(pool.srDir(str(rec.SR)), str(rec.uuid), Number(want));
    s.update('VDI', ref, { virtual_size: want.toString() });
  });

  def('VDI.destroy', 1, ([vdi]) => {
    const ref = str(vdi);
    assertManaged(pool, ref);
    if (attachedToRunningVm(pool, ref)) throw new XenApiError(XenApiCode.VDI_IN_USE, [ref, 'destroy']);
    pool.destroyVdi(ref);
  });

  def('SR.scan', 1, ([sr]) => {
    s.raw('SR', str(sr));
    scanSr(pool, str(sr));
  });

  def('VM.set_memory_limits', 5, ([vm, staticMin, staticMax, dynamicMin, dynamicMax]) => {
    assertVm(str(vm), 'changing_memory_limits');
    host.assertPowerState(str(vm), 'Halted');
    const [smin, smax, dmin, dmax] = [int64('static_min', staticMin), int64('static_max', staticMax), int64('dynamic_min', dynamicMin), int64('dynamic_max', dynamicMax)];
    if (!(smin <= dmin && dmin <= dmax && dmax <= smax)) throw new XenApiError(XenApiCode.MEMORY_CONSTRAINT_VIOLATION_ORDER, []);
    s.update('VM', str(vm), {
      memory_static_min: smin.toString(),
      memory_static_max: smax.toString(),
      memory_dynamic_min: dmin.toString(),
      memory_dynamic_max: dmax.toString(),
      memory_target: dmin.toString(),
    });
  });

  def('VM.set_VCPUs_max', 2, ([vm, value]) => {
    assertVm(str(vm), 'changing_VCPUs');
    host.assertPowerState(str(vm), 'Halted');
    const v = int64('value', value);
    if (v < 1n || v < BigInt(str(host.vm(str(vm)).VCPUs_at_startup))) throw new XenApiError(XenApiCode.INVALID_VALUE, [VCPU_RULE, v.toString()]);
    s.update('VM', str(vm), { VCPUs_max: v.toString() });
  });

  // message_forwarding.ml calls it without with_vm_operation: no power-state rule, only the order.
  def('VM.set_VCPUs_at_startup', 2, ([vm, value]) => {
    const rec = host.vm(str(vm));
    if (rec.is_control_domain && rec.domid === '0') throw new XenApiError(XenApiCode.OPERATION_NOT_ALLOWED, ['set_VCPUs_at_startup is not allowed on dom0']);
    const v = int64('value', value);
    if (v < 1n || v > BigInt(str(rec.VCPUs_max))) throw new XenApiError(XenApiCode.INVALID_VALUE, [VCPU_RULE, v.toString()]);
    s.update('VM', str(vm), { VCPUs_at_startup: v.toString() });
  });
}
