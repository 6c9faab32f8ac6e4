// Connection options for the Temporal server named in temporal.yaml (API key and TLS by env var).
import { readFileSync } from 'node:fs';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import { readSecret, type FerryConfig } from './config';

/** Accepted by both Connection.connect (clients) and NativeConnection.connect (workers). */
export interface FerryConnectionOptions {
  address: string;
  apiKey?: string;
  tls?: TLSConfig;
}

export function connectionOptions(config: FerryConfig): FerryConnectionOptions {
  const { address, apiKeyEnv, tls } = config.temporal;
  const options: FerryConnectionOptions = { address };
  if (apiKeyEnv) options.apiKey = readSecret(apiKeyEnv, 'temporal.apiKeyEnv');
  if (tls) {
    options.tls = {
      clientCertPair: {
        crt: readFileSync(readSecret(tls.certPathEnv, 'temporal.tls.certPathEnv')),
        key: readFileSync(readSecret(tls.keyPathEnv, 'temporal.tls.keyPathEnv')),
      },
      serverRootCACertificate: tls.caPathEnv ? readFileSync(readSecret(tls.caPathEnv, 'temporal.tls.caPathEnv')) : undefined,
    };
  }
  return options;
}
