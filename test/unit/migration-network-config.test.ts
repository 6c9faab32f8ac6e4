// temporal.yaml's migration network: per host (hosts[].migrationNetwork) or per pool
// (pools.<pool>.migrationNetwork), by xapi name_label; each error names the field.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config';

const host = (name: string, pool: string, extra: Record<string, unknown> = {}) => ({
  name,
  pool,
  xenapiUrl: 'http://127.0.0.1:18080/',
  passwordEnv: 'FERRY_XENAPI_PASSWORD',
  ...extra,
});

function errorOf(doc: unknown): string {
  try {
    parseConfig(doc);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('the config was accepted');
}

describe('migration network in temporal.yaml', () => {
  it('defaults to none (the management network), takes the pool\'s, and a host\'s own wins', () => {
    const config = parseConfig({
      hosts: [host('xen-a', 'pool-1'), host('xen-b', 'pool-1', { migrationNetwork: 'eth2 net' }), host('xen-c', 'pool-2')],
      pools: { 'pool-1': { migrationNetwork: 'Storage and migration network' } },
    });
    expect(config.hosts.map((h) => h.migrationNetwork)).toEqual(['Storage and migration network', 'eth2 net', undefined]);
    expect(parseConfig({ hosts: [host('xen-a', 'pool-1')] }).hosts[0]?.migrationNetwork).toBeUndefined();
  });

  it('refuses a pool no host is in, naming it', () => {
    expect(errorOf({ hosts: [host('xen-a', 'pool-1')], pools: { 'pool-9': { migrationNetwork: 'x' } } })).toContain(
      'pools.pool-9: no host is in pool "pool-9" (hosts\' pools: pool-1)',
    );
  });

  it('refuses an empty network name, on a host or a pool', () => {
    expect(errorOf({ hosts: [host('xen-a', 'pool-1', { migrationNetwork: '  ' })] })).toContain('hosts[0].migrationNetwork: name a network by its xapi name_label');
    expect(errorOf({ hosts: [host('xen-a', 'pool-1')], pools: { 'pool-1': { migrationNetwork: '' } } })).toContain('pools.pool-1.migrationNetwork: name a network by its xapi name_label');
  });

  it('refuses unknown keys in a pool\'s section and a pool section that is not an object', () => {
    expect(errorOf({ hosts: [host('xen-a', 'pool-1')], pools: { 'pool-1': { migrationNetwork: 'x', mtu: 9000 } } })).toMatch(/pools\.pool-1: .*mtu/);
    expect(errorOf({ hosts: [host('xen-a', 'pool-1')], pools: { 'pool-1': 'x' } })).toContain('pools.pool-1:');
  });
});
