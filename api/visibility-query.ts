// Builds Temporal visibility queries for migration listings. Every value is validated against the
// shape it must have (a UUID, a host name, a known status) and then quoted with escaping anyway, so no
// caller-supplied text is ever pasted into a query.
import { LIVE_MIGRATION_WORKFLOW, MIGRATION_STATUSES } from '../workflows/definitions';
import type { MigrationFilter } from './ferry-service';
import { HOST_PATTERN, UUID_PATTERN } from './schemas';

export class InvalidFilterError extends Error {
  override name = 'InvalidFilterError';
}

/** A visibility string literal: single-quoted, with backslashes and quotes escaped. */
export function quote(value: string): string {
  if ([...value].some((c) => c.charCodeAt(0) < 0x20)) throw new InvalidFilterError('control characters are not allowed in a filter value');
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/"/g, '\\"')}'`;
}

function checked(value: string, pattern: RegExp, what: string): string {
  if (!pattern.test(value)) throw new InvalidFilterError(`${what} "${value}" is not valid`);
  return quote(value);
}

export function migrationQuery(filter: MigrationFilter): string {
  const clauses = [`WorkflowType = ${quote(LIVE_MIGRATION_WORKFLOW)}`];
  if (filter.instanceUuid !== undefined) {
    clauses.push(`InstanceUuid = ${checked(filter.instanceUuid.toLowerCase(), UUID_PATTERN, 'instance uuid')}`);
  }
  if (filter.status !== undefined) {
    if (!(MIGRATION_STATUSES as readonly string[]).includes(filter.status)) {
      throw new InvalidFilterError(`status "${filter.status}" is not one of ${MIGRATION_STATUSES.join(', ')}`);
    }
    clauses.push(`MigrationStatus = ${quote(filter.status)}`);
  }
  if (filter.host !== undefined) {
    const host = checked(filter.host, HOST_PATTERN, 'host');
    clauses.push(`(SourceHost = ${host} OR DestHost = ${host})`);
  }
  if (filter.sourceHost !== undefined) {
    clauses.push(`SourceHost = ${checked(filter.sourceHost, HOST_PATTERN, 'source host')}`);
  }
  if (filter.open === true) clauses.push(`ExecutionStatus = 'Running'`);
  if (filter.open === false) clauses.push(`ExecutionStatus != 'Running'`);
  return clauses.join(' AND ');
}

/** Finds one run by its run id (ferry's migration id). */
export function runIdQuery(runId: string): string {
  return `WorkflowType = ${quote(LIVE_MIGRATION_WORKFLOW)} AND RunId = ${checked(runId.toLowerCase(), UUID_PATTERN, 'migration id')}`;
}
