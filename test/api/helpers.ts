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
  // The fake's VMs have 2 vCPUs, 2 GiB and a 10 GiB disk: m1.small.
  flavors: [
    { name: 'm1.tiny', id: '1', vcpus: 1, ram: 512, disk: 1 },
    { name: 'm1.small', id: '2', vcpus: 2, ram: 2048, disk: 10, description: 'the fake VMs\' size' },
    { name: 'm1.medium', id: '3', vcpus: 2, ram: 4096, disk: 20 },
    { name: 'm1.large', id: 'large-4', vcpus: 4, ram: 8192, disk: 40 },
  ],
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
