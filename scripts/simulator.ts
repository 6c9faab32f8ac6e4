// Starts a simulated Xen host for every host of temporal.yaml that has a simulator block, in the
// foreground, until Ctrl-C.
//   FERRY_XENAPI_PASSWORD=secret npx tsx scripts/simulator.ts [--config temporal.yaml] [--log-dir DIR]
//     [--max-iterations N] [--fresh]
// State (VM database, local and shared SRs) lives in <temporal.dataDir>/simulator unless --fresh.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultConfigPath, loadConfig, readSecret } from '../lib/config';
import { startSimulators } from '../simulator/cluster';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      'log-dir': { type: 'string' },
      'max-iterations': { type: 'string' },
      fresh: { type: 'boolean' },
    },
  });
  const configPath = resolve(values.config ?? defaultConfigPath());
  const config = loadConfig(configPath);
  const hosts = config.hosts.filter((h) => h.simulator);
  if (!hosts.length) throw new Error(`${configPath} lists no host with a simulator block`);
  const envs = [...new Set(hosts.map((h) => h.passwordEnv))];
  if (envs.length > 1) throw new Error(`simulated hosts must share one password variable, found ${envs.join(', ')}`);
  const password = readSecret(envs[0] as string, 'hosts[].passwordEnv');
  const stateDir = values.fresh ? mkdtempSync(join(tmpdir(), 'ferry-sim-')) : resolve(dirname(configPath), config.temporal.dataDir, 'simulator');
  const cluster = await startSimulators({
    hosts,
    bandwidthMiBps: config.simulator.bandwidthMiBps,
    password,
    stateDir,
    logDir: values['log-dir'] ? resolve(values['log-dir']) : undefined,
    maxIterations: values['max-iterations'] === undefined ? undefined : Number(values['max-iterations']),
  });
  for (const h of cluster.hosts) {
    process.stdout.write(`${JSON.stringify({ event: 'ready', name: h.name, pool: h.pool, xenapiUrl: h.xenapiUrl, adminUrl: h.adminUrl, dataPort: h.dataPort })}\n`);
  }
  const stop = () => {
    cluster.stop().finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`simulator: ${(err as Error).message}\n`);
  process.exit(1);
});
