// Serves temporal.yaml's payload codec over Temporal's remote codec protocol (lib/codec-server.ts) on
// temporal.encryption.codecServer.listen, for the web UI (--ui-codec-endpoint) and the temporal CLI
// (--codec-endpoint), until SIGINT/SIGTERM. It holds the keys: run it where the keys may be.
//   npx tsx scripts/codec-server.ts [--config temporal.yaml]
import { parseArgs } from 'node:util';
import { ConfigError, defaultConfigPath, loadConfig, readSecret } from '../lib/config';
import { buildCodecServer } from '../lib/codec-server';
import { createLogger } from '../lib/logger';
import { exitWithParent } from '../lib/processes';
import { payloadCodec } from '../lib/temporal-connection';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' } } });
  const config = loadConfig(values.config ?? defaultConfigPath());
  const logger = createLogger('codec-server');
  const codec = payloadCodec(config);
  const server = config.temporal.encryption?.codecServer;
  if (!codec || !server) throw new ConfigError('the codec server needs temporal.encryption with its codecServer section');
  const ui = config.temporal.uiPort;
  const app = buildCodecServer({
    codec,
    corsOrigins: server.corsOrigins ?? [`http://127.0.0.1:${ui}`, `http://localhost:${ui}`],
    authToken: server.authTokenEnv ? readSecret(server.authTokenEnv, 'temporal.encryption.codecServer.authTokenEnv') : undefined,
    logger,
  });
  const [host, port] = server.listen.split(':') as [string, string];
  await app.listen({ host, port: Number(port) });
  logger.info({ listen: server.listen, keyId: codec.keyId, auth: Boolean(server.authTokenEnv) }, 'codec server listening');
  const stop = () => {
    void app.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  exitWithParent();
}

main().catch((err: unknown) => {
  createLogger('codec-server').fatal({ err }, 'codec server failed');
  process.exit(1);
});
