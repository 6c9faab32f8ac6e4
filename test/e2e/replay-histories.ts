// Replays every history in test/fixtures/histories against the current workflow code and prints
// one JSON line per history. Runs as its own process: the replay worker must load the SDK's
// protobuf modules once, outside the test runner's module system.
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';

async function main(): Promise<void> {
  const dir = resolve(__dirname, '..', 'fixtures', 'histories');
  const histories = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({
      workflowId: f.replace(/\.json$/, ''),
      history: historyFromJSON(JSON.parse(readFileSync(resolve(dir, f), 'utf8'))),
    }));
  let failed = 0;
  for await (const result of Worker.runReplayHistories({ workflowsPath: require.resolve('../../workflows') }, histories)) {
    if (result.error) failed++;
    console.log(JSON.stringify({ workflowId: result.workflowId, ok: !result.error, error: result.error?.message ?? null }));
  }
  process.exit(failed ? 1 : 0);
}

void main();
