// A worker for test/e2e/slot-lease-workflows.ts, with the conductor's activities (which the
// workflows' SlotLease calls on their own task queue).
//   npx tsx test/e2e/slot-lease-worker.ts --config temporal.yaml
import { createConductorActivities } from '../../activities/conductor';
import { loadConfig } from '../../lib/config';
import { createLogger } from '../../lib/logger';
import { connectClients } from '../../lib/temporal-connection';
import { workerArgs } from '../../workers/args';
import { exitOnFatal, runWorkers } from '../../workers/run-worker';
import { SLOT_LEASE_TEST_QUEUE } from './slot-lease-workflows';

async function main(): Promise<void> {
  const config = loadConfig(workerArgs().config);
  const logger = createLogger('slot-lease-test');
  const { connection, client, systemClient } = await connectClients(config);
  try {
    await runWorkers(config, logger, [
      {
        taskQueue: SLOT_LEASE_TEST_QUEUE,
        workflowsPath: require.resolve('./slot-lease-workflows'),
        activities: createConductorActivities({ config, client, systemClient }),
      },
    ]);
  } finally {
    await connection.close();
  }
}

exitOnFatal(createLogger('slot-lease-test'), main());
