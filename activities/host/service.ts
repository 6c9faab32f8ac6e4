// A host's scheduling state, as Nova's os-services sets it on a compute service: enabled or disabled
// (with a reason), and forced down. Done in the host's own XenAPI, so that xapi itself refuses new
// VMs on a disabled host and the state outlives any ferry process:
// - host.disable / host.enable (ocaml/xapi/xapi_host.ml) set only `enabled`; a disabled host starts
//   no new VM, its running VMs go on. Since xapi 25.31 host.disable takes auto_enable: false keeps the
//   host disabled across toolstack restarts and reboots (ocaml/idl/datamodel_host.ml); an older xapi
//   answers MESSAGE_PARAMETER_COUNT_MISMATCH and is disabled the old way (until its toolstack restarts).
// - xapi has no field for why: the reason is kept in host.other_config under DISABLED_REASON_KEY
//   (XenCenter keeps its own maintenance state there too, as MAINTENANCE_MODE), so the agent reports
//   it with the host and it survives restarts of the agent and of xapi.
// - enable also drops XenCenter's MAINTENANCE_MODE key, as `xe host-enable` does
//   (ocaml/xapi-cli-server/cli_operations.ml, host_enable: "to stop the gui from re-disabling the host").
// Every call is idempotent: run twice, it changes nothing more.
import type { HostConfig } from '../../lib/config';
import type { XenApiClient } from '../../xenapi/client';
import { XenApiCode, isXenApiError } from '../../xenapi/errors';
import type { HostRecord } from '../../xenapi/records';
import type { HostServiceChange, HostServiceState } from '../../workflows/definitions';
import { thisHost, xenFailure } from './xen';

export type { HostServiceChange, HostServiceState };

/** host.other_config key holding the operator's reason for disabling the host (Nova's disabled_reason). */
export const DISABLED_REASON_KEY = 'ferry_disabled_reason';
/** host.other_config key set to "true" while the operator says the host is down (Nova's forced_down). */
export const FORCED_DOWN_KEY = 'ferry_forced_down';
/** XenCenter's maintenance-mode key, removed by `xe host-enable`. */
export const XENCENTER_MAINTENANCE_KEY = 'MAINTENANCE_MODE';

/** The service state in a host record: the reason only counts while the host is disabled. */
export function serviceStateOf(host: string, record: Pick<HostRecord, 'enabled' | 'other_config'>): HostServiceState {
  const reason = record.other_config[DISABLED_REASON_KEY];
  return {
    host,
    enabled: record.enabled,
    disabledReason: !record.enabled && reason ? reason : null,
    forcedDown: record.other_config[FORCED_DOWN_KEY] === 'true',
  };
}

export function createServiceActivities(host: HostConfig, xenapi: XenApiClient) {
  /** Sets (or, with null, removes) one other_config key; a key already holding the value is left alone. */
  async function setOtherConfig(ref: string, record: HostRecord, key: string, value: string | null): Promise<void> {
    const current = record.other_config[key];
    if (current === (value ?? undefined)) return;
    if (current !== undefined) await xenapi.call('host.remove_from_other_config', ref, key);
    if (value !== null) await xenapi.call('host.add_to_other_config', ref, key, value);
  }

  async function disable(ref: string): Promise<void> {
    try {
      await xenapi.call('host.disable', ref, false);
    } catch (err) {
      // xapi before 25.31 has no auto_enable.
      if (!isXenApiError(err, XenApiCode.MESSAGE_PARAMETER_COUNT_MISMATCH)) throw err;
      await xenapi.call('host.disable', ref);
    }
  }

  return {
    /** This host's service state, as xapi holds it. */
    async hostServiceState(): Promise<HostServiceState> {
      const self = await thisHost(xenapi, host);
      return serviceStateOf(host.name, self.record);
    },

    /**
     * Nova's os-services update on this host: disable (host.disable, the reason in other_config first,
     * so that no report shows the host disabled without it), enable (host.enable, then the reason
     * goes), forced down (other_config). Answers the state xapi then holds.
     */
    async setHostService(change: HostServiceChange): Promise<HostServiceState> {
      try {
        const self = await thisHost(xenapi, host);
        const { ref, record } = self;
        if (change.enabled === false) {
          await setOtherConfig(ref, record, DISABLED_REASON_KEY, change.disabledReason ?? null);
          if (record.enabled) await disable(ref);
        } else if (change.enabled === true) {
          if (!record.enabled) await xenapi.call('host.enable', ref);
          await setOtherConfig(ref, record, XENCENTER_MAINTENANCE_KEY, null);
          await setOtherConfig(ref, record, DISABLED_REASON_KEY, null);
        }
        if (change.forcedDown !== undefined) await setOtherConfig(ref, record, FORCED_DOWN_KEY, change.forcedDown ? 'true' : null);
        return serviceStateOf(host.name, await xenapi.getRecord('host', ref));
      } catch (err) {
        throw xenFailure(err, `os-services update of ${host.name}`);
      }
    },
  };
}
