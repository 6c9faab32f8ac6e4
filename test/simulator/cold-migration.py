"""The cold-migration calls through the real Python XenAPI client (PyPI XenAPI), as Nova's XenAPI
driver makes them: VDI.snapshot of the root disk, get_sr_path from the PBD, the dom0 plugin
`migration` (transfer_vhd of the base while the VM runs, then of the leaf after a clean shutdown;
move_vhds_into_sr on the destination), SR.scan, VDI.resize, the memory and vCPU setters, VM.start.
Prints one JSON object: step name -> outcome.
Usage: python cold-migration.py <source url> <destination url> <password>"""
import json
import sys
import time
import uuid

import XenAPI

url_src, url_dst, password = sys.argv[1:4]
MiB = 1024 * 1024
out = {}


def code_of(fn):
    try:
        fn()
    except XenAPI.Failure as e:
        return e.details
    return None


def session(url):
    s = XenAPI.Session(url)
    s.login_with_password("root", password, "2.21", "cold-migration")
    return s


src = session(url_src)
dst = session(url_dst)
xs, xd = src.xenapi, dst.xenapi
src_host = xs.session.get_this_host(src._session)
dst_host = xd.session.get_this_host(dst._session)


def sr_path(x, host):
    """Nova's vm_utils.get_sr_path: the host's PBD of its local SR, then /var/run/sr-mount/<uuid>."""
    for ref, pbd in x.PBD.get_all_records_where('field "host"="%s"' % host).items():
        sr = x.SR.get_record(pbd["SR"])
        if not sr["shared"] and sr["type"] in ("ext", "nfs"):
            return pbd["SR"], pbd["device_config"].get("path") or "/var/run/sr-mount/%s" % sr["uuid"]
    raise Exception("no local SR")


src_sr, src_path = sr_path(xs, src_host)
dst_sr, dst_path = sr_path(xd, dst_host)
net = xs.network.get_all()[0]
m = str(32 * MiB)
vm = xs.VM.create({
    "name_label": "py-cold", "name_description": "", "user_version": "1", "is_a_template": False,
    "memory_static_max": m, "memory_dynamic_max": m, "memory_dynamic_min": m, "memory_static_min": m,
    "VCPUs_max": "1", "VCPUs_at_startup": "1", "VCPUs_params": {}, "actions_after_shutdown": "destroy",
    "actions_after_reboot": "restart", "actions_after_crash": "restart", "PV_bootloader": "pygrub", "PV_kernel": "",
    "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "", "HVM_boot_policy": "",
    "HVM_boot_params": {}, "platform": {}, "other_config": {"sim_disk_write_mibps": "2", "sim_disk_working_set_mib": "1"}, "recommendations": "",
    "affinity": src_host,
})
vdi = xs.VDI.create({"name_label": "py-cold disk", "name_description": "", "SR": src_sr, "virtual_size": str(4 * MiB),
                     "type": "user", "sharable": False, "read_only": False, "other_config": {}})
xs.VBD.create({"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW", "type": "Disk", "empty": False,
               "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
xs.VM.start_on(vm, src_host, False, False)
instance = xs.VM.get_uuid(vm)
vdi_uuid = xs.VDI.get_uuid(vdi)

# vm_utils._snapshot_attached_here_impl: VDI.snapshot of the root disk, then _walk_vdi_chain of the snapshot.
snap = xs.VDI.snapshot(vdi, {})
chain = [xs.VDI.get_uuid(snap)]
while True:
    parent = xs.VDI.get_sm_config(xs.VDI.get_by_uuid(chain[-1])).get("vhd-parent")
    if not parent:
        break
    chain.append(parent)
out["chain_length"] = len(chain)
out["snapshot_time_type"] = type(xs.VDI.get_snapshot_time(snap)).__name__
dest_address = xd.host.get_address(dst_host)


def transfer(vdi_uuid, seq):
    return json.loads(xs.host.call_plugin(src_host, "migration", "transfer_vhd", {
        "instance_uuid": instance, "host": dest_address, "vdi_uuid": vdi_uuid, "sr_path": src_path, "seq_num": str(seq)}))


for seq, base in enumerate(chain[1:], start=1):
    out["base_literal_bytes"] = transfer(base, seq)["literal_bytes"]
time.sleep(0.3)  # the guest writes into its leaf meanwhile
task = xs.Async.VM.clean_shutdown(vm)
while xs.task.get_status(task) == "pending":
    time.sleep(0.05)
out["shutdown"] = xs.VM.get_power_state(vm)
leaf = transfer(vdi_uuid, 0)
out["leaf_sent_less_than_disk"] = 0 < leaf["literal_bytes"] < 4 * MiB
stack = [str(uuid.uuid4()) for _ in chain]
root = json.loads(xd.host.call_plugin(dst_host, "migration", "move_vhds_into_sr", {
    "instance_uuid": instance, "sr_path": dst_path, "uuid_stack": json.dumps(stack)}))["root"]["uuid"]
out["root_is_last_of_stack"] = root == stack[-1]
xd.SR.scan(dst_sr)
new_vdi = xd.VDI.get_by_uuid(root)
out["root_parent_is_next"] = xd.VDI.get_sm_config(new_vdi).get("vhd-parent") == stack[-2]
out["shrink"] = code_of(lambda: xd.VDI.resize(new_vdi, str(2 * MiB)))[0]
xd.VDI.resize(new_vdi, str(8 * MiB))
out["grown"] = xd.VDI.get_virtual_size(new_vdi)
new_vm = xd.VM.create({"name_label": "py-cold", "name_description": "", "user_version": "1", "is_a_template": False,
                       "memory_static_max": m, "memory_dynamic_max": m, "memory_dynamic_min": m, "memory_static_min": m,
                       "VCPUs_max": "1", "VCPUs_at_startup": "1", "VCPUs_params": {}, "actions_after_shutdown": "destroy",
                       "actions_after_reboot": "restart", "actions_after_crash": "restart", "PV_bootloader": "pygrub",
                       "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "",
                       "HVM_boot_policy": "", "HVM_boot_params": {}, "platform": {}, "other_config": {}, "recommendations": ""})
out["memory_order"] = code_of(lambda: xd.VM.set_memory_limits(new_vm, str(64 * MiB), str(32 * MiB), str(32 * MiB), str(32 * MiB)))
xd.VM.set_memory_limits(new_vm, str(64 * MiB), str(64 * MiB), str(64 * MiB), str(64 * MiB))
out["vcpus_at_startup_above_max"] = code_of(lambda: xd.VM.set_VCPUs_at_startup(new_vm, "2"))[0]
xd.VM.set_VCPUs_max(new_vm, "2")
xd.VM.set_VCPUs_at_startup(new_vm, "2")
xd.VBD.create({"VM": new_vm, "VDI": new_vdi, "userdevice": "0", "bootable": True, "mode": "RW", "type": "Disk",
               "empty": False, "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
xd.VM.start_on(new_vm, dst_host, False, False)
out["started"] = xd.VM.get_power_state(new_vm)
out["source_vdi_uuid"] = vdi_uuid
out["root_uuid"] = root
# Confirm: the snapshot, the source VM and its disk go (the hidden base with them).
xs.VDI.destroy(snap)
xs.VM.destroy(vm)
xs.VDI.destroy(vdi)
out["source_chain_gone"] = all(code_of(lambda u=u: xs.VDI.get_by_uuid(u)) is not None for u in chain)
src.xenapi.session.logout()
dst.xenapi.session.logout()
print(json.dumps(out))
