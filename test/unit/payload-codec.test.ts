import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { buildCodecServer } from '../../lib/codec-server';
import { loadConfig, parseConfig } from '../../lib/config';
import { ENCRYPTED_ENCODING, EncryptionCodec, KEY_ID_METADATA, encryptionCodec, readEncryptionKey } from '../../lib/payload-codec';

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const text = (b: Uint8Array | undefined | null) => Buffer.from(b ?? new Uint8Array()).toString('utf8');
const secret = { password: 'hunter2-very-secret', session_id: 'OpaqueRef:6f1d0000-aaaa-bbbb-cccc-000000000001' };

describe('EncryptionCodec', () => {
  it('encrypts a payload whole (metadata and data) and decrypts it back', async () => {
    const codec = new EncryptionCodec('k1', new Map([['k1', k1]]));
    const plain = defaultPayloadConverter.toPayload(secret);
    const [sealed] = await codec.encode([plain]);
    expect(text(sealed?.metadata?.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(text(sealed?.metadata?.[KEY_ID_METADATA])).toBe('k1');
    expect(text(sealed?.metadata?.encoding)).not.toContain('json');
    expect(Buffer.from(sealed?.data ?? []).includes(Buffer.from('hunter2'))).toBe(false);
    const [back] = await codec.decode([sealed as Payload]);
    expect(defaultPayloadConverter.fromPayload(back as Payload)).toEqual(secret);
    // A fresh nonce each time: the same value never encrypts the same way twice.
    const [again] = await codec.encode([plain]);
    expect(Buffer.from(again?.data ?? []).equals(Buffer.from(sealed?.data ?? []))).toBe(false);
  });

  it('passes a payload recorded in clear through unchanged', async () => {
    const codec = new EncryptionCodec('k1', new Map([['k1', k1]]));
    const plain = defaultPayloadConverter.toPayload({ instanceUuid: 'x' });
    expect(await codec.decode([plain])).toEqual([plain]);
  });

  it('rotates: encrypts with the current key and decrypts with any known one', async () => {
    const old = new EncryptionCodec('k1', new Map([['k1', k1]]));
    const rotated = new EncryptionCodec('k2', new Map([['k2', k2], ['k1', k1]]));
    const [byOld] = await old.encode([defaultPayloadConverter.toPayload(secret)]);
    const [byNew] = await rotated.encode([defaultPayloadConverter.toPayload(secret)]);
    expect(text(byNew?.metadata?.[KEY_ID_METADATA])).toBe('k2');
    expect(defaultPayloadConverter.fromPayload((await rotated.decode([byOld as Payload]))[0] as Payload)).toEqual(secret);
    await expect(old.decode([byNew as Payload])).rejects.toThrow(/key "k2", which temporal.encryption does not list/);
  });

  it('refuses altered ciphertext and a wrong key under a known id', async () => {
    const codec = new EncryptionCodec('k1', new Map([['k1', k1]]));
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload(secret)]);
    const data = Buffer.from(sealed?.data ?? []);
    data[20] = (data[20] ?? 0) ^ 1;
    await expect(codec.decode([{ ...sealed, data }])).rejects.toThrow(/does not authenticate/);
    const impostor = new EncryptionCodec('k1', new Map([['k1', k2]]));
    await expect(impostor.decode([sealed as Payload])).rejects.toThrow(/does not authenticate/);
  });
});

describe('temporal.encryption', () => {
  const hosts = [{ name: 'xen-a', pool: 'p', xenapiUrl: 'http://127.0.0.1:1/', passwordEnv: 'PW' }];
  it('needs exactly one key source and distinct key ids', () => {
    expect(() => parseConfig({ hosts, temporal: { encryption: { keyId: 'a' } } })).toThrow(/temporal.encryption: set exactly one of keyEnv and keyFile/);
    expect(() => parseConfig({ hosts, temporal: { encryption: { keyId: 'a', keyEnv: 'K', keyFile: '/k' } } })).toThrow(/exactly one/);
    expect(() => parseConfig({ hosts, temporal: { encryption: { keyId: 'a', keyEnv: 'K', previousKeys: [{ keyId: 'a', keyEnv: 'J' }] } } })).toThrow(/duplicate key id "a"/);
  });

  it('reads keys from a variable or a file, and names what is wrong without printing the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-key-'));
    writeFileSync(join(dir, 'good'), `${k1.toString('base64')}\n`);
    writeFileSync(join(dir, 'short'), randomBytes(16).toString('base64'));
    expect(readEncryptionKey({ keyId: 'f', keyFile: join(dir, 'good') }, 'temporal.encryption').equals(k1)).toBe(true);
    expect(() => readEncryptionKey({ keyId: 'f', keyFile: join(dir, 'short') }, 'temporal.encryption')).toThrow(/key "f" must be 32 bytes in base64/);
    expect(() => readEncryptionKey({ keyId: 'f', keyFile: join(dir, 'missing') }, 'temporal.encryption')).toThrow(/keyFile: cannot read .*ENOENT/);
    expect(() => readEncryptionKey({ keyId: 'e', keyEnv: 'FERRY_TEST_UNSET_KEY' }, 'temporal.encryption')).toThrow(/environment variable FERRY_TEST_UNSET_KEY is not set/);
    process.env.FERRY_TEST_CODEC_KEY = k2.toString('base64');
    const config = parseConfig({ hosts, temporal: { encryption: { keyId: 'new', keyEnv: 'FERRY_TEST_CODEC_KEY', previousKeys: [{ keyId: 'old', keyFile: join(dir, 'good') }] } } });
    expect(encryptionCodec(config.temporal.encryption)?.keyId).toBe('new');
    expect(encryptionCodec(parseConfig({ hosts }).temporal.encryption)).toBeUndefined();
  });
});

describe('codec server (Temporal remote codec protocol)', () => {
  const codec = new EncryptionCodec('k1', new Map([['k1', k1]]));
  const ui = 'http://127.0.0.1:8233';
  const json = (p: Payload) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    data: Buffer.from(p.data ?? []).toString('base64'),
  });

  it('encodes and decodes {payloads} in proto JSON form, with CORS for the web UI only', async () => {
    const app = buildCodecServer({ codec, corsOrigins: [ui] });
    const plain = json(defaultPayloadConverter.toPayload(secret));
    const encoded = await app.inject({ method: 'POST', url: '/encode', headers: { origin: ui, 'x-namespace': 'default' }, payload: { payloads: [plain] } });
    expect(encoded.statusCode).toBe(200);
    expect(encoded.headers['access-control-allow-origin']).toBe(ui);
    const sealed = encoded.json<{ payloads: { metadata: Record<string, string>; data: string }[] }>().payloads;
    expect(Buffer.from(sealed[0]?.metadata.encoding ?? '', 'base64').toString()).toBe(ENCRYPTED_ENCODING);
    const decoded = await app.inject({ method: 'POST', url: '/decode', payload: { payloads: sealed } });
    expect(decoded.json()).toEqual({ payloads: [plain] });
    const preflight = await app.inject({ method: 'OPTIONS', url: '/decode', headers: { origin: ui, 'access-control-request-method': 'POST' } });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-headers']).toMatch(/X-Namespace/);
    const stranger = await app.inject({ method: 'OPTIONS', url: '/decode', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    expect(stranger.headers['access-control-allow-origin']).toBeUndefined();
    expect((await app.inject({ method: 'POST', url: '/decode', payload: { nope: 1 } })).statusCode).toBe(400);
  });

  it('with a token, refuses requests without it (Bearer or bare, as temporal --codec-auth sends it)', async () => {
    const app = buildCodecServer({ codec, corsOrigins: [ui], authToken: 'codec-token-1' });
    const body = { payloads: [json(defaultPayloadConverter.toPayload(1))] };
    expect((await app.inject({ method: 'POST', url: '/encode', payload: body })).statusCode).toBe(401);
    expect((await app.inject({ method: 'POST', url: '/encode', headers: { authorization: 'Bearer wrong' }, payload: body })).statusCode).toBe(401);
    expect((await app.inject({ method: 'POST', url: '/encode', headers: { authorization: 'Bearer codec-token-1' }, payload: body })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/encode', headers: { authorization: 'codec-token-1' }, payload: body })).statusCode).toBe(200);
  });
});

describe("the repository's temporal.yaml", () => {
  it('encrypts with a key file in its state dir, resolved against the file', () => {
    const config = loadConfig(resolve(__dirname, '..', '..', 'temporal.yaml'));
    expect(config.temporal.encryption?.keyFile).toBe(resolve(__dirname, '..', '..', '.data', 'codec.key'));
    expect(config.temporal.encryption?.codecServer?.listen).toMatch(/^127\.0\.0\.1:\d+$/);
  });
});
