// The host agent worker: polls each of its hosts' own queue (ferry-host-<name>) and talks only to
// those hosts' XenAPI, one session per host; reports each host to the inventory (HostReporter).
// Activity-only: no workflows here. One process may serve many hosts (a large simulated cluster).
//   npx tsx workers/host-agent.ts --host xen-a [--host xen-b ...] [--config temporal.yaml] [--metrics 127.0.0.1:9465]
import type { Client } from '@temporalio/client';
import { createHostActivities } from '../activities/host';
import { createInventoryActivities } from '../activities/host/inventory';
import { createQemuHostActivities } from '../activities/host/qemu';
import { progressSignal, type TransferProgress } from '../workflows/definitions';
import { findHost, hostDriver, hostQueue, loadConfig, readSecret, type FerryConfig, type HostConfig } from '../lib/config';
import { createLogger, type Logger } from '../lib/logger';
import { connectClients } from '../lib/temporal-connection';
import { XenApiClient } from '../xenapi/client';
import { workerArgs } from './args';
import { HostReporter } from './host-reporter';
import { PollingHostReporter } from './polling-host-reporter';
import { exitOnFatal, runWorkers, type FerryWorkerOptions } from './run-worker';

interface Agent {
  host: HostConfig;
  /** Absent for a QEMU host (driver qemu): it has no XenAPI. */
  xenapi?: XenApiClient;
  reporter: { start(): void; stop(): Promise<void> };
  worker: FerryWorkerOptions;
}

/** A QEMU host's agent (driver qemu): its activities drive QEMU processes over QMP, its reporter polls them. */
function qemuAgentFor(config: FerryConfig, host: HostConfig, client: Client, systemClient: Client, logger: Logger): Agent {
  const reportProgress = async (workflowId: string, progress: TransferProgress) => {
    await client.workflow.getHandle(workflowId).signal(progressSignal, progress);
  };
  let reporter: PollingHostReporter | null = null;
  const { activities } = createQemuHostActivities({ host, peers: config.hosts, logger, reportProgress, reportInventory: () => reporter?.reportNow() ?? Promise.resolve() });
  reporter = new PollingHostReporter({ host, config, client: systemClient, logger, describe: activities.describeHost });
  return { host, reporter, worker: { taskQueue: hostQueue(config, host.name), activities, maxConcurrentActivityTaskPolls: 2 } };
}

function agentFor(config: FerryConfig, host: HostConfig, client: Client, systemClient: Client, logger: Logger): Agent {
  if (hostDriver(host) === 'qemu') return qemuAgentFor(config, host, client, systemClient, logger);
  // The XenAPI password stays in this process's environment: never in workflow inputs or history.
  const xenapi = new XenApiClient({
    url: host.xenapiUrl,
    user: host.user,
    password: readSecret(host.passwordEnv, `hosts[${host.name}].passwordEnv`),
    // Shorter than the transfer's heartbeat timeout (30 s, workflows/activities.ts): a slow call is
    // never taken for a dead agent.
    timeoutMs: 20_000,
  });
  const reporter = new HostReporter({
    host,
    config,
    xenapi,
    client: systemClient,
    logger,
    describe: createInventoryActivities(host, xenapi).describeHost,
  });
  // migrateSend signals its progress to the migration workflow through this client.
  const reportProgress = async (workflowId: string, progress: TransferProgress) => {
    await client.workflow.getHandle(workflowId).signal(progressSignal, progress);
  };
  const activities = createHostActivities({ host, xenapi, logger, reportProgress, reportInventory: () => reporter.reportNow() });
  // Two polls per host queue (the SDK's default is ten): one host's steps come a few at a time, and a
  // process serving 25 hosts would otherwise hold 250 long polls open on the server.
  return { host, xenapi, reporter, worker: { taskQueue: hostQueue(config, host.name), activities, maxConcurrentActivityTaskPolls: 2 } };
}

async function main(): Promise<void> {
  const args = workerArgs();
  if (args.hosts.length === 0) throw new Error('host-agent: --host NAME is required (a host of temporal.yaml; repeat it for more)');
  const config = loadConfig(args.config);
  const hosts = args.hosts.map((name) => findHost(config, name));
  const logger = createLogger('host-agent', hosts.length === 1 ? { host: hosts[0]?.name } : { hosts: hosts.length });
  const { connection: clientConnection, client, systemClient } = await connectClients(config);
  const agents = hosts.map((host) => agentFor(config, host, client, systemClient, hosts.length === 1 ? logger : logger.child({ host: host.name })));
  try {
    for (const agent of agents) agent.reporter.start();
    await runWorkers(
      config,
      logger,
      agents.map((a) => a.worker),
      { metricsBindAddress: args.metrics },
    );
  } finally {
    await Promise.all(agents.map((a) => a.reporter.stop()));
    await Promise.all(agents.map((a) => a.xenapi?.logout().catch(() => undefined)));
    await clientConnection.close();
  }
}

exitOnFatal(createLogger('host-agent'), main());
