// The payload codec: every payload a ferry client or worker hands to Temporal (workflow inputs and
// results, activity arguments and results, signals, updates, queries, memos, heartbeats, encoded
// failures) is encrypted with AES-256-GCM before it leaves the process, so the server's database,
// the web UI and `temporal workflow show` see ciphertext only. The key id travels in the payload's
// metadata: a reader decrypts with whichever known key wrote it, so keys can rotate. A payload
// without that metadata (a history recorded before encryption was on) is passed through unchanged.
//
// The wire format is the one of Temporal's encryption samples (samples-typescript/encryption):
// metadata {encoding: binary/encrypted, encryption-key-id}, data = 12-byte nonce || ciphertext ||
// 16-byte tag, the plaintext being the original Payload message in protobuf form.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Payload, PayloadCodec } from '@temporalio/common';
import protobuf from 'protobufjs';
import { ConfigError, readSecret, type EncryptionConfig } from './config';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

// temporal.api.common.v1.Payload: the plaintext that gets encrypted (metadata and data both).
const PayloadMessage = new protobuf.Type('Payload').add(new protobuf.MapField('metadata', 1, 'string', 'bytes')).add(new protobuf.Field('data', 2, 'bytes'));
new protobuf.Root().define('temporal.api.common.v1').add(PayloadMessage);

const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);

export class PayloadDecryptionError extends Error {
  override name = 'PayloadDecryptionError';
}

/** AES-256-GCM over whole payloads; encrypts with the current key, decrypts with any known one. */
export class EncryptionCodec implements PayloadCodec {
  constructor(
    private readonly currentKeyId: string,
    private readonly keys: ReadonlyMap<string, Buffer>,
  ) {
    const key = keys.get(currentKeyId);
    if (!key) throw new ConfigError(`payload codec: no key with id "${currentKeyId}"`);
    for (const [id, k] of keys) if (k.length !== KEY_BYTES) throw new ConfigError(`payload codec: key "${id}" is ${k.length} bytes, not ${KEY_BYTES}`);
  }

  get keyId(): string {
    return this.currentKeyId;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.encrypt(p));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.decrypt(p));
  }

  encrypt(payload: Payload): Payload {
    const key = this.keys.get(this.currentKeyId) as Buffer;
    const plain = PayloadMessage.encode(PayloadMessage.fromObject({ metadata: payload.metadata ?? {}, data: payload.data ?? new Uint8Array() })).finish();
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    const sealed = Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return {
      metadata: { encoding: utf8(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8(this.currentKeyId) },
      data: sealed,
    };
  }

  decrypt(payload: Payload): Payload {
    if (text(payload.metadata?.encoding) !== ENCRYPTED_ENCODING) return payload; // recorded in clear
    const keyId = text(payload.metadata?.[KEY_ID_METADATA]);
    if (!keyId) throw new PayloadDecryptionError(`an encrypted payload carries no ${KEY_ID_METADATA}`);
    const key = this.keys.get(keyId);
    if (!key) throw new PayloadDecryptionError(`a payload is encrypted with key "${keyId}", which temporal.encryption does not list (known: ${[...this.keys.keys()].join(', ')})`);
    const sealed = Buffer.from(payload.data ?? new Uint8Array());
    if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new PayloadDecryptionError(`an encrypted payload of ${sealed.length} bytes is too short`);
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_BYTES));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadDecryptionError(`a payload encrypted with key "${keyId}" does not authenticate (wrong key or altered data)`);
    }
    const message = PayloadMessage.toObject(PayloadMessage.decode(plain), { bytes: Uint8Array as unknown as StringConstructor }) as {
      metadata?: Record<string, Uint8Array>;
      data?: Uint8Array;
    };
    return { metadata: message.metadata ?? {}, data: message.data ?? new Uint8Array() };
  }
}

/** Reads a key (32 bytes, base64) from its environment variable or file; errors name the field, never the key. */
export function readEncryptionKey(source: { keyId: string; keyEnv?: string; keyFile?: string }, field: string): Buffer {
  let encoded: string;
  if (source.keyEnv) {
    encoded = readSecret(source.keyEnv, `${field}.keyEnv`);
  } else if (source.keyFile) {
    try {
      encoded = readFileSync(source.keyFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`${field}.keyFile: cannot read ${source.keyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  } else {
    throw new ConfigError(`${field}: set keyEnv or keyFile`);
  }
  const trimmed = encoded.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || key.length !== KEY_BYTES) {
    throw new ConfigError(`${field}: key "${source.keyId}" must be ${KEY_BYTES} bytes in base64 (for example: openssl rand -base64 32)`);
  }
  return key;
}

/** The codec temporal.encryption describes, or undefined when payloads travel in clear. */
export function encryptionCodec(encryption: EncryptionConfig | undefined): EncryptionCodec | undefined {
  if (!encryption) return undefined;
  const keys = new Map<string, Buffer>([[encryption.keyId, readEncryptionKey(encryption, 'temporal.encryption')]]);
  encryption.previousKeys.forEach((k, i) => keys.set(k.keyId, readEncryptionKey(k, `temporal.encryption.previousKeys[${i}]`)));
  return new EncryptionCodec(encryption.keyId, keys);
}

/** A fresh random key, base64: what a key file holds. */
export function generateEncryptionKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/** Decodes payloads read raw from the server (a pending activity's heartbeat) with a client's codecs. */
export async function decodeRawPayloads(codecs: readonly PayloadCodec[], payloads: Payload[]): Promise<Payload[]> {
  let out = payloads;
  for (const codec of [...codecs].reverse()) out = await codec.decode(out);
  return out;
}
