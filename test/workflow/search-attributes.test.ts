// The conductor's start-up check of ferry's search attributes (workers/conductor.ts), against a real
// Temporal dev server started without them (as a server of one's own may be): without HostReportedAt
// every hostInventory entity would fail its workflow tasks.
import { existsSync } from 'node:fs';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporalCliPath } from '../../lib/paths';
import { HostReportedAt, missingSearchAttributes, searchAttributeNames } from '../../lib/search-attributes';

const KEYWORD = 2;
const DATETIME = 6;
const INT = 3;

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  if (!existsSync(temporalCliPath())) throw new Error(`${temporalCliPath()} is missing: run "bash scripts/install.sh"`);
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  env = await TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: temporalCliPath() } } });
}, 60_000);
afterAll(async () => {
  await env?.teardown();
});

describe('missingSearchAttributes', () => {
  it('names each attribute the server lacks, or has with another type, with the command that registers it', async () => {
    const namespace = env.namespace ?? 'default';
    const missing = await missingSearchAttributes(env.connection, namespace, [...searchAttributeNames, HostReportedAt.name]);
    expect(missing).toHaveLength(searchAttributeNames.length + 1);
    expect(missing).toContain(`HostReportedAt (not registered): temporal operator search-attribute create --namespace ${namespace} --name HostReportedAt --type Datetime`);

    await env.connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: { ...Object.fromEntries(searchAttributeNames.map((name) => [name, KEYWORD])), HostReportedAt: DATETIME },
    });
    expect(await missingSearchAttributes(env.connection, namespace, [...searchAttributeNames, HostReportedAt.name])).toEqual([]);
  });

  it('refuses an attribute of the right name and the wrong type (a server that answers so)', async () => {
    const namespace = 'ferry-system';
    const fake = { operatorService: { listSearchAttributes: async () => ({ customAttributes: { HostReportedAt: INT } }) } } as never;
    expect(await missingSearchAttributes(fake, namespace, [HostReportedAt.name])).toEqual([
      `HostReportedAt (registered with another type (IndexedValueType 3)): temporal operator search-attribute create --namespace ${namespace} --name HostReportedAt --type Datetime`,
    ]);
  });
});
