import { describe, expect, it } from 'vitest';
import { InvalidFilterError, migrationQuery, quote, runIdQuery } from '../../api/visibility-query';
import type { NovaMigrationStatus } from '../../workflows/definitions';

const UUID = '11111111-1111-4111-8111-111111111111';

describe('visibility queries', () => {
  it('builds the filter from validated values', () => {
    expect(migrationQuery({})).toBe("WorkflowType = 'liveMigration'");
    expect(migrationQuery({ instanceUuid: UUID.toUpperCase(), status: 'running', host: 'xen-a', open: true })).toBe(
      `WorkflowType = 'liveMigration' AND InstanceUuid = '${UUID}' AND MigrationStatus = 'running' AND (SourceHost = 'xen-a' OR DestHost = 'xen-a') AND ExecutionStatus = 'Running'`,
    );
    expect(migrationQuery({ sourceHost: 'xen-b', open: false })).toContain("SourceHost = 'xen-b' AND ExecutionStatus != 'Running'");
    expect(runIdQuery(UUID)).toBe(`WorkflowType = 'liveMigration' AND RunId = '${UUID}'`);
  });

  it('never pastes an injection attempt into a query', () => {
    const attacks = ["xen-a' OR WorkflowType != 'x", 'xen-a") OR ("1"="1', 'XEN-A', 'a b', "'"];
    for (const host of attacks) expect(() => migrationQuery({ host })).toThrow(InvalidFilterError);
    expect(() => migrationQuery({ instanceUuid: `${UUID}' OR '1'='1` })).toThrow(InvalidFilterError);
    expect(() => migrationQuery({ status: "running' OR 'x'='x" as NovaMigrationStatus })).toThrow(InvalidFilterError);
    expect(() => runIdQuery('not-a-uuid')).toThrow(InvalidFilterError);
  });

  it('escapes quotes and backslashes, and refuses control characters', () => {
    expect(quote("it's")).toBe("'it\\'s'");
    expect(quote('a\\b')).toBe("'a\\\\b'");
    expect(quote('say "hi"')).toBe(`'say \\"hi\\"'`);
    expect(() => quote('a\nb')).toThrow(InvalidFilterError);
  });
});
