// Shared setup for simulator tests: three simulated hosts on free ports (xen-a and xen-b in
// pool-1, xen-c alone in pool-2, like temporal.yaml), and a logged-in client per host.
import type { HostConfig } from '../../lib/config';
import { freePort } from '../../lib/ports';
import { startSimulators, type SimCluster } from '../../simulator/cluster';
import { XenApiClient } from '../../xenapi/client';

export const PASSWORD = 'test-password';

export async function hostConfig(name: string, pool: string, memoryMiB = 2048): Promise<HostConfig> {
  return {
    name,
    pool,
    xenapiUrl: `http://127.0.0.1:${await freePort()}/`,
    user: 'root',
    passwordEnv: 'FERRY_XENAPI_PASSWORD',
    simulator: {
      dataPort: await freePort(),
      adminPort: await freePort(),
      memoryMiB,
      cpuModel: 'Intel Xeon (simulated)',
      productVersion: '8.2.1',
      platformVersion: '3.4.0',
    },
  };
}

export async function startTestCluster(opts: { bandwidthMiBps?: number; maxIterations?: number; memoryMiB?: number } = {}): Promise<SimCluster> {
  const hosts = [
    await hostConfig('xen-a', 'pool-1', opts.memoryMiB),
    await hostConfig('xen-b', 'pool-1', opts.memoryMiB),
    await hostConfig('xen-c', 'pool-2', opts.memoryMiB),
  ];
  return startSimulators({
    hosts,
    bandwidthMiBps: opts.bandwidthMiBps ?? 1024,
    password: PASSWORD,
    maxIterations: opts.maxIterations,
    logDir: process.env.FERRY_SIM_LOG_DIR,
  });
}

export function clientFor(cluster: SimCluster, name: string, timeoutMs = 20_000): XenApiClient {
  return new XenApiClient({ url: cluster.host(name).xenapiUrl, user: 'root', password: PASSWORD, timeoutMs });
}
