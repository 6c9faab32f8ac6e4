// The one pino setup every ferry process uses: JSON lines on stderr, level from FERRY_LOG_LEVEL.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return pino(
    {
      name: `ferry-${component}`,
      level: process.env.FERRY_LOG_LEVEL ?? 'info',
      base: { pid: process.pid, ...bindings },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination(2),
  );
}
