// Bearer tokens with two roles. temporal.yaml names the environment variables that hold the read
// token and the operator token; the operator role includes the read role. Nova clients send their
// token in X-Auth-Token, so that header is accepted as well as `Authorization: Bearer`.
// No token: 401. A token of the wrong role: 403. mode "none" (local demo only) lets everyone operate.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { readSecret, type FerryConfig } from '../lib/config';
import { ApiError } from './errors';

export type Role = 'read' | 'operator';

export interface Principal {
  role: Role;
  /** Recorded as Nova's user_id. */
  userId: string;
}

export interface Authenticator {
  readonly mode: 'token' | 'none';
  /** Throws 401/403 ApiErrors; returns who is calling. */
  authorize(headers: IncomingHttpHeaders, required: Role): Principal;
}

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

function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function tokenAuthenticator(tokens: { read: string; operator: string }): Authenticator {
  return {
    mode: 'token',
    authorize(headers, required) {
      const token = tokenFrom(headers);
      if (token === undefined) {
        throw new ApiError('unauthorized', 'Authentication required: send "Authorization: Bearer <token>" or X-Auth-Token.', wwwAuthenticate());
      }
      let role: Role | undefined;
      if (sameSecret(token, tokens.operator)) role = 'operator';
      else if (sameSecret(token, tokens.read)) role = 'read';
      if (!role) throw new ApiError('unauthorized', 'The token is not valid.', wwwAuthenticate('invalid_token'));
      if (required === 'operator' && role !== 'operator') {
        throw new ApiError('forbidden', 'This action needs the operator role; the token has the read role.');
      }
      return { role, userId: role };
    },
  };
}

export const noAuthenticator: Authenticator = {
  mode: 'none',
  authorize: () => ({ role: 'operator', userId: 'anonymous' }),
};

/** Builds the authenticator temporal.yaml asks for; a missing token variable fails at startup. */
export function authenticatorFromConfig(config: FerryConfig): Authenticator {
  const auth = config.api.auth;
  if (auth.mode === 'none') return noAuthenticator;
  const read = readSecret(auth.readTokenEnv, 'api.auth.readTokenEnv');
  const operator = readSecret(auth.operatorTokenEnv, 'api.auth.operatorTokenEnv');
  if (read === operator) throw new Error('api.auth: the read token and the operator token must differ');
  return tokenAuthenticator({ read, operator });
}
