// The conductor worker: runs ferry's workflows and the cluster-side activities on the conductor queue,
// and the housekeeping entities (migrationSlots, hostInventory) on the same queue in the system namespace.
//   npx tsx workers/conductor.ts [--config temporal.yaml] [--metrics 127.0.0.1:9464]
import { WorkflowNotFoundError, type Client, type Connection } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { createConductorActivities } from '../activities/conductor';
import { loadConfig, type FerryConfig } from '../lib/config';
import { HostReportedAt, missingSearchAttributes, searchAttributeNames } from '../lib/search-attributes';
import { createLogger, type Logger } from '../lib/logger';
import { MIGRATION_SLOTS_WORKFLOW_ID } from '../workflows/definitions';
import { connectClients, workerDataConverter } from '../lib/temporal-connection';
import { workerArgs } from './args';
import { exitOnFatal, runWorkers } from './run-worker';

async function main(): Promise<void> {
  const args = workerArgs();
  const config = loadConfig(args.config);
  const logger = createLogger('conductor');
  // Conductor activities use clients of their own: to read the host inventory (system namespace)
  // and to signal the migration-slots entity workflow.
  const { connection: clientConnection, client, systemClient } = await connectClients(config);
  // One bundle for both namespaces' workers; it carries the data converter's failure converter.
  const { failureConverterPath } = workerDataConverter(config);
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), failureConverterPath });
  const activities = createConductorActivities({ config, client, systemClient });
  await requireSearchAttributes(clientConnection, config);
  await retireSlotsEntityOfMainNamespace(client, logger);
  try {
    await runWorkers(config, logger, [
      { taskQueue: config.taskQueues.conductor, workflowBundle, activities },
      {
        // The housekeeping entities (migrationSlots, hostInventory) and their local activities.
        taskQueue: config.taskQueues.conductor,
        namespace: config.temporal.systemNamespace,
        workflowBundle,
        activities,
        // A report to an entity whose cached worker died waits this long before any worker takes it
        // (the SDK's default is 10 s); the entities are tiny, so taking them elsewhere costs nothing.
        stickyQueueScheduleToStartTimeout: '1s',
      },
    ], { metricsBindAddress: args.metrics });
  } finally {
    await clientConnection.close();
  }
}

/** The migrations' attributes in the main namespace, the inventory's in the system namespace. */
async function requireSearchAttributes(connection: Connection, config: FerryConfig): Promise<void> {
  const missing = [
    ...(await missingSearchAttributes(connection, config.temporal.namespace, searchAttributeNames)),
    ...(await missingSearchAttributes(connection, config.temporal.systemNamespace, [HostReportedAt.name])),
  ];
  if (missing.length > 0) throw new Error(`ferry's search attributes are missing on the Temporal server; register them:\n  ${missing.join('\n  ')}`);
}

/**
 * The migrationSlots entity moved to the system namespace. One left running in the main namespace
 * by an older ferry would never hear from a migration again: it is terminated, and the new entity
 * asks the running migrations to re-assert their leases (reassertLease).
 */
async function retireSlotsEntityOfMainNamespace(client: Client, logger: Logger): Promise<void> {
  try {
    const handle = client.workflow.getHandle(MIGRATION_SLOTS_WORKFLOW_ID);
    if ((await handle.describe()).status.name !== 'RUNNING') return;
    await handle.terminate('moved to the system namespace');
    logger.warn({ workflowId: MIGRATION_SLOTS_WORKFLOW_ID }, 'terminated the migration-slots entity of the main namespace: it lives in the system namespace now');
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
}

exitOnFatal(createLogger('conductor'), main());
