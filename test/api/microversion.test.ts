import { describe, expect, it } from 'vitest';
import { ApiError } from '../../api/errors';
import { MAX_VERSION, MIN_VERSION, atLeast, inRange, negotiate, requestedVersion, versionHeaders } from '../../api/microversion';

function refusal(headers: Record<string, string>): ApiError {
  try {
    negotiate(headers);
  } catch (err) {
    return err as ApiError;
  }
  throw new Error('negotiate accepted');
}

describe('microversion negotiation', () => {
  it('defaults to the minimum and maps latest to the maximum', () => {
    expect(negotiate({})).toEqual(MIN_VERSION);
    expect(negotiate({ 'openstack-api-version': 'compute latest' })).toEqual(MAX_VERSION);
    expect(negotiate({ 'x-openstack-nova-api-version': 'latest' })).toEqual(MAX_VERSION);
  });

  it('reads the modern header first, among other services, then the legacy one', () => {
    expect(negotiate({ 'openstack-api-version': 'placement 1.10, compute 2.53' })).toEqual({ major: 2, minor: 53 });
    expect(negotiate({ 'openstack-api-version': 'compute 2.60', 'x-openstack-nova-api-version': '2.2' })).toEqual({ major: 2, minor: 60 });
    expect(negotiate({ 'openstack-api-version': 'placement 1.10', 'x-openstack-nova-api-version': '2.25' })).toEqual({ major: 2, minor: 25 });
    expect(requestedVersion({ 'openstack-api-version': 'volume 3.0' })).toBeUndefined();
  });

  it('answers 406 outside [2.1, 2.80] with Nova\'s message, 400 for a malformed version', () => {
    const high = refusal({ 'openstack-api-version': 'compute 2.81' });
    expect(high.status).toBe(406);
    expect(high.message).toBe('Version 2.81 is not supported by the API. Minimum is 2.1 and maximum is 2.80.');
    expect(refusal({ 'x-openstack-nova-api-version': '3.0' }).status).toBe(406);
    expect(refusal({ 'x-openstack-nova-api-version': '2.0' }).status).toBe(406);
    const bad = refusal({ 'openstack-api-version': 'compute 2.x' });
    expect(bad.status).toBe(400);
    expect(bad.message).toContain('is of invalid format');
    expect(refusal({ 'x-openstack-nova-api-version': '2.01' }).status).toBe(400);
  });

  it('compares versions and names the served version in three headers', () => {
    const v = { major: 2, minor: 30 };
    expect(atLeast(v, 25)).toBe(true);
    expect(atLeast(v, 59)).toBe(false);
    expect(inRange(v, '2.30', '2.67')).toBe(true);
    expect(inRange({ major: 2, minor: 68 }, '2.30', '2.67')).toBe(false);
    expect(versionHeaders(v)).toEqual({
      'openstack-api-version': 'compute 2.30',
      'x-openstack-nova-api-version': '2.30',
      vary: 'OpenStack-API-Version, X-OpenStack-Nova-API-Version',
    });
  });
});
