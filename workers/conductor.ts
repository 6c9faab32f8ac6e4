// The conductor worker: runs ferry's workflows and the cluster-side activities on the conductor queue,
// and the hostInventory entities on the same queue in the system namespace.
//   npx tsx workers/conductor.ts [--config temporal.yaml] [--metrics 127.0.0.1:9464]
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { createConductorActivities } from '../activities/conductor';
import { loadConfig } from '../lib/config';
import { createLogger } from '../lib/logger';
import { connectionOptions } from '../lib/temporal-connection';
import { workerArgs } from './args';
import { exitOnFatal, runWorkers } from './run-worker';

async function main(): Promise<void> {
  const args = workerArgs();
  const config = loadConfig(args.config);
  const logger = createLogger('conductor');
  // Conductor activities use clients of their own: to read the host inventory (system namespace)
  // and to signal the migration-slots entity workflow.
  const clientConnection = await Connection.connect(connectionOptions(config));
  const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
  const systemClient = new Client({ connection: clientConnection, namespace: config.temporal.systemNamespace });
  // One bundle for both namespaces' workers.
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows') });
  try {
    await runWorkers(config, logger, [
      {
        taskQueue: config.taskQueues.conductor,
        workflowBundle,
        activities: createConductorActivities({ config, client, systemClient }),
      },
      {
        taskQueue: config.taskQueues.conductor,
        namespace: config.temporal.systemNamespace,
        workflowBundle,
        // A report to an entity whose cached worker died waits this long before any worker takes it
        // (the SDK's default is 10 s); the entities are tiny, so taking them elsewhere costs nothing.
        stickyQueueScheduleToStartTimeout: '1s',
      },
    ], { metricsBindAddress: args.metrics });
  } finally {
    await clientConnection.close();
  }
}

exitOnFatal(createLogger('conductor'), main());
