// Nova's microversion negotiation (nova/api/openstack/api_version_request.py). A client names the
// version in `OpenStack-API-Version: compute 2.X` or the legacy `X-OpenStack-Nova-API-Version: 2.X`;
// no header means the minimum, "latest" the maximum. A malformed version is a 400, a well-formed one
// outside [min, max] a 406, as in Nova. Every /v2.1 response names the version it was served at.
import type { IncomingHttpHeaders } from 'node:http';
import { ApiError } from './errors';

export interface Microversion {
  major: number;
  minor: number;
}

export const MIN_VERSION: Microversion = { major: 2, minor: 1 };
export const MAX_VERSION: Microversion = { major: 2, minor: 80 };

export function formatVersion(v: Microversion): string {
  return `${v.major}.${v.minor}`;
}

export function compareVersions(a: Microversion, b: Microversion): number {
  return a.major - b.major || a.minor - b.minor;
}

/** True when `v` is at least `major.minor`. */
export function atLeast(v: Microversion, minor: number, major = 2): boolean {
  return compareVersions(v, { major, minor }) >= 0;
}

/** True when `v` lies in [from, to] (both "2.X" strings; `to` may be omitted). */
export function inRange(v: Microversion, from: string, to?: string): boolean {
  const lo = parseVersionString(from);
  if (compareVersions(v, lo) < 0) return false;
  return to === undefined || compareVersions(v, parseVersionString(to)) <= 0;
}

function parseVersionString(text: string): Microversion {
  const m = /^([1-9]\d*)\.(0|[1-9]\d*)$/.exec(text.trim());
  if (!m) {
    throw new ApiError(
      'bad_request',
      `API Version String ${text} is of invalid format. Must be of format MajorNum.MinorNum.`,
    );
  }
  return { major: Number(m[1]), minor: Number(m[2]) };
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** The version string the client asked for, or undefined when it asked for none. */
export function requestedVersion(headers: IncomingHttpHeaders): string | undefined {
  const modern = headerValue(headers, 'openstack-api-version');
  if (modern !== undefined) {
    // "compute 2.53" possibly among other services: "compute 2.53, placement 1.10".
    for (const part of modern.split(',')) {
      const [service, version, ...rest] = part.trim().split(/\s+/);
      if (service?.toLowerCase() === 'compute' && version !== undefined && rest.length === 0) return version;
    }
  }
  return headerValue(headers, 'x-openstack-nova-api-version')?.trim();
}

export function negotiate(headers: IncomingHttpHeaders): Microversion {
  const asked = requestedVersion(headers);
  if (asked === undefined || asked === '') return MIN_VERSION;
  if (asked.toLowerCase() === 'latest') return MAX_VERSION;
  const v = parseVersionString(asked);
  if (compareVersions(v, MIN_VERSION) < 0 || compareVersions(v, MAX_VERSION) > 0) {
    throw new ApiError(
      'not_acceptable',
      `Version ${asked} is not supported by the API. Minimum is ${formatVersion(MIN_VERSION)} and maximum is ${formatVersion(MAX_VERSION)}.`,
    );
  }
  return v;
}

/** Headers Nova sets on every response of a microversioned API. */
export function versionHeaders(v: Microversion): Record<string, string> {
  return {
    'openstack-api-version': `compute ${formatVersion(v)}`,
    'x-openstack-nova-api-version': formatVersion(v),
    vary: 'OpenStack-API-Version, X-OpenStack-Nova-API-Version',
  };
}
