// The API process: `npx tsx api/main.ts [--config temporal.yaml]`. Listens on api.listen from
// temporal.yaml, talks to the Temporal server named there, and stops cleanly on SIGINT/SIGTERM.
import { exitWithParent } from '../lib/processes';
import { parseArgs } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { defaultConfigPath, loadConfig, type FerryConfig } from '../lib/config';
import { createLogger, type Logger } from '../lib/logger';
import { authenticatorFromConfig, type Authenticator } from './auth';
import { buildServer, parseListen } from './server';
import { TemporalFerryService } from './temporal-service';

export interface RunningApi {
  app: FastifyInstance;
  /** http://host:port */
  url: string;
  close(): Promise<void>;
}

/** Connects to Temporal and serves the API; `listen` overrides temporal.yaml's (port 0: any free port). */
export async function startApi(options: { config: FerryConfig; logger?: Logger; listen?: string; auth?: Authenticator }): Promise<RunningApi> {
  const logger = options.logger ?? createLogger('api');
  // First: a missing secret variable fails at startup, before anything connects. It logs through the API's logger.
  const auth = options.auth ?? authenticatorFromConfig(options.config, logger);
  const service = await TemporalFerryService.connect(options.config, logger);
  const app = buildServer({ config: options.config, service, logger, auth, metricsSource: service });
  const { host, port } = parseListen(options.listen ?? options.config.api.listen);
  await app.listen({ host, port });
  const address = app.server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  return { app, url: `http://${host}:${actualPort}`, close: () => app.close() };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' }, listen: { type: 'string' } } });
  const configPath = values.config ?? defaultConfigPath();
  const config = loadConfig(configPath);
  const logger = createLogger('api');
  const api = await startApi({ config, logger, listen: values.listen });
  const { auth } = config.api;
  logger.info({ url: api.url, config: configPath, auth: auth.mode, ...(auth.mode === 'keystone' ? { keystone: auth.url, serviceUser: auth.service.user } : {}) }, 'ferry API listening');
  if (config.api.auth.mode === 'none') logger.warn('api.auth.mode is none: every caller is an operator (local demo only)');
  const stop = (signal: string) => {
    logger.info({ signal }, 'stopping');
    api.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  exitWithParent();
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`ferry api: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
