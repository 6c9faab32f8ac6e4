// One conformance scenario, run through the real Python XenAPI client and through ferry's client
// against the same simulated hosts: both must see exactly the same outcomes, and those outcomes
// must be xapi's (DESIGN section 3), including the pool rules: login only on the master, refs
// pool-wide, nothing in task.other_config, concurrent operations refused as xapi refuses them.
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pythonPath } from '../../lib/paths';
import type { SimCluster } from '../../simulator/cluster';
import { runScenario } from './conformance-scenario';
import { PASSWORD, startTestCluster } from './helpers';

const NULL = 'OpaqueRef:00000000-0000-0000-0000-000000000000';
const expected = {
  login_bad: 'SESSION_AUTHENTICATION_FAILED',
  slave_login: 'HOST_IS_SLAVE',
  swapped_url_is_master: true,
  login_after_swap: true,
  api_version: '2.21',
  hosts_in_pool: ['xen-a', 'xen-b'],
  pool_master: 'xen-a',
  slave_login_names_master: true,
  this_host_on_b: true,
  product_version: '8.2.1',
  memory_is_int64_string: true,
  unknown_method: ['MESSAGE_METHOD_UNKNOWN', 'VM.no_such_method'],
  arity: ['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VM.get_record', '2', '1'],
  handle_invalid: ['HANDLE_INVALID', 'VM', NULL],
  uuid_invalid: ['UUID_INVALID', 'VM', '00000000-0000-0000-0000-000000000000'],
  session_invalid: ['SESSION_INVALID', 'OpaqueRef:bogus'],
  vm1_power_state: 'Running',
  where_running_has_vm1: true,
  where_by_name: 1,
  get_by_name_label: true,
  bad_power_state: ['VM_BAD_POWER_STATE', true, 'paused', 'running'],
  not_enough_memory: 'HOST_NOT_ENOUGH_FREE_MEMORY',
  requires_sr: 'VM_REQUIRES_SR',
  token_keys: ['SM', 'host', 'master', 'session_id', 'xenops'],
  vdi_not_in_map: 'VDI_NOT_IN_MAP',
  vif_not_in_map: 'VIF_NOT_IN_MAP',
  assert_can_migrate: null,
  same_ref_from_both_members: true,
  pool_migrate_status: 'success',
  pool_migrate_progress_monotonic: true,
  pool_migrate_other_config: {},
  vm1_ref_kept: true,
  vm1_resident_on_b: true,
  all_records_both_members: true,
  cancel_finished_task: 'OPERATION_NOT_ALLOWED',
  migrate_send_status: 'success',
  vm2_on_c: 'Running',
  vm2_disk_on_c_sr: true,
  vm2_gone_from_pool1: 'HANDLE_INVALID',
  vm2_new_ref_in_pool2: true,
  during_progress_in_range: true,
  during_cancellable: true,
  during_other_config_clean: true,
  during_current_operations: true,
  during_pause_not_allowed: true,
  during_pause: ['OTHER_OPERATION_IN_PROGRESS', 'VM', true, 'pool_migrate', true],
  second_migration: 'OTHER_OPERATION_IN_PROGRESS',
  cancel_status: 'cancelled',
  cancel_error: 'TASK_CANCELLED',
  vm3_after_cancel: 'Running',
  plugin_cap: '30',
  plugin_pause: true,
  plugin_paused_domain: { domid: expect.any(String), paused: true, cap: 30 },
  plugin_record_unchanged: 'Running',
  plugin_unpause: false,
  plugin_missing: ['XENAPI_MISSING_PLUGIN', 'nope'],
  vcpus_params_live: ['NOT_IMPLEMENTED', 'add_to_VCPUs_params_live'],
  vm3_shutdown: 'Halted',
  event_from: true,
};

describe('XenAPI conformance: Python XenAPI and ferry client against the simulator', () => {
  let cluster: SimCluster;
  beforeAll(async () => {
    // Unlimited pre-copy rounds: vm3's guest dirties faster than it converges, so it can be cancelled.
    cluster = await startTestCluster({ bandwidthMiBps: 1024, maxIterations: 0 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('the real Python XenAPI client passes the scenario', async () => {
    const { stdout } = await promisify(execFile)(
      pythonPath(),
      [resolve(__dirname, 'conformance.py'), cluster.host('xen-a').xenapiUrl, cluster.host('xen-b').xenapiUrl, cluster.host('xen-c').xenapiUrl, PASSWORD, 'py'],
      { timeout: 90_000 },
    );
    expect(JSON.parse(stdout)).toEqual(expected);
  });

  it("ferry's client passes the same scenario", async () => {
    const out = await runScenario(cluster.host('xen-a').xenapiUrl, cluster.host('xen-b').xenapiUrl, cluster.host('xen-c').xenapiUrl, PASSWORD, 'ts');
    expect(out).toEqual(expected);
  });

  it('leaves no half-received migration behind on any host', async () => {
    for (const h of cluster.hosts) {
      const state = await h.admin.state();
      expect(state.incoming).toEqual([]);
      expect(state.outgoing).toEqual([]);
      expect(state.srFiles.local.filter((f) => f.endsWith('.partial'))).toEqual([]);
    }
  });
});
