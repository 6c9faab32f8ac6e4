// Host-side maintenance steps: what XenCenter's "Enter maintenance mode" and `xe host-enable` do to
// the host's record. xapi's host.disable and host.enable only set `enabled` (and do nothing when it
// already is: xapi_host.ml), so both steps are idempotent. XenCenter also marks the host with
// other_config:MAINTENANCE_MODE=true, which `xe host-enable` removes before enabling
// (cli_operations.ml host_enable: "to stop the gui from re-disabling the host"); ferry does the same,
// so XenCenter and xe see a host in maintenance the way they expect.
import type { HostConfig } from '../../lib/config';
import type { XenApiClient } from '../../xenapi/client';
import { thisHost } from './xen';

export const MAINTENANCE_MODE_KEY = 'MAINTENANCE_MODE';

export interface MaintenanceHostState {
  enabled: boolean;
  maintenanceMode: boolean;
}

export function createMaintenanceActivities(host: HostConfig, xenapi: XenApiClient) {
  const state = async (): Promise<MaintenanceHostState> => {
    const self = await thisHost(xenapi, host);
    const other = (await xenapi.call<Record<string, string>>('host.get_other_config', self.ref)) ?? {};
    return { enabled: self.record.enabled, maintenanceMode: other[MAINTENANCE_MODE_KEY] === 'true' };
  };
  return {
    /** host.disable (new VMs and migrations do not come here) and MAINTENANCE_MODE=true, as XenCenter. */
    async disableHostForMaintenance(): Promise<MaintenanceHostState> {
      const self = await thisHost(xenapi, host);
      await xenapi.call('host.disable', self.ref);
      // remove then add: add_to_other_config of a key that exists is MAP_DUPLICATE_KEY (a retry).
      await xenapi.call('host.remove_from_other_config', self.ref, MAINTENANCE_MODE_KEY);
      await xenapi.call('host.add_to_other_config', self.ref, MAINTENANCE_MODE_KEY, 'true');
      return state();
    },
    /** As `xe host-enable`: MAINTENANCE_MODE removed, then host.enable. */
    async enableHostAfterMaintenance(): Promise<MaintenanceHostState> {
      const self = await thisHost(xenapi, host);
      await xenapi.call('host.remove_from_other_config', self.ref, MAINTENANCE_MODE_KEY);
      await xenapi.call('host.enable', self.ref);
      return state();
    },
  };
}
