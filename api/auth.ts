// Who may call the API: ferry's two roles, read and operator (which includes read), from one of
// three authenticators chosen by temporal.yaml's api.auth:
// - token (the default): two static bearer tokens, read from the environment variables it names;
// - keystone: each token is validated with Keystone (identity v3), as keystonemiddleware does for
//   Nova: ferry's own service token asks `GET /v3/auth/tokens` about the caller's token, whose roles
//   map to ferry's (admin -> operator, reader and member -> read by default); answers are cached
//   briefly, keyed by a hash of the token;
// - none (only when asked for, a local demo): every caller is an operator.
// Nova clients send their token in X-Auth-Token, so that header is accepted as well as
// `Authorization: Bearer`. No or a bad token: 401. Roles that do not grant what the route needs: 403.
// Keystone unreachable: 503. A token (the caller's or ferry's) is never logged.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { LRUCache } from 'lru-cache';
import { readSecret, type FerryConfig, type KeystoneAuthConfig } from '../lib/config';
import type { Logger } from '../lib/logger';
import { ApiError } from './errors';

export type Role = 'read' | 'operator';

export interface Principal {
  role: Role;
  /** Recorded as Nova's user_id. */
  userId: string;
  /** Recorded as Nova's project_id: the token's project with Keystone, 'ferry' otherwise. */
  projectId: string;
}

export interface Authenticator {
  readonly mode: 'token' | 'keystone' | 'none';
  /** Throws 401/403/503 ApiErrors; returns who is calling. */
  authorize(headers: IncomingHttpHeaders, required: Role): Promise<Principal>;
}

/** The project recorded on migrations started without Keystone. */
export const STATIC_PROJECT_ID = 'ferry';

function tokenFrom(headers: IncomingHttpHeaders): string | undefined {
  const authorization = headers.authorization;
  if (typeof authorization === 'string' && authorization.trim() !== '') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) throw new ApiError('unauthorized', 'Authorization header must be "Bearer <token>".', wwwAuthenticate('invalid_request'));
    return m[1];
  }
  const xAuth = headers['x-auth-token'];
  if (typeof xAuth === 'string' && xAuth.trim() !== '') return xAuth.trim();
  return undefined;
}

function wwwAuthenticate(error?: string): Record<string, string> {
  return { 'www-authenticate': error ? `Bearer realm="ferry", error="${error}"` : 'Bearer realm="ferry"' };
}

function requireToken(headers: IncomingHttpHeaders): string {
  const token = tokenFrom(headers);
  if (token === undefined) {
    throw new ApiError('unauthorized', 'Authentication required: send "Authorization: Bearer <token>" or X-Auth-Token.', wwwAuthenticate());
  }
  return token;
}

const invalidToken = () => new ApiError('unauthorized', 'The token is not valid.', wwwAuthenticate('invalid_token'));

function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function tokenAuthenticator(tokens: { read: string; operator: string }): Authenticator {
  return {
    mode: 'token',
    async authorize(headers, required) {
      const token = requireToken(headers);
      let role: Role | undefined;
      if (sameSecret(token, tokens.operator)) role = 'operator';
      else if (sameSecret(token, tokens.read)) role = 'read';
      if (!role) throw invalidToken();
      if (required === 'operator' && role !== 'operator') {
        throw new ApiError('forbidden', 'This action needs the operator role; the token has the read role.');
      }
      return { role, userId: role, projectId: STATIC_PROJECT_ID };
    },
  };
}

export const noAuthenticator: Authenticator = {
  mode: 'none',
  authorize: async () => ({ role: 'operator', userId: 'anonymous', projectId: STATIC_PROJECT_ID }),
};

// ---- Keystone ----------------------------------------------------------------------------------

export interface KeystoneAuthOptions {
  /** Identity v3 endpoint, e.g. http://127.0.0.1:5000/v3 */
  url: string;
  service: { user: string; password: string; project: string; userDomain: string; projectDomain: string };
  roles: { operator: string[]; read: string[] };
  cacheSeconds: number;
  timeoutMs: number;
  logger?: Logger;
  /** Clock, for tests. */
  now?: () => number;
}

/** What Keystone said about a token, as much as ferry keeps. */
interface Validated {
  userId: string;
  projectId: string | null;
  roles: string[];
  /** Trusted until then (the cache's bound or the token's expiry, whichever is first), ms. */
  until: number;
}

/** The part of Keystone's token body ferry reads (GET /v3/auth/tokens, POST /v3/auth/tokens). */
interface KeystoneTokenBody {
  token?: {
    expires_at?: string;
    user?: { id?: string };
    project?: { id?: string };
    roles?: { name?: string }[];
  };
}

/** Renew ferry's own token this long before it expires, ms. */
const SERVICE_TOKEN_MARGIN_MS = 120_000;

const keystoneDown = (why: string) => new ApiError('unavailable', `Keystone could not validate the token: ${why}.`);

export class KeystoneAuthenticator implements Authenticator {
  readonly mode = 'keystone' as const;
  private readonly url: string;
  private readonly cache = new LRUCache<string, Validated>({ max: 10_000 });
  /** Validations under way, by token hash: concurrent requests with one token ask Keystone once. */
  private readonly validating = new Map<string, Promise<Validated>>();
  private serviceToken: { value: string; renewAt: number } | null = null;
  private serviceTokenRequest: Promise<string> | null = null;
  private readonly now: () => number;

  constructor(private readonly options: KeystoneAuthOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.now = options.now ?? Date.now;
  }

  async authorize(headers: IncomingHttpHeaders, required: Role): Promise<Principal> {
    const token = requireToken(headers);
    const key = createHash('sha256').update(token).digest('hex');
    let validated = this.cache.get(key);
    if (!validated || validated.until <= this.now()) {
      let asking = this.validating.get(key);
      if (!asking) {
        asking = this.validate(token).finally(() => this.validating.delete(key));
        this.validating.set(key, asking);
      }
      validated = await asking;
      this.cache.set(key, validated);
    }
    const role = this.roleOf(validated.roles);
    if (!validated.projectId) throw new ApiError('forbidden', 'The token is not scoped to a project; ask Keystone for a project-scoped token.');
    if (!role || (required === 'operator' && role !== 'operator')) {
      const wanted = required === 'operator' ? this.options.roles.operator : [...this.options.roles.read, ...this.options.roles.operator];
      const has = validated.roles.length ? validated.roles.join(', ') : 'none';
      throw new ApiError('forbidden', `This action needs the ${required} role (Keystone role ${wanted.join(' or ')}); the token's roles: ${has}.`);
    }
    return { role, userId: validated.userId, projectId: validated.projectId };
  }

  /** How many validations are cached (tests). */
  get cachedTokens(): number {
    return this.cache.size;
  }

  private roleOf(roles: string[]): Role | null {
    if (roles.some((r) => this.options.roles.operator.includes(r))) return 'operator';
    if (roles.some((r) => this.options.roles.read.includes(r))) return 'read';
    return null;
  }

  private async request(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Response> {
    try {
      return await fetch(`${this.url}${path}`, {
        method,
        headers: { accept: 'application/json', ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (err) {
      const why = (err as Error).name === 'TimeoutError' ? `no answer within ${this.options.timeoutMs} ms` : `${this.url} cannot be reached`;
      this.options.logger?.warn({ keystone: this.url, err: (err as Error).message }, 'Keystone request failed');
      throw keystoneDown(why);
    }
  }

  /** Asks Keystone about a caller's token; renews ferry's own token once if Keystone refuses it. */
  private async validate(token: string): Promise<Validated> {
    for (let attempt = 0; ; attempt++) {
      const service = await this.getServiceToken();
      const answer = await this.request('GET', '/auth/tokens?nocatalog', { 'x-auth-token': service, 'x-subject-token': token });
      if (answer.status === 200) return this.validated((await answer.json()) as KeystoneTokenBody);
      await answer.body?.cancel();
      // 404: Keystone does not know the token (bad, expired or revoked), as keystonemiddleware reads it.
      if (answer.status === 404 || answer.status === 400) throw invalidToken();
      if (answer.status === 401 && attempt === 0) {
        this.serviceToken = null;
        continue;
      }
      this.options.logger?.warn({ keystone: this.url, status: answer.status }, 'Keystone refused to validate a token');
      if (answer.status === 401 || answer.status === 403) throw keystoneDown(`it refused ferry's service credentials (${answer.status})`);
      throw keystoneDown(`it answered ${answer.status}`);
    }
  }

  private validated(body: KeystoneTokenBody): Validated {
    const t = body.token;
    if (!t?.user?.id) throw keystoneDown('its answer had no user');
    const expires = t.expires_at ? Date.parse(t.expires_at) : NaN;
    const cacheUntil = this.now() + this.options.cacheSeconds * 1000;
    return {
      userId: t.user.id,
      projectId: t.project?.id ?? null,
      roles: (t.roles ?? []).map((r) => r.name ?? '').filter((r) => r !== ''),
      until: Number.isFinite(expires) ? Math.min(cacheUntil, expires) : cacheUntil,
    };
  }

  /** ferry's own project-scoped token (POST /v3/auth/tokens), renewed before it expires. */
  private async getServiceToken(): Promise<string> {
    if (this.serviceToken && this.serviceToken.renewAt > this.now()) return this.serviceToken.value;
    if (!this.serviceTokenRequest) {
      this.serviceTokenRequest = this.issueServiceToken().finally(() => {
        this.serviceTokenRequest = null;
      });
    }
    return this.serviceTokenRequest;
  }

  private async issueServiceToken(): Promise<string> {
    const { user, password, project, userDomain, projectDomain } = this.options.service;
    const answer = await this.request('POST', '/auth/tokens?nocatalog', {}, {
      auth: {
        identity: { methods: ['password'], password: { user: { name: user, domain: { name: userDomain }, password } } },
        scope: { project: { name: project, domain: { name: projectDomain } } },
      },
    });
    const value = answer.headers.get('x-subject-token');
    if (answer.status !== 201 || !value) {
      await answer.body?.cancel();
      this.options.logger?.error({ keystone: this.url, status: answer.status, user, project }, "Keystone refused ferry's service credentials");
      throw keystoneDown(`it refused ferry's service credentials (${answer.status})`);
    }
    const body = (await answer.json()) as KeystoneTokenBody;
    const expires = body.token?.expires_at ? Date.parse(body.token.expires_at) : NaN;
    const renewAt = Number.isFinite(expires) ? Math.max(this.now(), expires - SERVICE_TOKEN_MARGIN_MS) : this.now() + 600_000;
    this.serviceToken = { value, renewAt };
    return value;
  }
}

/** The Keystone authenticator of a config's api.auth (mode keystone); the service password from its variable. */
export function keystoneAuthenticator(auth: KeystoneAuthConfig, logger?: Logger): KeystoneAuthenticator {
  const password = readSecret(auth.service.passwordEnv, 'api.auth.service.passwordEnv');
  return new KeystoneAuthenticator({
    url: auth.url,
    service: { user: auth.service.user, password, project: auth.service.project, userDomain: auth.service.userDomain, projectDomain: auth.service.projectDomain },
    roles: auth.roles,
    cacheSeconds: auth.cacheSeconds,
    timeoutMs: auth.timeoutMs,
    logger,
  });
}

/** Builds the authenticator temporal.yaml asks for; a missing secret variable fails at startup. */
export function authenticatorFromConfig(config: FerryConfig, logger?: Logger): Authenticator {
  const auth = config.api.auth;
  if (auth.mode === 'none') return noAuthenticator;
  if (auth.mode === 'keystone') return keystoneAuthenticator(auth, logger);
  const read = readSecret(auth.readTokenEnv, 'api.auth.readTokenEnv');
  const operator = readSecret(auth.operatorTokenEnv, 'api.auth.operatorTokenEnv');
  if (read === operator) throw new Error('api.auth: the read token and the operator token must differ');
  return tokenAuthenticator({ read, operator });
}
