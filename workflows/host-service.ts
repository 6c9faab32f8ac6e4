// hostService: Nova's os-services update of one host (enable, disable with a reason, forced down),
// run durably by the host's own agent. The API is not a worker: it starts this workflow (id
// host-service-<host>, one at a time per host) and waits for its result, which is the state xapi then
// holds. The activity is idempotent and reports the host to the inventory before it returns, so the
// scheduler sees a disabled host within moments. Bounded: an agent that does not take the step
// within 15 s, or does not finish it within a minute, fails the run (the host's agent is down).
import { setCurrentDetails } from '@temporalio/workflow';
import { hostChecks } from './activities';
import type { HostServiceInput, HostServiceState } from './definitions';

export async function hostService(input: HostServiceInput): Promise<HostServiceState> {
  const { host, change } = input;
  const what =
    change.enabled === true ? 'enable' : change.enabled === false ? `disable${change.disabledReason ? ` (${change.disabledReason})` : ''}` : 'update';
  setCurrentDetails(`os-services: ${what} **${host}**${change.forcedDown !== undefined ? `, forced_down ${change.forcedDown}` : ''}`);
  const state = await hostChecks(input.queue).setHostService.executeWithOptions({ summary: `${what} ${host}` }, [change]);
  setCurrentDetails(`**${host}** is ${state.enabled ? 'enabled' : `disabled${state.disabledReason ? `: ${state.disabledReason}` : ''}`}${state.forcedDown ? ', forced down' : ''}`);
  return state;
}
