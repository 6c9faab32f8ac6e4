// A representative part of the chaos matrix (test/chaos/matrix.chaos.ts, `npm run chaos`) in the
// default test command: the same cell runner, four cells on one stack.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../lib/stack';
import { chaosStackOptions, DOWN_BOUND_MS, END_BOUND_MS, matrixTable, recordCell, runCell, type CellResult, type ChaosFault, type ChaosPhase } from './harness';

const CELLS: [ChaosPhase, ChaosFault][] = [
  ['precopy', 'kill-source-agent'],
  ['stop_and_copy', 'kill-conductor'],
  ['precopy', 'dest-crash'],
  ['rolling_back', 'kill-dest-agent'],
];

let stack: Stack;
const results: CellResult[] = [];

beforeAll(async () => {
  stack = await startStack(chaosStackOptions());
});

afterAll(async () => {
  if (results.length) console.log(`\nchaos subset:\n${matrixTable(results)}\n`);
  await stack?.stop();
});

describe('chaos subset', () => {
  for (const [phase, fault] of CELLS) {
    it(`${phase} x ${fault}`, { timeout: END_BOUND_MS + DOWN_BOUND_MS + 240_000 }, async () => {
      const result = await runCell(stack, phase, fault);
      results.push(result);
      recordCell(stack, result);
      expect(result.problems, JSON.stringify(result.notes)).toEqual([]);
    });
  }
});
