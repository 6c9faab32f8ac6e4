// The host agent worker: one process per hypervisor host, polling that host's own queue
// (ferry-host-<name>) and talking only to that host's XenAPI. Activity-only: no workflows here.
//   npx tsx workers/host-agent.ts --host xen-a [--config temporal.yaml]
import { Client, Connection } from '@temporalio/client';
import { createHostActivities } from '../activities/host';
import { progressSignal, type TransferProgress } from '../workflows/definitions';
import { findHost, hostQueue, loadConfig, readSecret } from '../lib/config';
import { createLogger } from '../lib/logger';
import { connectionOptions } from '../lib/temporal-connection';
import { XenApiClient } from '../xenapi/client';
import { workerArgs } from './args';
import { exitOnFatal, runWorker } from './run-worker';

async function main(): Promise<void> {
  const args = workerArgs();
  if (!args.host) throw new Error('host-agent: --host NAME is required (a host of temporal.yaml)');
  const config = loadConfig(args.config);
  const host = findHost(config, args.host);
  const logger = createLogger('host-agent', { host: host.name });
  // The XenAPI password stays in this process's environment: never in workflow inputs or history.
  const xenapi = new XenApiClient({
    url: host.xenapiUrl,
    user: host.user,
    password: readSecret(host.passwordEnv, `hosts[${host.name}].passwordEnv`),
    // Shorter than the transfer's heartbeat timeout (30 s, workflows/activities.ts): a slow call is
    // never taken for a dead agent.
    timeoutMs: 20_000,
  });
  // migrateSend signals its progress to the migration workflow through this client.
  const clientConnection = await Connection.connect(connectionOptions(config));
  const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
  const reportProgress = async (workflowId: string, progress: TransferProgress) => {
    await client.workflow.getHandle(workflowId).signal(progressSignal, progress);
  };
  try {
    await runWorker(config, logger, {
      taskQueue: hostQueue(config, host.name),
      activities: createHostActivities({ host, xenapi, logger, reportProgress }),
    });
  } finally {
    await xenapi.logout().catch(() => undefined);
    await clientConnection.close();
  }
}

exitOnFatal(createLogger('host-agent'), main());
