// Replays recorded histories (completed, aborted and failed runs) against the current workflow
// code: a change that would break runs in flight fails here. The fixtures are kept by workflow
// version (v1/, v2/, v3/; slots/ for the entity); record the current version's with
// FERRY_RECORD_HISTORIES=1 npx vitest run test/e2e/migration.test.ts test/e2e/fidelity.test.ts,
// and keep the old ones (v3/*.before-session-logout.json: version 3 before the patch
// receive-session-logout; v3/*.before-one-operation-per-instance.json: before a live migration
// asked whether a resize of the instance runs; maintenance/*.before-no-valid-host-retried.json).
// hostMaintenance and coldMigration record theirs from test/e2e/maintenance.test.ts and
// test/e2e/cold-migration.test.ts. inventory/ holds a hostInventory entity's history from before the
// patch host-reported-at (*.before-host-reported-at.json) and after it. Recording decodes the payloads through the stack's codec server, so a
// fixture replays without the key of the stack that recorded it.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const dir = resolve(__dirname, '..', 'fixtures', 'histories');
const fixtures = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.json'));
const recordedBy = (version: string) => fixtures.filter((f) => f.startsWith(`${version}/`)).map((f) => basename(f));

describe('workflow replay', () => {
  it('has recorded histories of completed, aborted and failed runs of every version', () => {
    for (const version of ['v1', 'v2', 'v3']) {
      for (const end of ['completed', 'aborted', 'failed']) expect(recordedBy(version).some((f) => f.startsWith(end)), `${version} ${end}`).toBe(true);
    }
  });

  it('replays every recorded history without nondeterminism', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', resolve(__dirname, 'replay-histories.ts')], {
      encoding: 'utf8',
      env: { ...process.env, FERRY_LOG_LEVEL: 'warn' },
    });
    const results = run.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { workflowId: string; ok: boolean; error: string | null });
    expect(results.map((r) => r.workflowId).sort()).toEqual(fixtures.map((f) => f.replace(/\.json$/, '')).sort());
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(run.status).toBe(0);
  });
});
