// Runs one Temporal worker until SIGINT/SIGTERM, then drains it and closes the connection.
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { FerryConfig } from '../lib/config';
import type { Logger } from '../lib/logger';
import { connectionOptions } from '../lib/temporal-connection';
import { exitWithParent } from '../lib/processes';
import { installTemporalRuntime } from '../lib/temporal-logger';

export async function runWorker(
  config: FerryConfig,
  logger: Logger,
  options: Omit<WorkerOptions, 'connection' | 'namespace'>,
): Promise<void> {
  installTemporalRuntime(logger);
  exitWithParent();
  const connection = await NativeConnection.connect(connectionOptions(config));
  try {
    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      shutdownGraceTime: '10s',
      // A heartbeat is also how an activity learns it was cancelled: the SDK's default throttle
      // (80 % of a 30 s heartbeat timeout) would delay an abort by up to 24 s.
      maxHeartbeatThrottleInterval: '1s',
      ...options,
    });
    logger.info({ taskQueue: options.taskQueue }, 'worker polling');
    // The SDK's Runtime turns SIGINT/SIGTERM into worker.shutdown(); run() resolves once drained.
    await worker.run();
    logger.info({ taskQueue: options.taskQueue }, 'worker stopped');
  } finally {
    await connection.close();
  }
}

export function exitOnFatal(logger: Logger, promise: Promise<unknown>): void {
  promise.then(
    () => process.exit(0),
    (err: unknown) => {
      logger.fatal({ err }, 'worker failed');
      process.exit(1);
    },
  );
}
