// The Keystone authenticator against a tiny fake Keystone (the two calls ferry makes, with
// Keystone's status codes: 201 + X-Subject-Token for a password token, 200 / 404 for a validation,
// 401 for a bad service token): role mapping, 401 / 403 / 503, the cache and the service token's
// renewal. test/e2e/openstack.test.ts runs the same code against a real Keystone. Also the
// api.auth section of temporal.yaml.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KeystoneAuthenticator, authenticatorFromConfig, type KeystoneAuthOptions } from '../../api/auth';
import { ApiError } from '../../api/errors';
import { ConfigError, parseConfig } from '../../lib/config';

interface FakeToken {
  userId: string;
  projectId?: string;
  roles: string[];
  expiresAt: string;
}

class FakeKeystone {
  server!: Server;
  url = '';
  /** Caller tokens Keystone knows. */
  tokens = new Map<string, FakeToken>();
  serviceTokens = new Set<string>();
  servicePassword = 'service-secret';
  issued = 0;
  validations = 0;
  /** Validations answer this status instead (e.g. 500), when set. */
  failWith: number | null = null;
  /** The service token's lifetime, ms. */
  serviceLifetimeMs = 3_600_000;

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v3`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'POST' && req.url?.startsWith('/v3/auth/tokens')) {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { auth: { identity: { password: { user: { name: string; password: string } } } } };
      const user = body.auth.identity.password.user;
      if (user.name !== 'ferry' || user.password !== this.servicePassword) return send(401, { error: { code: 401, message: 'The request you have made requires authentication.' } });
      const value = `svc-${++this.issued}`;
      this.serviceTokens.add(value);
      const expires = new Date(Date.now() + this.serviceLifetimeMs).toISOString();
      return send(201, { token: { expires_at: expires, user: { id: 'ferry-id' }, project: { id: 'service-id' }, roles: [{ name: 'service' }] } }, { 'x-subject-token': value });
    }
    if (req.method === 'GET' && req.url?.startsWith('/v3/auth/tokens')) {
      this.validations++;
      if (this.failWith) return send(this.failWith, { error: { code: this.failWith } });
      if (!this.serviceTokens.has(String(req.headers['x-auth-token']))) return send(401, { error: { code: 401 } });
      const t = this.tokens.get(String(req.headers['x-subject-token']));
      if (!t) return send(404, { error: { code: 404, message: 'Could not recognize Fernet token', title: 'Not Found' } });
      return send(200, {
        token: {
          expires_at: t.expiresAt,
          user: { id: t.userId, name: t.userId, domain: { id: 'default' } },
          ...(t.projectId ? { project: { id: t.projectId, name: 'demo' } } : {}),
          roles: t.roles.map((name) => ({ id: `${name}-id`, name })),
        },
      });
    }
    send(404, { error: { code: 404 } });
  }
}

const later = () => new Date(Date.now() + 3_600_000).toISOString();

describe('KeystoneAuthenticator', () => {
  const keystone = new FakeKeystone();
  let clock = Date.now();
  beforeAll(() => keystone.start());
  afterAll(() => keystone.stop());
  beforeEach(() => {
    keystone.failWith = null;
    keystone.tokens.clear();
    keystone.tokens.set('admin-token', { userId: 'u-admin', projectId: 'p-demo', roles: ['admin', 'member', 'reader'], expiresAt: later() });
    keystone.tokens.set('member-token', { userId: 'u-member', projectId: 'p-demo', roles: ['member', 'reader'], expiresAt: later() });
    keystone.tokens.set('reader-token', { userId: 'u-reader', projectId: 'p-demo', roles: ['reader'], expiresAt: later() });
    keystone.tokens.set('other-token', { userId: 'u-other', projectId: 'p-demo', roles: ['load-balancer_member'], expiresAt: later() });
    keystone.tokens.set('unscoped-token', { userId: 'u-admin', roles: [], expiresAt: later() });
  });

  const make = (over: Partial<KeystoneAuthOptions> = {}) =>
    new KeystoneAuthenticator({
      url: keystone.url,
      service: { user: 'ferry', password: keystone.servicePassword, project: 'service', userDomain: 'Default', projectDomain: 'Default' },
      roles: { operator: ['admin'], read: ['reader', 'member'] },
      cacheSeconds: 30,
      timeoutMs: 2_000,
      now: () => clock,
      ...over,
    });

  const status = async (p: Promise<unknown>) => {
    try {
      await p;
      return 200;
    } catch (err) {
      if (err instanceof ApiError) return err.status;
      throw err;
    }
  };

  it('maps Keystone roles to ferry roles and carries the user and project', async () => {
    const auth = make();
    expect(await auth.authorize({ 'x-auth-token': 'admin-token' }, 'operator')).toEqual({ role: 'operator', userId: 'u-admin', projectId: 'p-demo' });
    expect(await auth.authorize({ authorization: 'Bearer member-token' }, 'read')).toEqual({ role: 'read', userId: 'u-member', projectId: 'p-demo' });
    expect(await auth.authorize({ 'x-auth-token': 'reader-token' }, 'read')).toEqual({ role: 'read', userId: 'u-reader', projectId: 'p-demo' });
  });

  it('answers 401 without a token or for one Keystone does not know, 403 when the roles do not grant the action', async () => {
    const auth = make();
    expect(await status(auth.authorize({}, 'read'))).toBe(401);
    expect(await status(auth.authorize({ 'x-auth-token': 'no-such-token' }, 'read'))).toBe(401);
    expect(await status(auth.authorize({ 'x-auth-token': 'reader-token' }, 'operator'))).toBe(403);
    expect(await status(auth.authorize({ 'x-auth-token': 'member-token' }, 'operator'))).toBe(403);
    expect(await status(auth.authorize({ 'x-auth-token': 'other-token' }, 'read'))).toBe(403);
    expect(await status(auth.authorize({ 'x-auth-token': 'unscoped-token' }, 'read'))).toBe(403);
    const err = await auth.authorize({ 'x-auth-token': 'reader-token' }, 'operator').catch((e: unknown) => e as ApiError);
    expect((err as ApiError).message).toMatch(/needs the operator role \(Keystone role admin\); the token's roles: reader/);
  });

  it('uses the configured role mapping', async () => {
    const auth = make({ roles: { operator: ['member'], read: ['load-balancer_member'] } });
    expect((await auth.authorize({ 'x-auth-token': 'member-token' }, 'operator')).role).toBe('operator');
    expect((await auth.authorize({ 'x-auth-token': 'other-token' }, 'read')).role).toBe('read');
    expect(await status(auth.authorize({ 'x-auth-token': 'reader-token' }, 'read'))).toBe(403);
  });

  it('caches a validation for cacheSeconds, never past the token expiry, and asks once for concurrent requests', async () => {
    const auth = make();
    const before = keystone.validations;
    await Promise.all([1, 2, 3].map(() => auth.authorize({ 'x-auth-token': 'admin-token' }, 'read')));
    expect(keystone.validations - before).toBe(1);
    clock += 29_000;
    await auth.authorize({ 'x-auth-token': 'admin-token' }, 'operator');
    expect(keystone.validations - before).toBe(1);
    // Revoked in Keystone: still trusted until the cache entry ends, then 401.
    keystone.tokens.delete('admin-token');
    clock += 2_000;
    expect(await status(auth.authorize({ 'x-auth-token': 'admin-token' }, 'read'))).toBe(401);
    expect(keystone.validations - before).toBe(2);
    // A token that expires in 5 s is cached for 5 s at most.
    keystone.tokens.set('short-token', { userId: 'u', projectId: 'p', roles: ['reader'], expiresAt: new Date(clock + 5_000).toISOString() });
    await auth.authorize({ 'x-auth-token': 'short-token' }, 'read');
    clock += 6_000;
    keystone.tokens.delete('short-token');
    expect(await status(auth.authorize({ 'x-auth-token': 'short-token' }, 'read'))).toBe(401);
  });

  it('gets a new service token when Keystone no longer accepts its own, and when it nears expiry', async () => {
    const auth = make({ cacheSeconds: 0 });
    await auth.authorize({ 'x-auth-token': 'reader-token' }, 'read');
    const issued = keystone.issued;
    keystone.serviceTokens.clear(); // Keystone restarted with new keys, or revoked it
    await auth.authorize({ 'x-auth-token': 'reader-token' }, 'read');
    expect(keystone.issued).toBe(issued + 1);
    await auth.authorize({ 'x-auth-token': 'reader-token' }, 'read');
    expect(keystone.issued).toBe(issued + 1);
    clock += 3_600_000; // past the service token's renewal time
    await auth.authorize({ 'x-auth-token': 'reader-token' }, 'read');
    expect(keystone.issued).toBe(issued + 2);
  });

  it('answers 503 when Keystone is unreachable, fails or refuses ferry’s own credentials', async () => {
    keystone.failWith = 500;
    expect(await status(make().authorize({ 'x-auth-token': 'reader-token' }, 'read'))).toBe(503);
    keystone.failWith = null;
    expect(await status(make({ service: { user: 'ferry', password: 'wrong', project: 'service', userDomain: 'Default', projectDomain: 'Default' } }).authorize({ 'x-auth-token': 'reader-token' }, 'read'))).toBe(503);
    const nowhere = make({ url: 'http://127.0.0.1:9/v3' });
    const err = await nowhere.authorize({ 'x-auth-token': 'reader-token' }, 'read').catch((e: unknown) => e as ApiError);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(503);
    expect((err as ApiError).message).toMatch(/Keystone could not validate the token/);
    expect((err as ApiError).message).not.toMatch(/reader-token/);
  });
});

describe('api.auth in temporal.yaml', () => {
  const hosts = [{ name: 'xen-a', pool: 'p', xenapiUrl: 'http://127.0.0.1:1/', passwordEnv: 'P' }];
  const auth = (api: unknown) => parseConfig({ hosts, api }).api.auth;

  it('means static tokens from FERRY_READ_TOKEN and FERRY_OPERATOR_TOKEN when missing', () => {
    expect(auth(undefined)).toEqual({ mode: 'token', readTokenEnv: 'FERRY_READ_TOKEN', operatorTokenEnv: 'FERRY_OPERATOR_TOKEN' });
    expect(auth({ auth: { mode: 'none' } })).toEqual({ mode: 'none' });
  });

  it('fills in the Keystone defaults and names the field of each mistake', () => {
    expect(auth({ auth: { mode: 'keystone', url: 'http://127.0.0.1:5000/v3', service: { passwordEnv: 'FERRY_KEYSTONE_PASSWORD' } } })).toEqual({
      mode: 'keystone',
      url: 'http://127.0.0.1:5000/v3',
      service: { user: 'ferry', passwordEnv: 'FERRY_KEYSTONE_PASSWORD', project: 'service', userDomain: 'Default', projectDomain: 'Default' },
      roles: { operator: ['admin'], read: ['reader', 'member'] },
      cacheSeconds: 30,
      timeoutMs: 5000,
    });
    const bad = () => auth({ auth: { mode: 'keystone', url: 'http://127.0.0.1:5000/', service: { password: 'in the file' }, roles: { operator: [] } } });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/api\.auth\.url: must be the identity v3 endpoint/);
    expect(bad).toThrow(/api\.auth\.service\.passwordEnv/);
    expect(bad).toThrow(/api\.auth\.service: Unrecognized key: "password"/);
    expect(bad).toThrow(/api\.auth\.roles\.operator: name at least one Keystone role/);
    expect(() => auth({ auth: { mode: 'ldap' } })).toThrow(/api\.auth\.mode: mode must be one of token, keystone, none/);
  });

  it('needs the service password variable at startup', () => {
    const config = parseConfig({ hosts, api: { auth: { mode: 'keystone', url: 'http://127.0.0.1:5000/v3', service: { passwordEnv: 'FERRY_TEST_UNSET_KEYSTONE_PW' } } } });
    delete process.env.FERRY_TEST_UNSET_KEYSTONE_PW;
    expect(() => authenticatorFromConfig(config)).toThrow(/api\.auth\.service\.passwordEnv: environment variable FERRY_TEST_UNSET_KEYSTONE_PW is not set/);
    process.env.FERRY_TEST_UNSET_KEYSTONE_PW = 'x';
    expect(authenticatorFromConfig(config).mode).toBe('keystone');
    delete process.env.FERRY_TEST_UNSET_KEYSTONE_PW;
  });
});
