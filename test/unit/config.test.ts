import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig, readSecret } from '../../lib/config';

const host = { name: 'xen-a', pool: 'p', xenapiUrl: 'http://127.0.0.1:1/', passwordEnv: 'XEN_PW' };

describe('temporal.yaml', () => {
  it('loads the repository’s own file with defaults filled in', () => {
    const config = loadConfig();
    expect(config.hosts.map((h) => h.name)).toEqual(['xen-a', 'xen-b', 'xen-c']);
    expect(config.migration.limits.outboundPerHost).toBe(1);
    expect(config.taskQueues.conductor).toBe('ferry-conductor');
  });

  it('names the file and every bad field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-config-'));
    const path = join(dir, 'temporal.yaml');
    writeFileSync(path, 'hosts:\n  - name: Bad Name\n    pool: p\n    xenapiUrl: nope\n    passwordEnv: lower\nmigration:\n  timeoutAction: explode\n');
    let message = '';
    try {
      loadConfig(path);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toContain(path);
    expect(message).toContain('hosts[0].name');
    expect(message).toContain('hosts[0].xenapiUrl');
    expect(message).toContain('hosts[0].passwordEnv');
    expect(message).toContain('migration.timeoutAction');
  });

  it('refuses an inventory whose staleness bound is not longer than its report interval', () => {
    expect(() => parseConfig({ hosts: [host], inventory: { reportSeconds: 30, staleSeconds: 30 } })).toThrow(/inventory\.staleSeconds: staleSeconds must be longer than reportSeconds/);
    expect(parseConfig({ hosts: [host] }).inventory).toEqual({ reportSeconds: 60, staleSeconds: 180, cacheMs: 1000 });
    expect(parseConfig({ hosts: [host] }).temporal.systemNamespace).toBe('ferry-system');
  });

  it('refuses unknown keys and duplicate host names', () => {
    expect(() => parseConfig({ hosts: [host], passwords: 'x' })).toThrow(/Unrecognized key/);
    expect(() => parseConfig({ hosts: [host, host] })).toThrow(/duplicate host name "xen-a"/);
  });

  it('reads secrets only from the environment variable the file names', () => {
    delete process.env.FERRY_TEST_SECRET;
    expect(() => readSecret('FERRY_TEST_SECRET', 'hosts[xen-a].passwordEnv')).toThrow(/FERRY_TEST_SECRET is not set/);
    process.env.FERRY_TEST_SECRET = 's3cret';
    expect(readSecret('FERRY_TEST_SECRET', 'x')).toBe('s3cret');
  });
});
