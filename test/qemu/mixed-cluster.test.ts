// A cluster of Xen and QEMU hosts: temporal.yaml's `driver`, and the conductor's refusal to send a
// guest to another hypervisor type (Nova's InvalidHypervisorType text, both types named).
import { describe, expect, it } from 'vitest';
import { hypervisorMismatch } from '../../activities/conductor/placement';
import { hostDriver, parseConfig } from '../../lib/config';

const config = parseConfig(
  {
    temporal: { address: '127.0.0.1:7233' },
    hosts: [
      { name: 'xen-a', pool: 'p1', xenapiUrl: 'http://10.0.0.1/', passwordEnv: 'FERRY_XENAPI_PASSWORD' },
      { name: 'qa', pool: 'q1', driver: 'qemu', qemu: { stateDir: '/var/lib/ferry/qa' } },
      { name: 'qb', pool: 'q1', driver: 'qemu', qemu: { stateDir: '/var/lib/ferry/qb', imagesDir: '/srv/images' } },
    ],
  },
  'mixed',
);

describe('mixed clusters', () => {
  it('reads each host driver (absent: xen); a QEMU host needs no XenAPI', () => {
    expect(config.hosts.map(hostDriver)).toEqual(['xen', 'qemu', 'qemu']);
    expect(config.hosts[1]?.qemu).toMatchObject({ permitPostCopy: false, permitAutoConverge: true, downtimeMs: 500, downtimeSteps: 10, downtimeDelaySecondsPerGiB: 75 });
  });

  it('refuses a qemu host without its qemu section, and a qemu section on a xen host', () => {
    expect(() => parseConfig({ temporal: { address: '127.0.0.1:7233' }, hosts: [{ name: 'q', pool: 'q', driver: 'qemu' }] }, 'bad')).toThrow(/qemu section/);
    expect(() =>
      parseConfig({ temporal: { address: '127.0.0.1:7233' }, hosts: [{ name: 'x', pool: 'p', xenapiUrl: 'http://10.0.0.1/', passwordEnv: 'P', qemu: { stateDir: '/x' } }] }, 'bad'),
    ).toThrow(/qemu section/);
  });

  it('names both hypervisor types when they differ, in either direction', () => {
    expect(hypervisorMismatch(config.hosts, 'qa', 'xen-a')).toBe('The supplied hypervisor type of is invalid. qa runs QEMU, xen-a runs xen');
    expect(hypervisorMismatch(config.hosts, 'xen-a', 'qb')).toBe('The supplied hypervisor type of is invalid. xen-a runs xen, qb runs QEMU');
    expect(hypervisorMismatch(config.hosts, 'qa', 'qb')).toBeNull();
  });
});
