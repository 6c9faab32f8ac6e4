// The conductor worker: runs ferry's workflows and the cluster-side activities on the conductor queue.
//   npx tsx workers/conductor.ts [--config temporal.yaml]
import { Client, Connection } from '@temporalio/client';
import { createConductorActivities } from '../activities/conductor';
import { loadConfig } from '../lib/config';
import { createLogger } from '../lib/logger';
import { connectionOptions } from '../lib/temporal-connection';
import { workerArgs } from './args';
import { exitOnFatal, runWorker } from './run-worker';

async function main(): Promise<void> {
  const args = workerArgs();
  const config = loadConfig(args.config);
  const logger = createLogger('conductor');
  // Conductor activities use a client of their own: to ask which host queues have pollers and to
  // signal the migration-slots entity workflow.
  const clientConnection = await Connection.connect(connectionOptions(config));
  const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
  try {
    await runWorker(config, logger, {
      taskQueue: config.taskQueues.conductor,
      workflowsPath: require.resolve('../workflows'),
      activities: createConductorActivities({ config, client }),
    });
  } finally {
    await clientConnection.close();
  }
}

exitOnFatal(createLogger('conductor'), main());
