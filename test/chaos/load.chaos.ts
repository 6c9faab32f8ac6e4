// The full load test (npm run chaos): 50 migrations requested at once among 10 simulated hosts
// (three pools of two, four hosts alone), limits 1 outbound / 2 inbound per host / 5 in the cluster.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startStack, type Stack } from '../../lib/stack';
import { FULL_LOAD, LOAD_LIMITS, loadStackOptions, runLoad } from './load';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack(loadStackOptions(FULL_LOAD));
}, 300_000);

afterAll(async () => {
  await stack?.stop();
});

it('50 migrations at once among 10 hosts stay within the limits, end clean, served oldest first', { timeout: 600_000 }, async () => {
  const report = await runLoad(stack, FULL_LOAD, (line) => console.log(`load: ${line}`));
  console.log(`load (full): limits ${JSON.stringify(LOAD_LIMITS)}\n${JSON.stringify(report, null, 2)}`);
  expect(report.problems).toEqual([]);
});
