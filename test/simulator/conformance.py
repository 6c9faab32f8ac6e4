"""The conformance scenario of test/simulator/conformance.test.ts, through the real Python
XenAPI client (PyPI XenAPI). Prints one JSON object: step name -> normalised outcome.
Usage: python conformance.py <xen-a url> <xen-b url> <xen-c url> <password> <name prefix>"""
import json
import sys
import time
import urllib.parse
import xmlrpc.client

import XenAPI

url_a, url_b, url_c, password, prefix = sys.argv[1:6]
MiB = 1024 * 1024
out = {}

# Keys the simulator once wrote into task.other_config; xapi writes none of them.
OLD_KEYS = [
    "memory_total_bytes", "memory_processed_bytes", "memory_remaining_bytes",
    "disk_total_bytes", "disk_processed_bytes", "disk_remaining_bytes",
    "iteration", "dirty_rate_bytes_per_s", "phase", "vm_uuid", "vm_ref", "downtime_ms", "bytes_sent",
]


def swap_xapi_host(url, host_addr):
    """os-xenapi's swap_xapi_host: the member's address replaced by the master's, scheme and port kept."""
    parts = urllib.parse.urlsplit(url)
    netloc = host_addr + (":%d" % parts.port if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def code_of(fn):
    try:
        fn()
    except XenAPI.Failure as e:
        return e.details
    return None


def vm_record(name, mem_mib, other_config=None):
    m = str(mem_mib * MiB)
    return {
        "name_label": name, "name_description": "", "user_version": "1", "is_a_template": False,
        "memory_static_max": m, "memory_dynamic_max": m, "memory_dynamic_min": m, "memory_static_min": m,
        "VCPUs_max": "1", "VCPUs_at_startup": "1", "VCPUs_params": {},
        "actions_after_shutdown": "destroy", "actions_after_reboot": "restart", "actions_after_crash": "restart",
        "PV_bootloader": "pygrub", "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "",
        "PV_legacy_args": "", "HVM_boot_policy": "", "HVM_boot_params": {}, "platform": {},
        "other_config": other_config or {}, "recommendations": "",
    }


def make_vm(x, name, sr, net, mem_mib=32, disk_mib=8, other_config=None):
    vm = x.VM.create(vm_record(name, mem_mib, other_config))
    vdi = x.VDI.create({"name_label": name + " disk", "name_description": "", "SR": sr, "virtual_size": str(disk_mib * MiB),
                        "type": "user", "sharable": False, "read_only": False, "other_config": {}})
    x.VBD.create({"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW", "type": "Disk", "empty": False,
                  "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
    x.VIF.create({"device": "0", "network": net, "VM": vm, "MAC": "", "MTU": "1500", "other_config": {},
                  "qos_algorithm_type": "", "qos_algorithm_params": {}})
    x.VM.start(vm, False, False)
    return vm


def wait_task(x, task):
    progress = []
    while True:
        rec = x.task.get_record(task)
        progress.append(rec["progress"])
        if rec["status"] not in ("pending", "cancelling"):
            return rec, progress
        time.sleep(0.05)


bad = XenAPI.Session(url_a)
out["login_bad"] = code_of(lambda: bad.login_with_password("root", "wrong", "2.21", "conformance"))[0]

# A pool member refuses logins with the master's address (xapi_session.ml); swap it into the URL.
slave = code_of(lambda: XenAPI.Session(url_b).login_with_password("root", password, "2.21", "conformance")) or []
out["slave_login"] = slave[0]
swapped = swap_xapi_host(url_b, slave[1])
out["swapped_url_is_master"] = swapped == url_a
via_swap = XenAPI.Session(swapped)
via_swap.login_with_password("root", password, "2.21", "conformance")
out["login_after_swap"] = via_swap._session.startswith("OpaqueRef:")
via_swap.xenapi.session.logout()

s = XenAPI.Session(url_a)
s.login_with_password("root", password, "2.21", "conformance")
x = s.xenapi
raw_b = xmlrpc.client.ServerProxy(url_b)


def on_b(method, *params):
    """A call on xen-b's own endpoint with the master's session (sessions are pool-wide)."""
    fn = raw_b
    for part in method.split("."):
        fn = getattr(fn, part)
    reply = fn(s._session, *params)
    if reply["Status"] != "Success":
        raise XenAPI.Failure(reply["ErrorDescription"])
    return reply["Value"]

out["api_version"] = s.API_version
hosts = x.host.get_all_records()
by_name = {h["name_label"]: ref for ref, h in hosts.items()}
out["hosts_in_pool"] = sorted(by_name)
out["pool_master"] = x.host.get_name_label(x.pool.get_master(x.pool.get_all()[0]))
host_a = by_name["xen-a"]
out["slave_login_names_master"] = slave[1] == x.host.get_address(host_a)
out["this_host_on_b"] = raw_b.session.get_this_host(s._session, s._session)["Value"] == by_name["xen-b"]
out["product_version"] = x.host.get_software_version(host_a)["product_version"]
metrics = x.host_metrics.get_record(x.host.get_metrics(host_a))
out["memory_is_int64_string"] = isinstance(metrics["memory_total"], str) and int(metrics["memory_free"]) <= int(metrics["memory_total"])

out["unknown_method"] = code_of(lambda: x.VM.no_such_method())
out["arity"] = code_of(lambda: x.VM.get_record())
null_uuid = "00000000-0000-0000-0000-000000000000"
out["handle_invalid"] = code_of(lambda: x.VM.get_record("OpaqueRef:" + null_uuid))
out["uuid_invalid"] = code_of(lambda: x.VM.get_by_uuid(null_uuid))
raw = xmlrpc.client.ServerProxy(url_a)
out["session_invalid"] = raw.VM.get_all("OpaqueRef:bogus")["ErrorDescription"]

srs = x.SR.get_all_records()
shared_sr = [r for r, v in srs.items() if v["shared"]][0]
local_sr = [r for r, v in srs.items() if not v["shared"]][0]
net = x.network.get_all()[0]

vm1 = make_vm(x, prefix + "-vm1", shared_sr, net)
out["vm1_power_state"] = x.VM.get_power_state(vm1)
where = x.VM.get_all_records_where('field "power_state" = "Running" and not field "is_control_domain" = "true"')
out["where_running_has_vm1"] = vm1 in where and all(not v["is_control_domain"] for v in where.values())
out["where_by_name"] = len(x.VM.get_all_records_where('field "name_label" = "%s-vm1"' % prefix))
out["get_by_name_label"] = x.VM.get_by_name_label(prefix + "-vm1") == [vm1]
err = code_of(lambda: x.VM.unpause(vm1))
out["bad_power_state"] = [err[0], err[1] == vm1, err[2], err[3]]
big = x.VM.create(vm_record(prefix + "-big", 1024 * 1024))
out["not_enough_memory"] = code_of(lambda: x.VM.start(big, False, False))[0]
x.VM.destroy(big)

vm2 = make_vm(x, prefix + "-vm2", local_sr, net, mem_mib=16, disk_mib=4)
out["requires_sr"] = code_of(lambda: x.VM.pool_migrate(vm2, by_name["xen-b"], {}))[0]

sc = XenAPI.Session(url_c)
sc.login_with_password("root", password, "2.21", "conformance")
xc = sc.xenapi
host_c = xc.host.get_all()[0]
net_c = xc.network.get_all()[0]
sr_c = [r for r, v in xc.SR.get_all_records().items() if not v["shared"]][0]
token = xc.host.migrate_receive(host_c, net_c, {})
out["token_keys"] = sorted(token)
vdi2 = x.VBD.get_VDI(x.VM.get_VBDs(vm2)[0])
vif2 = x.VM.get_VIFs(vm2)[0]
out["vdi_not_in_map"] = code_of(lambda: x.VM.assert_can_migrate(vm2, token, True, {}, {vif2: net_c}, {}))[0]
out["vif_not_in_map"] = code_of(lambda: x.VM.assert_can_migrate(vm2, token, True, {vdi2: sr_c}, {}, {}))[0]
out["assert_can_migrate"] = code_of(lambda: x.VM.assert_can_migrate(vm2, token, True, {vdi2: sr_c}, {vif2: net_c}, {}))

# Live migration inside the pool (shared SR, memory only).
vm1_uuid = x.VM.get_uuid(vm1)
out["same_ref_from_both_members"] = on_b("VM.get_by_uuid", vm1_uuid) == vm1
task = x.Async.VM.pool_migrate(vm1, by_name["xen-b"], {})
rec, progress = wait_task(x, task)
out["pool_migrate_status"] = rec["status"]
out["pool_migrate_progress_monotonic"] = all(a <= b for a, b in zip(progress, progress[1:]))
out["pool_migrate_other_config"] = rec["other_config"]
out["vm1_ref_kept"] = x.VM.get_by_uuid(vm1_uuid) == vm1 and on_b("VM.get_by_uuid", vm1_uuid) == vm1
out["vm1_resident_on_b"] = x.VM.get_resident_on(vm1) == by_name["xen-b"]
all_vms = x.VM.get_all_records()
out["all_records_both_members"] = all_vms[vm1]["resident_on"] == by_name["xen-b"] and all_vms[vm2]["resident_on"] == host_a
out["cancel_finished_task"] = code_of(lambda: x.task.cancel(task))[0]

# Cross-pool live migration with storage.
task = x.Async.VM.migrate_send(vm2, token, True, {vdi2: sr_c}, {vif2: net_c}, {})
rec, _ = wait_task(x, task)
out["migrate_send_status"] = rec["status"]
new_vm2 = rec["result"].replace("<value>", "").replace("</value>", "")
out["vm2_on_c"] = xc.VM.get_power_state(new_vm2)
out["vm2_disk_on_c_sr"] = xc.VDI.get_SR(xc.VBD.get_VDI(xc.VM.get_VBDs(new_vm2)[0])) == sr_c
out["vm2_gone_from_pool1"] = code_of(lambda: x.VM.get_record(vm2))[0]
out["vm2_new_ref_in_pool2"] = new_vm2 != vm2 and xc.VM.get_by_uuid(xc.VM.get_uuid(new_vm2)) == new_vm2

# A guest dirtying twice as fast as the link never converges (max iterations unlimited): cancel it.
vm3 = make_vm(x, prefix + "-vm3", shared_sr, net, mem_mib=16, disk_mib=1,
              other_config={"sim_dirty_rate_mibps": "2048", "sim_working_set_mib": "16"})
task = x.Async.VM.pool_migrate(vm3, by_name["xen-b"], {})
while x.task.get_progress(task) <= 0:
    time.sleep(0.05)
# During the migration, only what xapi shows.
rec = x.task.get_record(task)
out["during_progress_in_range"] = 0 < rec["progress"] < 1 and rec["status"] == "pending"
out["during_cancellable"] = "cancel" in rec["allowed_operations"]
out["during_other_config_clean"] = all(k not in rec["other_config"] for k in OLD_KEYS)
vm3_rec = x.VM.get_record(vm3)
out["during_current_operations"] = vm3_rec["current_operations"] == {task: "pool_migrate"}
out["during_pause_not_allowed"] = "pause" not in vm3_rec["allowed_operations"]
pause_err = code_of(lambda: x.VM.pause(vm3)) or []
out["during_pause"] = [pause_err[0], pause_err[1], pause_err[2] == vm3, pause_err[3], pause_err[4] == task]
out["second_migration"] = code_of(lambda: x.VM.pool_migrate(vm3, by_name["xen-b"], {}))[0]
x.task.cancel(task)
rec, _ = wait_task(x, task)
out["cancel_status"] = rec["status"]
out["cancel_error"] = rec["error_info"][0]
out["vm3_after_cancel"] = x.VM.get_power_state(vm3)

# The ferry dom0 plugin on the host vm3 runs on: below xapi, on the domain.
domid = x.VM.get_domid(vm3)


def plugin(fn, args):
    return json.loads(x.host.call_plugin(host_a, "ferry", fn, args))


out["plugin_cap"] = plugin("set_vcpu_cap", {"domid": domid, "cap": "30"})["cap"]
out["plugin_pause"] = plugin("pause", {"domid": domid})["paused"]
out["plugin_paused_domain"] = plugin("get_domain", {"domid": domid})
out["plugin_record_unchanged"] = x.VM.get_power_state(vm3)
out["plugin_unpause"] = plugin("unpause", {"domid": domid})["paused"]
out["plugin_missing"] = code_of(lambda: x.host.call_plugin(host_a, "nope", "pause", {"domid": domid}))
out["vcpus_params_live"] = code_of(lambda: x.VM.add_to_VCPUs_params_live(vm3, "cap", "10"))
x.VM.hard_shutdown(vm3)
out["vm3_shutdown"] = x.VM.get_power_state(vm3)

ev = getattr(x.event, "from")(["VM"], "", 1.0)
out["event_from"] = len(ev["events"]) > 0 and isinstance(ev["token"], str)

s.xenapi.session.logout()
sc.xenapi.session.logout()
print(json.dumps(out))
