// The conductor's side of a host's maintenance: what the host runs, from the host inventory (its
// entity's query, as fresh as the agent's last report), and the limits the drain works under.
import { ApplicationFailure } from '@temporalio/activity';
import type { FerryConfig } from '../../lib/config';
import type { HostInventory } from '../../lib/host-inventory';
import type { InstanceView, MigrationLimits } from '../../workflows/definitions';

export interface MaintenancePlan {
  host: string;
  pool: string;
  /** The host agent's task queue. */
  queue: string;
  up: boolean;
  downReason: string | null;
  enabled: boolean;
  limits: MigrationLimits;
  /** How old the scheduler's copy of the inventory may be (inventory.cacheMs). */
  inventoryCacheMs: number;
  /** The host's running (or paused) VMs, as its agent last reported them. */
  instances: InstanceView[];
}

/** The host as the inventory knows it now; a host that is not in temporal.yaml is ComputeHostNotFound. */
export async function planMaintenance(inventory: HostInventory, config: FerryConfig, host: string): Promise<MaintenancePlan> {
  const view = await inventory.hostNow(host);
  if (!view) throw ApplicationFailure.nonRetryable(`host ${host} is not a host of this cluster`, 'ComputeHostNotFound');
  return {
    host: view.name,
    pool: view.pool,
    queue: view.queue,
    up: view.up,
    downReason: view.downReason,
    enabled: view.enabled,
    limits: config.migration.limits,
    inventoryCacheMs: config.inventory.cacheMs,
    instances: view.instances.filter((i) => i.powerState === 'Running' || i.powerState === 'Paused'),
  };
}
