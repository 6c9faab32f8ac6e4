// uuids and refs. Objects every process of a pool must agree on (pool, hosts, shared SR, network)
// get name-derived uuids, so a host process knows its peers' records without asking them.
import { createHash, randomUUID } from 'node:crypto';

export const NULL_REF = 'OpaqueRef:NULL';

/** A stable uuid (v5-shaped) derived from a name. */
export function stableUuid(name: string): string {
  const h = createHash('sha1').update(`ferry-simulator:${name}`).digest('hex');
  const variant = ((parseInt(h[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function stableRef(name: string): string {
  return `OpaqueRef:${stableUuid(`ref:${name}`)}`;
}

export function newUuid(): string {
  return randomUUID();
}

export function newRef(): string {
  return `OpaqueRef:${randomUUID()}`;
}

/** A locally administered unicast MAC, derived from a uuid. */
export function macFor(uuid: string): string {
  const hex = uuid.replace(/-/g, '').slice(0, 10);
  return ['02', ...(hex.match(/../g) ?? [])].join(':');
}
