// What a cold migration and a resize need from the simulator (issue 14), through real XML-RPC:
// VM.snapshot makes a VHD-style chain and the VM keeps writing into its leaf; the dom0 plugin
// `migration` moves the base and the leaf to a host of another pool with real rsync over the
// cluster's real sshd; move_vhds_into_sr + SR.scan give VDIs whose content equals the source's;
// VDI.resize grows (content kept) and refuses a shrink; the memory and vCPU setters keep xapi's
// rules; an interrupted transfer resumes with rsync --partial (fewer literal bytes).
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pythonPath } from '../../lib/paths';
import type { SimCluster } from '../../simulator/cluster';
import type { XenApiClient } from '../../xenapi/client';
import { waitForTask } from '../../xenapi/task';
import { PASSWORD, clientFor, hostRefOf, startTestCluster, waitUntil } from './helpers';

const MiB = 1024 * 1024;
type Rec = Record<string, unknown>;

describe('cold migration support', () => {
  let cluster: SimCluster;
  let xa: XenApiClient;
  let xc: XenApiClient;
  beforeAll(async () => {
    cluster = await startTestCluster({ bandwidthMiBps: 1024, memoryMiB: 512 });
    xa = clientFor(cluster, 'xen-a');
    xc = clientFor(cluster, 'xen-c');
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const rec = (x: XenApiClient, cls: string, ref: string) => x.call<Rec>(`${cls}.get_record`, ref);
  const smParent = (r: Rec) => (r.sm_config as Record<string, string>)['vhd-parent'];
  /** /var/run/sr-mount/<uuid> of the host's local SR, found as Nova's get_sr_path does (its PBD). */
  const localSrPath = async (x: XenApiClient, host: string) => {
    const hostRef = await hostRefOf(x, host);
    const pbds = await x.call<Record<string, Rec>>('PBD.get_all_records_where', `field "host" = "${hostRef}"`);
    for (const pbd of Object.values(pbds)) {
      const sr = await rec(x, 'SR', String(pbd.SR));
      if (!sr.shared) return { path: `/var/run/sr-mount/${String(sr.uuid)}`, ref: String(pbd.SR) };
    }
    throw new Error(`no local SR on ${host}`);
  };
  const diskOf = async (x: XenApiClient, vm: string) => {
    const vbds = await x.call<string[]>('VM.get_VBDs', vm);
    const vdi = String((await rec(x, 'VBD', vbds[0] as string)).VDI);
    return { ref: vdi, uuid: String((await rec(x, 'VDI', vdi)).uuid) };
  };
  const plugin = async (x: XenApiClient, host: string, fn: string, args: Record<string, string>) =>
    JSON.parse(await x.call<string>('host.call_plugin', await hostRefOf(x, host), 'migration', fn, args)) as Record<string, unknown>;

  it('VM.snapshot makes a hidden base with two leaves, and the running VM keeps writing into its leaf', async () => {
    const a = cluster.host('xen-a').admin;
    const { uuid, ref } = await a.createVm({ nameLabel: 'snap-me', memoryMiB: 16, diskMiB: [4], diskWriteMiBps: 2 });
    const disk = await diskOf(xa, ref);
    const snap = await xa.call<string>('VM.snapshot', ref, 'snap-me-snapshot');
    const snapRec = await rec(xa, 'VM', snap);
    expect(snapRec).toMatchObject({ is_a_snapshot: true, is_a_template: true, snapshot_of: ref, power_state: 'Halted', name_label: 'snap-me-snapshot' });
    expect(await xa.call('VM.get_snapshots', ref)).toEqual([snap]);
    const snapDisk = await diskOf(xa, snap);
    const snapVdi = await rec(xa, 'VDI', snapDisk.ref);
    const vmVdi = await rec(xa, 'VDI', disk.ref);
    const baseUuid = smParent(vmVdi) as string;
    expect(baseUuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(smParent(snapVdi)).toBe(baseUuid);
    expect(snapVdi).toMatchObject({ is_a_snapshot: true, snapshot_of: disk.ref });
    const base = await rec(xa, 'VDI', await xa.call<string>('VDI.get_by_uuid', baseUuid));
    expect(base).toMatchObject({ managed: false, read_only: true, virtual_size: String(4 * MiB) });
    // The snapshot reads the frozen base; the VM's leaf diverges as the guest writes.
    const frozen = await a.vdiChecksum(snapDisk.uuid);
    expect(frozen?.sha256).toBe((await a.vdiChecksum(baseUuid))?.sha256);
    expect(frozen?.chain).toEqual([snapDisk.uuid, baseUuid]);
    await waitUntil(async () => (await a.vdiChecksum(disk.uuid))?.sha256 !== frozen?.sha256, 'the guest to write into its leaf');
    expect((await a.vdiChecksum(snapDisk.uuid))?.sha256).toBe(frozen?.sha256);
    expect((await a.state()).srFiles.local).toEqual(expect.arrayContaining([`${disk.uuid}.cow`, `${snapDisk.uuid}.cow`, `${baseUuid}.img`]));
    // The hidden base cannot be destroyed by hand; destroying the snapshot and its disk keeps the base (the VM's leaf uses it).
    await expect(xa.call('VDI.destroy', await xa.call<string>('VDI.get_by_uuid', baseUuid))).rejects.toMatchObject({ code: 'VDI_NOT_MANAGED' });
    await expect(xa.call('VDI.destroy', disk.ref)).rejects.toMatchObject({ code: 'VDI_IN_USE', params: [disk.ref, 'destroy'] });
    await xa.call('VM.destroy', snap);
    await xa.call('VDI.destroy', snapDisk.ref);
    expect(await a.vdiChecksum(baseUuid)).not.toBeNull();
    await xa.call('VM.hard_shutdown', ref);
    await xa.call('VM.destroy', ref);
    await xa.call('VDI.destroy', disk.ref);
    // The last leaf gone, SM's garbage collector removes the base.
    expect(await a.vdiChecksum(baseUuid)).toBeNull();
    expect((await a.state()).srFiles.local.filter((f) => f.includes(baseUuid) || f.includes(disk.uuid))).toEqual([]);
    void uuid;
  });

  it('moves base and leaf to another pool with rsync over sshd; the copied chain starts as a new VM, grows, and refuses a shrink', async () => {
    expect(cluster.ssh, cluster.sshReason).toBeDefined();
    const a = cluster.host('xen-a').admin;
    const c = cluster.host('xen-c').admin;
    // The guest rewrites its first MiB only: the leaf holds at most that, however long the transfers take.
    const { uuid, ref } = await a.createVm({ nameLabel: 'cold', memoryMiB: 16, diskMiB: [6], diskWriteMiBps: 2, diskWorkingSetMiB: 1 });
    const disk = await diskOf(xa, ref);
    const src = await localSrPath(xa, 'xen-a');
    const dst = await localSrPath(xc, 'xen-c');
    const destAddress = String((await rec(xc, 'host', await hostRefOf(xc, 'xen-c'))).address);

    // Nova's sequence: snapshot, the base while the VM runs, shut down, then the leaf.
    const snap = await xa.call<string>('VM.snapshot', ref, 'cold-snapshot');
    const baseUuid = smParent(await rec(xa, 'VDI', disk.ref)) as string;
    const base = await plugin(xa, 'xen-a', 'transfer_vhd', { instance_uuid: uuid, host: destAddress, vdi_uuid: baseUuid, sr_path: src.path, seq_num: '1' });
    expect(base).toMatchObject({ bytes: 6 * MiB, literal_bytes: 6 * MiB, matched_bytes: 0 });
    await waitUntil(async () => (await a.vdiChecksum(disk.uuid))?.sha256 !== (await a.vdiChecksum(baseUuid))?.sha256, 'the guest to write into its leaf');
    await xa.call('VM.clean_shutdown', ref);
    const source = await a.vdiChecksum(disk.uuid);
    const leaf = await plugin(xa, 'xen-a', 'transfer_vhd', { instance_uuid: uuid, host: destAddress, vdi_uuid: disk.uuid, sr_path: src.path, seq_num: '0' });
    expect(Number(leaf.literal_bytes)).toBeGreaterThan(0);
    expect(Number(leaf.literal_bytes)).toBeLessThan(6 * MiB); // only what the guest wrote since the snapshot (and the delta's header and bitmap)

    const [newBase, newLeaf] = [crypto.randomUUID(), crypto.randomUUID()];
    const moved = await plugin(xc, 'xen-c', 'move_vhds_into_sr', { instance_uuid: uuid, sr_path: dst.path, uuid_stack: JSON.stringify([newBase, newLeaf]) });
    expect(moved).toEqual({ root: { uuid: newLeaf } });
    // Again (a retry after a lost answer): the same answer, nothing moves twice.
    expect(await plugin(xc, 'xen-c', 'move_vhds_into_sr', { instance_uuid: uuid, sr_path: dst.path, uuid_stack: JSON.stringify([newBase, newLeaf]) })).toEqual({ root: { uuid: newLeaf } });
    await expect(xc.call('VDI.get_by_uuid', newLeaf)).rejects.toMatchObject({ code: 'UUID_INVALID' });
    await xc.call('SR.scan', dst.ref);
    const leafRef = await xc.call<string>('VDI.get_by_uuid', newLeaf);
    expect(await rec(xc, 'VDI', leafRef)).toMatchObject({ managed: true, SR: dst.ref, virtual_size: String(6 * MiB), sm_config: { 'vhd-parent': newBase } });
    expect(await rec(xc, 'VDI', await xc.call<string>('VDI.get_by_uuid', newBase))).toMatchObject({ managed: false, read_only: true });
    const copied = await c.vdiChecksum(newLeaf);
    expect(copied).toMatchObject({ sha256: source?.sha256, chain: [newLeaf, newBase] });

    // finishMigration: grow the disk to the new flavor, create the VM with its size, start it.
    await xc.call('VDI.resize', leafRef, String(10 * MiB));
    expect(await xc.call('VDI.get_virtual_size', leafRef)).toBe(String(10 * MiB));
    expect((await c.vdiChecksum(newLeaf, 6 * MiB))?.sha256).toBe(source?.sha256);
    await expect(xc.call('VDI.resize', leafRef, String(8 * MiB))).rejects.toMatchObject({ code: 'SR_BACKEND_FAILURE_79' });
    const vm = await xc.call<string>('VM.create', { name_label: 'cold (migrated)', other_config: {} });
    await xc.call('VM.set_memory_limits', vm, String(32 * MiB), String(32 * MiB), String(32 * MiB), String(32 * MiB));
    await xc.call('VM.set_VCPUs_max', vm, '2');
    await xc.call('VM.set_VCPUs_at_startup', vm, '2');
    await xc.call('VBD.create', { VM: vm, VDI: leafRef, userdevice: '0', bootable: true, mode: 'RW', type: 'Disk', empty: false, other_config: {} });
    await xc.call('VM.start_on', vm, await hostRefOf(xc, 'xen-c'), false, false);
    const started = await rec(xc, 'VM', vm);
    expect(started).toMatchObject({ power_state: 'Running', memory_static_max: String(32 * MiB), VCPUs_max: '2', VCPUs_at_startup: '2' });
    expect((await c.checksums(String(started.uuid)))?.disks['0']).toBe((await c.vdiChecksum(newLeaf))?.sha256);

    // Confirm on the source: the VM, its snapshot and their disks go; the hidden base with them.
    const snapDisk = await diskOf(xa, snap);
    await xa.call('VM.destroy', snap);
    await xa.call('VDI.destroy', snapDisk.ref);
    await xa.call('VM.destroy', ref);
    await xa.call('VDI.destroy', disk.ref);
    expect((await a.state()).srFiles.local.filter((f) => [baseUuid, disk.uuid, snapDisk.uuid].some((u) => f.startsWith(u)))).toEqual([]);
  });

  it('VDI.snapshot of a running VM\'s disk (what Nova calls) makes the same chain', async () => {
    const a = cluster.host('xen-a').admin;
    const { ref } = await a.createVm({ nameLabel: 'vdi-snap', memoryMiB: 16, diskMiB: [2], diskWriteMiBps: 1 });
    const disk = await diskOf(xa, ref);
    const snapVdi = await xa.call<string>('VDI.snapshot', disk.ref, {});
    const snap = await rec(xa, 'VDI', snapVdi);
    const baseUuid = smParent(await rec(xa, 'VDI', disk.ref));
    expect(snap).toMatchObject({ is_a_snapshot: true, snapshot_of: disk.ref, sm_config: { 'vhd-parent': baseUuid } });
    expect((await a.vdiChecksum(String(snap.uuid)))?.chain).toEqual([snap.uuid, baseUuid]);
    await xa.call('VDI.destroy', snapVdi);
    expect((await a.vdiChecksum(disk.uuid))?.chain).toEqual([disk.uuid, baseUuid]);
  });

  it("the real Python XenAPI client drives Nova's sequence (VDI.snapshot, transfer_vhd, move_vhds_into_sr, SR.scan, resize, start)", async () => {
    const { stdout } = await promisify(execFile)(pythonPath(), [resolve(__dirname, 'cold-migration.py'), cluster.host('xen-a').xenapiUrl, cluster.host('xen-c').xenapiUrl, PASSWORD], { timeout: 90_000 });
    const out = JSON.parse(stdout) as Record<string, unknown>;
    const { source_vdi_uuid: _s, root_uuid: root, ...rest } = out;
    expect(rest).toEqual({
      chain_length: 2,
      snapshot_time_type: 'DateTime',
      base_literal_bytes: 4 * MiB,
      shutdown: 'Halted',
      leaf_sent_less_than_disk: true,
      root_is_last_of_stack: true,
      root_parent_is_next: true,
      shrink: 'SR_BACKEND_FAILURE_79',
      grown: String(8 * MiB),
      memory_order: ['MEMORY_CONSTRAINT_VIOLATION_ORDER'],
      vcpus_at_startup_above_max: 'INVALID_VALUE',
      started: 'Running',
      source_chain_gone: true,
    });
    expect((await cluster.host('xen-c').admin.vdiChecksum(String(root)))?.virtualSize).toBe(8 * MiB);
  });

  it('VM.set_memory_limits and VM.set_VCPUs_* keep xapi rules', async () => {
    const a = cluster.host('xen-a').admin;
    const { ref } = await a.createVm({ nameLabel: 'sizes', memoryMiB: 16, vcpus: 2 });
    await expect(xa.call('VM.set_memory_limits', ref, String(MiB), String(64 * MiB), String(64 * MiB), String(64 * MiB))).rejects.toMatchObject({ code: 'VM_BAD_POWER_STATE', params: [ref, 'halted', 'running'] });
    await expect(xa.call('VM.set_VCPUs_max', ref, '4')).rejects.toMatchObject({ code: 'VM_BAD_POWER_STATE' });
    // xapi checks only the order for VCPUs_at_startup (no power-state rule).
    await expect(xa.call('VM.set_VCPUs_at_startup', ref, '3')).rejects.toMatchObject({ code: 'INVALID_VALUE', params: ['VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max', '3'] });
    await xa.call('VM.hard_shutdown', ref);
    await expect(xa.call('VM.set_memory_limits', ref, String(64 * MiB), String(32 * MiB), String(32 * MiB), String(32 * MiB))).rejects.toMatchObject({ code: 'MEMORY_CONSTRAINT_VIOLATION_ORDER', params: [] });
    await xa.call('VM.set_memory_limits', ref, String(16 * MiB), String(64 * MiB), String(32 * MiB), String(64 * MiB));
    expect(await rec(xa, 'VM', ref)).toMatchObject({ memory_static_min: String(16 * MiB), memory_dynamic_min: String(32 * MiB), memory_target: String(32 * MiB), memory_dynamic_max: String(64 * MiB), memory_static_max: String(64 * MiB) });
    await expect(xa.call('VM.set_VCPUs_max', ref, '1')).rejects.toMatchObject({ code: 'INVALID_VALUE' }); // below VCPUs_at_startup (2)
    await xa.call('VM.set_VCPUs_max', ref, '4');
    await xa.call('VM.set_VCPUs_at_startup', ref, '4');
    await expect(xa.call('VM.set_VCPUs_at_startup', ref, '0')).rejects.toMatchObject({ code: 'INVALID_VALUE' });
    await xa.call('VM.start', ref, false, false);
    expect(await rec(xa, 'VM', ref)).toMatchObject({ power_state: 'Running', VCPUs_max: '4', VCPUs_at_startup: '4', memory_static_max: String(64 * MiB) });
  });

  it('a guest that ignores VM.clean_shutdown keeps it waiting until a hard shutdown halts it', async () => {
    const a = cluster.host('xen-a').admin;
    const { uuid, ref } = await a.createVm({ nameLabel: 'stubborn', memoryMiB: 16 });
    await a.setGuest(uuid, { ignoreCleanShutdown: true, shutdownTimeoutS: 0.2 });
    await expect(xa.call('VM.clean_shutdown', ref)).rejects.toMatchObject({ code: 'VM_SHUTDOWN_TIMEOUT', params: [ref, '0.2'] });
    expect(await xa.call('VM.get_power_state', ref)).toBe('Running');
    await a.setGuest(uuid, { shutdownTimeoutS: 600 });
    const task = await xa.call<string>('Async.VM.clean_shutdown', ref);
    await waitUntil(async () => Object.values(await xa.call<Record<string, string>>('VM.get_current_operations', ref)).includes('clean_shutdown'), 'the clean shutdown to start');
    await xa.call('VM.hard_shutdown', ref);
    await waitForTask(xa, task);
    expect(await xa.call('VM.get_power_state', ref)).toBe('Halted');
    // An Async clean shutdown that waits can be cancelled: TASK_CANCELLED, the VM still runs.
    await xa.call('VM.start', ref, false, false);
    const waiting = await xa.call<string>('Async.VM.clean_shutdown', ref);
    await waitUntil(async () => Object.values(await xa.call<Record<string, string>>('VM.get_current_operations', ref)).includes('clean_shutdown'), 'the clean shutdown to start');
    await xa.call('task.cancel', waiting);
    await expect(waitForTask(xa, waiting)).rejects.toMatchObject({ code: 'TASK_CANCELLED' });
    expect(await xa.call('VM.get_power_state', ref)).toBe('Running');
    expect(await xa.call('VM.get_current_operations', ref)).toEqual({});
  });

  it('an interrupted transfer resumes: the second rsync sends fewer literal bytes than the disk', async () => {
    const a = cluster.host('xen-a').admin;
    const { uuid, ref } = await a.createVm({ nameLabel: 'interrupted', memoryMiB: 16, diskMiB: [24] });
    const disk = await diskOf(xa, ref);
    await xa.call('VM.hard_shutdown', ref);
    const src = await localSrPath(xa, 'xen-a');
    const destAddress = String((await rec(xc, 'host', await hostRefOf(xc, 'xen-c'))).address);
    const args = { instance_uuid: uuid, host: destAddress, vdi_uuid: disk.uuid, sr_path: src.path, seq_num: '0' };
    await a.setBandwidth(8); // rsync --bwlimit follows the host's link: about 3 s for 24 MiB
    const hostA = await hostRefOf(xa, 'xen-a');
    const task = await xa.call<string>('Async.host.call_plugin', hostA, 'migration', 'transfer_vhd', args);
    // A second identical call joins the running transfer (an agent that restarted) instead of starting another rsync.
    const again = await xa.call<string>('Async.host.call_plugin', hostA, 'migration', 'transfer_vhd', args);
    expect(await a.transfers()).toHaveLength(1);
    const staging = join(cluster.stateDir, 'xen-c', 'images', `instance${uuid}`);
    await waitUntil(async () => {
      if (!existsSync(staging)) return false;
      return readdirSync(staging).some((f) => statSync(join(staging, f)).size > 4 * MiB);
    }, 'part of the disk to arrive');
    await waitUntil(async () => Number(await xa.call('task.get_progress', task)) > 0, 'the task to show rsync progress');
    expect(await a.killTransfers()).toBe(1);
    await expect(waitForTask(xa, task)).rejects.toMatchObject({ code: 'XENAPI_PLUGIN_FAILURE', params: ['transfer_vhd', 'SubprocessException', expect.any(String)] });
    await expect(waitForTask(xa, again)).rejects.toMatchObject({ code: 'XENAPI_PLUGIN_FAILURE' });
    const kept = statSync(join(staging, '0.img')).size; // rsync --partial kept what arrived
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(24 * MiB);
    await a.setBandwidth(1024);
    const resumed = JSON.parse(await waitForTask(xa, await xa.call<string>('Async.host.call_plugin', hostA, 'migration', 'transfer_vhd', args))) as { literal_bytes: number; matched_bytes: number };
    expect(resumed.matched_bytes).toBeGreaterThan(0);
    expect(resumed.literal_bytes).toBeLessThan(24 * MiB);
    expect(resumed.literal_bytes + resumed.matched_bytes).toBe(24 * MiB);
    const [newUuid] = [crypto.randomUUID()];
    const dst = await localSrPath(xc, 'xen-c');
    await plugin(xc, 'xen-c', 'move_vhds_into_sr', { instance_uuid: uuid, sr_path: dst.path, uuid_stack: JSON.stringify([newUuid]) });
    await xc.call('SR.scan', dst.ref);
    expect((await cluster.host('xen-c').admin.vdiChecksum(newUuid))?.sha256).toBe((await a.vdiChecksum(disk.uuid))?.sha256);

    // task.cancel of a running transfer stops its rsync: the task ends cancelled.
    await a.setBandwidth(4);
    const cancelled = await xa.call<string>('Async.host.call_plugin', hostA, 'migration', 'transfer_vhd', { ...args, instance_uuid: crypto.randomUUID() });
    await waitUntil(async () => (await a.transfers()).length === 1, 'the transfer to start');
    await xa.call('task.cancel', cancelled);
    await expect(waitForTask(xa, cancelled)).rejects.toMatchObject({ code: 'TASK_CANCELLED', params: [cancelled] });
    expect(await xa.call('task.get_status', cancelled)).toBe('cancelled');
    expect(await a.transfers()).toEqual([]);
    await a.setBandwidth(1024);
  });

  it('a destination that crashes cuts the transfer, refuses SSH while down, and the transfer resumes once it is back', async () => {
    const a = cluster.host('xen-a').admin;
    const { uuid, ref } = await a.createVm({ nameLabel: 'dest-crash', memoryMiB: 16, diskMiB: [16] });
    const disk = await diskOf(xa, ref);
    await xa.call('VM.hard_shutdown', ref);
    const src = await localSrPath(xa, 'xen-a');
    const destAddress = String((await rec(xc, 'host', await hostRefOf(xc, 'xen-c'))).address);
    const args = { instance_uuid: uuid, host: destAddress, vdi_uuid: disk.uuid, sr_path: src.path, seq_num: '0' };
    const hostA = await hostRefOf(xa, 'xen-a');
    await a.setBandwidth(4);
    const task = await xa.call<string>('Async.host.call_plugin', hostA, 'migration', 'transfer_vhd', args);
    await waitUntil(async () => Number(await xa.call('task.get_progress', task)) > 0.1, 'part of the disk to arrive');
    await cluster.crash('xen-c');
    await expect(waitForTask(xa, task)).rejects.toMatchObject({ code: 'XENAPI_PLUGIN_FAILURE', params: ['transfer_vhd', 'SubprocessException', expect.any(String)] });
    await a.setBandwidth(1024);
    await expect(plugin(xa, 'xen-a', 'transfer_vhd', args)).rejects.toMatchObject({ code: 'XENAPI_PLUGIN_FAILURE', params: ['transfer_vhd', 'SubprocessException', expect.stringContaining('host is down')] });
    await cluster.restart('xen-c');
    const resumed = await plugin(xa, 'xen-a', 'transfer_vhd', args);
    expect(Number(resumed.matched_bytes)).toBeGreaterThan(0);
    expect(Number(resumed.literal_bytes)).toBeLessThan(16 * MiB);
    // A rollback before move_vhds_into_sr: what was staged goes (again: nothing to do).
    expect((await cluster.host('xen-c').admin.state()).staged).toMatchObject({ [`instance${uuid}`]: ['0.img'] });
    expect(await plugin(xc, 'xen-c', 'remove_staged_vhds', { instance_uuid: uuid })).toEqual({ removed: true });
    expect(await plugin(xc, 'xen-c', 'remove_staged_vhds', { instance_uuid: uuid })).toEqual({ removed: false });
    expect((await cluster.host('xen-c').admin.state()).staged[`instance${uuid}`]).toBeUndefined();
  });
});
