// The Temporal SDK's Runtime of a worker process: its own log lines (worker and core) go through
// ferry's pino logger, and, when asked, its metrics (task slots, pollers, latencies of workflow and
// activity tasks, requests to the server, sticky cache) are served to Prometheus by core's exporter.
import { Runtime, makeTelemetryFilterString, type Logger as TemporalLogger, type LogLevel, type LogMetadata } from '@temporalio/worker';
import type { Logger } from './logger';

const levels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

export interface RuntimeTelemetry {
  /**
   * HOST:PORT where the SDK's Prometheus exporter serves /metrics (a worker's `--metrics` flag);
   * omitted: no exporter. Names follow Prometheus' conventions: counters end in _total, durations
   * are in seconds and say so (temporal_workflow_task_execution_latency_seconds).
   */
  metricsBindAddress?: string;
}

export function installTemporalRuntime(logger: Logger, telemetry: RuntimeTelemetry = {}): void {
  const at = (level: LogLevel) => (message: string, meta?: LogMetadata) => logger[levels[level]](meta ?? {}, message);
  const adapter: TemporalLogger = {
    log: (level, message, meta) => at(level)(message, meta),
    trace: at('TRACE'),
    debug: at('DEBUG'),
    info: at('INFO'),
    warn: at('WARN'),
    error: at('ERROR'),
  };
  Runtime.install({
    logger: adapter,
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
      ...(telemetry.metricsBindAddress
        ? {
            metrics: {
              prometheus: { bindAddress: telemetry.metricsBindAddress, countersTotalSuffix: true, unitSuffix: true, useSecondsForDurations: true },
            },
          }
        : {}),
    },
  });
}
