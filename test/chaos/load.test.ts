// The load test, small (default test command): 20 migrations at once among 6 hosts, limits 1
// outbound / 2 inbound per host / 5 in the cluster. The full one (50 among 10) is load.chaos.ts.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startStack, type Stack } from '../../lib/stack';
import { LOAD_LIMITS, loadStackOptions, runLoad, SMALL_LOAD } from './load';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack(loadStackOptions(SMALL_LOAD));
});

afterAll(async () => {
  await stack?.stop();
});

it('20 migrations at once among 6 hosts stay within the limits, end clean, served oldest first', { timeout: 300_000 }, async () => {
  const report = await runLoad(stack, SMALL_LOAD, (line) => console.log(`load: ${line}`));
  console.log(`load (small): limits ${JSON.stringify(LOAD_LIMITS)}\n${JSON.stringify(report, null, 2)}`);
  expect(report.problems).toEqual([]);
  expect(report.fifoPairsChecked).toBeGreaterThan(0); // the order was checked, not skipped
});
