// Host-side maintenance steps: what XenCenter's "Enter maintenance mode" and `xe host-enable` do to
// the host's record. xapi's host.disable and host.enable only set `enabled` (and do nothing when it
// already is: xapi_host.ml), so both steps are idempotent. XenCenter also marks the host with
// other_config:MAINTENANCE_MODE=true, which `xe host-enable` removes before enabling
// (cli_operations.ml host_enable: "to stop the gui from re-disabling the host"); ferry does the same,
// so XenCenter and xe see a host in maintenance the way they expect. The disable and enable are
// os-services' (activities/host/service.ts): auto_enable false on xapi 25.31 and later (a toolstack
// restart does not re-enable a host in maintenance), and the reason Nova's os-services shows.
import type { HostConfig } from '../../lib/config';
import type { XenApiClient } from '../../xenapi/client';
import { XENCENTER_MAINTENANCE_KEY, createServiceActivities } from './service';
import { thisHost } from './xen';

export const MAINTENANCE_MODE_KEY = XENCENTER_MAINTENANCE_KEY;
/** The disabled_reason os-services shows for a host in maintenance. */
export const maintenanceReason = (host: string) => `maintenance (workflow host-maintenance-${host})`;

export interface MaintenanceHostState {
  enabled: boolean;
  maintenanceMode: boolean;
}

export function createMaintenanceActivities(host: HostConfig, xenapi: XenApiClient) {
  const service = createServiceActivities(host, xenapi);
  const state = async (): Promise<MaintenanceHostState> => {
    const self = await thisHost(xenapi, host);
    const other = (await xenapi.call<Record<string, string>>('host.get_other_config', self.ref)) ?? {};
    return { enabled: self.record.enabled, maintenanceMode: other[MAINTENANCE_MODE_KEY] === 'true' };
  };
  return {
    /** host.disable (new VMs and migrations do not come here) and MAINTENANCE_MODE=true, as XenCenter. */
    async disableHostForMaintenance(): Promise<MaintenanceHostState> {
      await service.setHostService({ enabled: false, disabledReason: maintenanceReason(host.name) });
      const self = await thisHost(xenapi, host);
      // remove then add: add_to_other_config of a key that exists is MAP_DUPLICATE_KEY (a retry).
      await xenapi.call('host.remove_from_other_config', self.ref, MAINTENANCE_MODE_KEY);
      await xenapi.call('host.add_to_other_config', self.ref, MAINTENANCE_MODE_KEY, 'true');
      return state();
    },
    /** As `xe host-enable`: MAINTENANCE_MODE removed, then host.enable. */
    async enableHostAfterMaintenance(): Promise<MaintenanceHostState> {
      // host.enable, then MAINTENANCE_MODE and the reason go.
      await service.setHostService({ enabled: true });
      return state();
    },
  };
}
