// Runs Temporal workers on one connection until SIGINT/SIGTERM, then drains them and closes it.
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { FerryConfig } from '../lib/config';
import type { Logger } from '../lib/logger';
import { connectionOptions, workerDataConverter } from '../lib/temporal-connection';
import { exitWithParent } from '../lib/processes';
import { installTemporalRuntime, type RuntimeTelemetry } from '../lib/temporal-logger';

/** One worker's options; the namespace defaults to temporal.yaml's. */
export type FerryWorkerOptions = Omit<WorkerOptions, 'connection' | 'namespace'> & { namespace?: string };

export async function runWorkers(config: FerryConfig, logger: Logger, workers: FerryWorkerOptions[], telemetry: RuntimeTelemetry = {}): Promise<void> {
  installTemporalRuntime(logger, telemetry);
  exitWithParent();
  const connection = await NativeConnection.connect(connectionOptions(config));
  try {
    const created = await Promise.all(
      workers.map((options) =>
        Worker.create({
          connection,
          namespace: config.temporal.namespace,
          dataConverter: workerDataConverter(config),
          shutdownGraceTime: '10s',
          // A heartbeat is also how an activity learns it was cancelled: the SDK's default throttle
          // (80 % of a 30 s heartbeat timeout) would delay an abort by up to 24 s.
          maxHeartbeatThrottleInterval: '1s',
          ...options,
        }),
      ),
    );
    for (const w of workers) logger.info({ taskQueue: w.taskQueue, namespace: w.namespace ?? config.temporal.namespace }, 'worker polling');
    // The SDK's Runtime turns SIGINT/SIGTERM into shutdown() of every worker; run() resolves once drained.
    await Promise.all(created.map((w) => w.run()));
    logger.info('workers stopped');
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
