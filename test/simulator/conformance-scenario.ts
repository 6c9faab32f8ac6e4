// The conformance scenario of conformance.test.ts through ferry's client; conformance.py runs the
// same steps through the real Python XenAPI client. Returns step name -> normalised outcome.
import { XenApiClient } from '../../xenapi/client';
import { XenApiError } from '../../xenapi/errors';
import { parseTaskResult } from '../../xenapi/task';

const MiB = 1024 * 1024;
/** Keys the simulator once wrote into task.other_config; xapi writes none of them. */
const OLD_KEYS = [
  'memory_total_bytes', 'memory_processed_bytes', 'memory_remaining_bytes',
  'disk_total_bytes', 'disk_processed_bytes', 'disk_remaining_bytes',
  'iteration', 'dirty_rate_bytes_per_s', 'phase', 'vm_uuid', 'vm_ref', 'downtime_ms', 'bytes_sent',
];

/** os-xenapi's swap_xapi_host: the member's address replaced by the master's, scheme and port kept. */
function swapHost(url: string, address: string): string {
  const u = new URL(url);
  u.hostname = address;
  return u.toString();
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function codeOf(fn: () => Promise<unknown>): Promise<string[] | null> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof XenApiError) return err.errorDescription;
    throw err;
  }
  return null;
}

function vmRecord(name: string, memMiB: number, otherConfig: Record<string, string> = {}) {
  const m = String(memMiB * MiB);
  return {
    name_label: name, name_description: '', user_version: '1', is_a_template: false,
    memory_static_max: m, memory_dynamic_max: m, memory_dynamic_min: m, memory_static_min: m,
    VCPUs_max: '1', VCPUs_at_startup: '1', VCPUs_params: {},
    actions_after_shutdown: 'destroy', actions_after_reboot: 'restart', actions_after_crash: 'restart',
    PV_bootloader: 'pygrub', PV_kernel: '', PV_ramdisk: '', PV_args: '', PV_bootloader_args: '',
    PV_legacy_args: '', HVM_boot_policy: '', HVM_boot_params: {}, platform: {},
    other_config: otherConfig, recommendations: '',
  };
}

async function makeVm(x: XenApiClient, name: string, sr: string, net: string, memMiB = 32, diskMiB = 8, otherConfig: Record<string, string> = {}) {
  const vm = await x.call<string>('VM.create', vmRecord(name, memMiB, otherConfig));
  const vdi = await x.call<string>('VDI.create', {
    name_label: `${name} disk`, name_description: '', SR: sr, virtual_size: String(diskMiB * MiB),
    type: 'user', sharable: false, read_only: false, other_config: {},
  });
  await x.call('VBD.create', {
    VM: vm, VDI: vdi, userdevice: '0', bootable: true, mode: 'RW', type: 'Disk', empty: false,
    other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {},
  });
  await x.call('VIF.create', { device: '0', network: net, VM: vm, MAC: '', MTU: '1500', other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} });
  await x.call('VM.start', vm, false, false);
  return vm;
}

async function waitTask(x: XenApiClient, task: string) {
  const progress: number[] = [];
  for (;;) {
    const rec = await x.getRecord('task', task);
    progress.push(rec.progress);
    if (rec.status !== 'pending' && rec.status !== 'cancelling') return { rec, progress };
    await sleep(50);
  }
}

export async function runScenario(urlA: string, urlB: string, urlC: string, password: string, prefix: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const bad = new XenApiClient({ url: urlA, user: 'root', password: 'wrong' });
  out.login_bad = (await codeOf(() => bad.login()))?.[0];

  // A pool member refuses logins with the master's address (xapi_session.ml); swap it into the URL.
  const member = new XenApiClient({ url: urlB, user: 'root', password, timeoutMs: 20_000 });
  const slave = (await codeOf(() => member.rawCall('session.login_with_password', ['root', password, '2.21', 'conformance']))) ?? [];
  out.slave_login = slave[0];
  const swapped = swapHost(urlB, slave[1] as string);
  out.swapped_url_is_master = swapped === urlA;
  const viaSwap = new XenApiClient({ url: swapped, user: 'root', password, timeoutMs: 20_000 });
  const swapSession = await viaSwap.rawCall<string>('session.login_with_password', ['root', password, '2.21', 'conformance']);
  out.login_after_swap = swapSession.startsWith('OpaqueRef:');
  await viaSwap.rawCall('session.logout', [swapSession]);

  const x = new XenApiClient({ url: urlA, user: 'root', password, timeoutMs: 20_000 });
  await x.login();
  const session = x.sessionRef as string;
  /** A call on xen-b's own endpoint with the master's session (sessions are pool-wide). */
  const onB = <T>(method: string, ...params: unknown[]) => member.rawCall<T>(method, [session, ...params]);
  const pool = (await x.call<string[]>('pool.get_all'))[0] as string;
  const master = await x.call<string>('pool.get_master', pool);
  out.api_version = `${await x.call<string>('host.get_API_version_major', master)}.${await x.call<string>('host.get_API_version_minor', master)}`;
  const hosts = await x.getAllRecords('host');
  const byName = Object.fromEntries(Object.entries(hosts).map(([ref, h]) => [h.name_label, ref]));
  out.hosts_in_pool = Object.keys(byName).sort();
  out.pool_master = await x.call<string>('host.get_name_label', master);
  const hostA = byName['xen-a'] as string;
  out.slave_login_names_master = slave[1] === (await x.call<string>('host.get_address', hostA));
  out.this_host_on_b = (await onB<string>('session.get_this_host', session)) === byName['xen-b'];
  out.product_version = (await x.call<Record<string, string>>('host.get_software_version', hostA)).product_version;
  const metrics = await x.getRecord('host_metrics', await x.call<string>('host.get_metrics', hostA));
  out.memory_is_int64_string = typeof metrics.memory_total === 'string' && BigInt(metrics.memory_free) <= BigInt(metrics.memory_total);

  out.unknown_method = await codeOf(() => x.call('VM.no_such_method'));
  out.arity = await codeOf(() => x.call('VM.get_record'));
  const nullUuid = '00000000-0000-0000-0000-000000000000';
  out.handle_invalid = await codeOf(() => x.call('VM.get_record', `OpaqueRef:${nullUuid}`));
  out.uuid_invalid = await codeOf(() => x.call('VM.get_by_uuid', nullUuid));
  out.session_invalid = await codeOf(() => x.rawCall('VM.get_all', ['OpaqueRef:bogus']));

  const srs = await x.getAllRecords('SR');
  const sharedSr = Object.entries(srs).find(([, v]) => v.shared)?.[0] as string;
  const localSr = Object.entries(srs).find(([, v]) => !v.shared)?.[0] as string;
  const net = (await x.call<string[]>('network.get_all'))[0] as string;

  const vm1 = await makeVm(x, `${prefix}-vm1`, sharedSr, net);
  out.vm1_power_state = await x.call('VM.get_power_state', vm1);
  const where = await x.getAllRecordsWhere('VM', 'field "power_state" = "Running" and not field "is_control_domain" = "true"');
  out.where_running_has_vm1 = vm1 in where && Object.values(where).every((v) => !v.is_control_domain);
  out.where_by_name = Object.keys(await x.getAllRecordsWhere('VM', `field "name_label" = "${prefix}-vm1"`)).length;
  out.get_by_name_label = JSON.stringify(await x.getByNameLabel('VM', `${prefix}-vm1`)) === JSON.stringify([vm1]);
  const err = (await codeOf(() => x.call('VM.unpause', vm1))) ?? [];
  out.bad_power_state = [err[0], err[1] === vm1, err[2], err[3]];
  const big = await x.call<string>('VM.create', vmRecord(`${prefix}-big`, 1024 * 1024));
  out.not_enough_memory = (await codeOf(() => x.call('VM.start', big, false, false)))?.[0];
  await x.call('VM.destroy', big);

  const vm2 = await makeVm(x, `${prefix}-vm2`, localSr, net, 16, 4);
  out.requires_sr = (await codeOf(() => x.call('VM.pool_migrate', vm2, byName['xen-b'], {})))?.[0];

  const xc = new XenApiClient({ url: urlC, user: 'root', password, timeoutMs: 20_000 });
  const hostC = (await xc.call<string[]>('host.get_all'))[0] as string;
  const netC = (await xc.call<string[]>('network.get_all'))[0] as string;
  const srC = Object.entries(await xc.getAllRecords('SR')).find(([, v]) => !v.shared)?.[0] as string;
  const token = await xc.call<Record<string, string>>('host.migrate_receive', hostC, netC, {});
  out.token_keys = Object.keys(token).sort();
  const vdi2 = await x.call<string>('VBD.get_VDI', (await x.call<string[]>('VM.get_VBDs', vm2))[0]);
  const vif2 = (await x.call<string[]>('VM.get_VIFs', vm2))[0] as string;
  out.vdi_not_in_map = (await codeOf(() => x.call('VM.assert_can_migrate', vm2, token, true, {}, { [vif2]: netC }, {})))?.[0];
  out.vif_not_in_map = (await codeOf(() => x.call('VM.assert_can_migrate', vm2, token, true, { [vdi2]: srC }, {}, {})))?.[0];
  out.assert_can_migrate = await codeOf(() => x.call('VM.assert_can_migrate', vm2, token, true, { [vdi2]: srC }, { [vif2]: netC }, {}));

  const vm1Uuid = await x.call<string>('VM.get_uuid', vm1);
  out.same_ref_from_both_members = (await onB<string>('VM.get_by_uuid', vm1Uuid)) === vm1;
  let task = await x.call<string>('Async.VM.pool_migrate', vm1, byName['xen-b'], {});
  const first = await waitTask(x, task);
  let rec = first.rec;
  const progress = first.progress;
  out.pool_migrate_status = rec.status;
  out.pool_migrate_progress_monotonic = progress.every((p, i) => i === 0 || (progress[i - 1] as number) <= p);
  out.pool_migrate_other_config = rec.other_config;
  out.vm1_ref_kept = (await x.call<string>('VM.get_by_uuid', vm1Uuid)) === vm1 && (await onB<string>('VM.get_by_uuid', vm1Uuid)) === vm1;
  out.vm1_resident_on_b = (await x.call<string>('VM.get_resident_on', vm1)) === byName['xen-b'];
  const all = await x.getAllRecords('VM');
  out.all_records_both_members = all[vm1]?.resident_on === byName['xen-b'] && all[vm2]?.resident_on === hostA;
  out.cancel_finished_task = (await codeOf(() => x.call('task.cancel', task)))?.[0];

  task = await x.call<string>('Async.VM.migrate_send', vm2, token, true, { [vdi2]: srC }, { [vif2]: netC }, {});
  ({ rec } = await waitTask(x, task));
  out.migrate_send_status = rec.status;
  const newVm2 = parseTaskResult(rec.result);
  out.vm2_on_c = await xc.call('VM.get_power_state', newVm2);
  const vdiOnC = await xc.call<string>('VBD.get_VDI', (await xc.call<string[]>('VM.get_VBDs', newVm2))[0]);
  out.vm2_disk_on_c_sr = (await xc.call<string>('VDI.get_SR', vdiOnC)) === srC;
  out.vm2_gone_from_pool1 = (await codeOf(() => x.call('VM.get_record', vm2)))?.[0];
  out.vm2_new_ref_in_pool2 = newVm2 !== vm2 && (await xc.call<string>('VM.get_by_uuid', await xc.call<string>('VM.get_uuid', newVm2))) === newVm2;

  const vm3 = await makeVm(x, `${prefix}-vm3`, sharedSr, net, 16, 1, { sim_dirty_rate_mibps: '2048', sim_working_set_mib: '16' });
  task = await x.call<string>('Async.VM.pool_migrate', vm3, byName['xen-b'], {});
  while ((await x.call<number>('task.get_progress', task)) <= 0) await sleep(50);
  // During the migration, only what xapi shows.
  rec = await x.getRecord('task', task);
  out.during_progress_in_range = rec.progress > 0 && rec.progress < 1 && rec.status === 'pending';
  out.during_cancellable = rec.allowed_operations.includes('cancel');
  out.during_other_config_clean = OLD_KEYS.every((k) => !(k in rec.other_config));
  const vm3Rec = await x.getRecord('VM', vm3);
  out.during_current_operations = JSON.stringify(vm3Rec.current_operations) === JSON.stringify({ [task]: 'pool_migrate' });
  out.during_pause_not_allowed = !vm3Rec.allowed_operations.includes('pause');
  const pauseErr = (await codeOf(() => x.call('VM.pause', vm3))) ?? [];
  out.during_pause = [pauseErr[0], pauseErr[1], pauseErr[2] === vm3, pauseErr[3], pauseErr[4] === task];
  out.second_migration = (await codeOf(() => x.call('VM.pool_migrate', vm3, byName['xen-b'], {})))?.[0];
  await x.call('task.cancel', task);
  ({ rec } = await waitTask(x, task));
  out.cancel_status = rec.status;
  out.cancel_error = rec.error_info[0];
  out.vm3_after_cancel = await x.call('VM.get_power_state', vm3);

  // The ferry dom0 plugin on the host vm3 runs on: below xapi, on the domain.
  const domid = await x.call<string>('VM.get_domid', vm3);
  const plugin = async (fn: string, args: Record<string, string>) => JSON.parse(await x.call<string>('host.call_plugin', hostA, 'ferry', fn, args)) as Record<string, unknown>;
  out.plugin_cap = (await plugin('set_vcpu_cap', { domid, cap: '30' })).cap;
  out.plugin_pause = (await plugin('pause', { domid })).paused;
  out.plugin_paused_domain = await plugin('get_domain', { domid });
  out.plugin_record_unchanged = await x.call('VM.get_power_state', vm3);
  out.plugin_unpause = (await plugin('unpause', { domid })).paused;
  out.plugin_missing = await codeOf(() => x.call('host.call_plugin', hostA, 'nope', 'pause', { domid }));
  out.vcpus_params_live = await codeOf(() => x.call('VM.add_to_VCPUs_params_live', vm3, 'cap', '10'));
  await x.call('VM.hard_shutdown', vm3);
  out.vm3_shutdown = await x.call('VM.get_power_state', vm3);

  const ev = await x.call<{ events: unknown[]; token: unknown }>('event.from', ['VM'], '', 1.0);
  out.event_from = ev.events.length > 0 && typeof ev.token === 'string';

  await x.logout();
  await xc.logout();
  return out;
}
