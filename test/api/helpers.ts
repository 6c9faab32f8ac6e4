// Builds the API on the fake service with token auth, for inject()-based tests.
import { afterEach } from 'vitest';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { parseConfig } from '../../lib/config';
import { tokenAuthenticator } from '../../api/auth';
import { buildServer, type BuildServerOptions } from '../../api/server';
import { FakeFerryService } from './fake-service';

export const READ = 'read-secret';
export const OPERATOR = 'operator-secret';

export const testConfig = parseConfig({
  hosts: [
    { name: 'xen-a', pool: 'pool-1', xenapiUrl: 'http://127.0.0.1:18080/', passwordEnv: 'FERRY_XENAPI_PASSWORD' },
    { name: 'xen-b', pool: 'pool-1', xenapiUrl: 'http://127.0.0.1:18081/', passwordEnv: 'FERRY_XENAPI_PASSWORD' },
  ],
  api: { auth: { mode: 'token', readTokenEnv: 'FERRY_READ_TOKEN', operatorTokenEnv: 'FERRY_OPERATOR_TOKEN' } },
});

export function testServer(service = new FakeFerryService(), options: Partial<BuildServerOptions> = {}): { app: FastifyInstance; service: FakeFerryService } {
  const app = buildServer({
    config: testConfig,
    service,
    logger: pino({ level: 'silent' }),
    auth: tokenAuthenticator({ read: READ, operator: OPERATOR }),
    pollIntervalMs: 100,
    // The fake's migrations stay where a test puts them: below 2.34 the answer does not wait for them.
    preCheckWaitMs: 0,
    ...options,
  });
  return { app, service };
}

/**
 * For a test file: a factory of test servers, each closed after its test (registers an afterEach).
 */
export function serverPerTest(): (service?: FakeFerryService) => { app: FastifyInstance; service: FakeFerryService } {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });
  return (service) => {
    const built = testServer(service);
    close = () => built.app.close();
    return built;
  };
}

export const asRead = { authorization: `Bearer ${READ}` };
export const asOperator = { authorization: `Bearer ${OPERATOR}` };
export const nova = (version: string, token = OPERATOR) => ({ 'x-auth-token': token, 'openstack-api-version': `compute ${version}` });
