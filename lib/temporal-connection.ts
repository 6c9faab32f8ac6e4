// Connection options for the Temporal server named in temporal.yaml (API key and TLS by env var).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import { readSecret, type FerryConfig } from './config';
import { encryptionCodec, type EncryptionCodec } from './payload-codec';

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

const codecs = new WeakMap<FerryConfig, EncryptionCodec | undefined>();

/** temporal.encryption's codec (its keys read once per config), or undefined when it is off. */
export function payloadCodec(config: FerryConfig): EncryptionCodec | undefined {
  if (!codecs.has(config)) codecs.set(config, encryptionCodec(config.temporal.encryption));
  return codecs.get(config);
}

/**
 * The data converter of every ferry client: with temporal.encryption, the payload codec. (A client
 * reads failures whose message and stack trace a worker encoded with the default converter: it
 * decodes encodedAttributes whatever its options.)
 */
export function temporalDataConverter(config: FerryConfig): DataConverter {
  const codec = payloadCodec(config);
  return codec ? { payloadCodecs: [codec] } : {};
}

/**
 * The data converter of every ferry worker (Worker.create; bundleWorkflowCode takes its
 * failureConverterPath): the clients' one, and failures' messages and stack traces travel as
 * payloads, so the codec encrypts them too. Loaded by path (workflow code runs it in the sandbox).
 */
export function workerDataConverter(config: FerryConfig): DataConverter {
  const converter = temporalDataConverter(config);
  return converter.payloadCodecs ? { ...converter, failureConverterPath: join(__dirname, 'failure-converter') } : converter;
}

export interface TemporalClients {
  connection: Connection;
  /** temporal.namespace: the migrations. */
  client: Client;
  /** temporal.systemNamespace: the host inventory and the slots entity. */
  systemClient: Client;
}

/** A connection and a client of each of ferry's namespaces, all with temporalDataConverter. */
export async function connectClients(config: FerryConfig): Promise<TemporalClients> {
  const connection = await Connection.connect(connectionOptions(config));
  const dataConverter = temporalDataConverter(config);
  return {
    connection,
    client: new Client({ connection, namespace: config.temporal.namespace, dataConverter }),
    systemClient: new Client({ connection, namespace: config.temporal.systemNamespace, dataConverter }),
  };
}
