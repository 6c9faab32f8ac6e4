// One conformance scenario, run through the real Python XenAPI client and through ferry's client
// against the same simulated hosts: both must see exactly the same outcomes, and those outcomes
// must be xapi's (DESIGN section 3).
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
  api_version: '2.21',
  hosts_in_pool: ['xen-a', 'xen-b'],
  pool_master: 'xen-a',
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
  pool_migrate_status: 'success',
  pool_migrate_progress_monotonic: true,
  pool_migrate_keys: true,
  pool_migrate_phase: 'done',
  vm1_gone_from_a: 'UUID_INVALID',
  cancel_finished_task: 'OPERATION_NOT_ALLOWED',
  migrate_send_status: 'success',
  vm2_on_c: 'Running',
  vm2_disk_on_c_sr: true,
  second_migration: 'OTHER_OPERATION_IN_PROGRESS',
  cancel_status: 'cancelled',
  cancel_error: 'TASK_CANCELLED',
  vm3_after_cancel: 'Running',
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
      [resolve(__dirname, 'conformance.py'), cluster.host('xen-a').xenapiUrl, cluster.host('xen-c').xenapiUrl, PASSWORD, 'py'],
      { timeout: 90_000 },
    );
    expect(JSON.parse(stdout)).toEqual(expected);
  });

  it("ferry's client passes the same scenario", async () => {
    const out = await runScenario(cluster.host('xen-a').xenapiUrl, cluster.host('xen-c').xenapiUrl, PASSWORD, 'ts');
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
