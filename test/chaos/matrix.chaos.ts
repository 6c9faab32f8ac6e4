// The full chaos matrix (npm run chaos): every phase x fault on one stack. Each cell is a test;
// the table and the JSON lines (<stack workDir>/chaos-matrix.jsonl) come out at the end.
// CHAOS_PHASES / CHAOS_FAULTS (comma-separated) run a part of it; CHAOS_END_BOUND_S and
// CHAOS_DOWN_BOUND_S change the bounds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../lib/stack';
import { allCells, chaosStackOptions, DOWN_BOUND_MS, END_BOUND_MS, matrixTable, recordCell, runCell, type CellResult } from './harness';

const only = (name: string) => process.env[name]?.split(',').map((s) => s.trim()).filter(Boolean);
const phases = only('CHAOS_PHASES');
const faults = only('CHAOS_FAULTS');
const cells = allCells().filter((c) => (!phases || phases.includes(c.phase)) && (!faults || faults.includes(c.fault)));

let stack: Stack;
const results: CellResult[] = [];
const started = Date.now();

beforeAll(async () => {
  stack = await startStack(chaosStackOptions());
  console.log(`chaos matrix: ${cells.length} cells; a run must end within ${END_BOUND_MS / 1000} s of its fault (a crashed destination stays down up to ${DOWN_BOUND_MS / 1000} s first); logs in ${stack.workDir}/logs`);
});

afterAll(async () => {
  if (results.length) {
    console.log(`\nchaos matrix (${((Date.now() - started) / 1000).toFixed(0)} s in all; cell time from the fault to the end of the checks):\n${matrixTable(results)}\n`);
    for (const r of results.filter((x) => !x.ok)) console.log(`${r.phase} x ${r.fault}: ${r.problems.join('; ')}${r.notes.length ? ` [${r.notes.join('; ')}]` : ''}`);
    if (stack) console.log(`\nJSON lines: ${stack.workDir}/chaos-matrix.jsonl`);
  }
  await stack?.stop();
});

describe('chaos matrix: phase x fault', () => {
  for (const { phase, fault } of cells) {
    it(`${phase} x ${fault}`, { timeout: END_BOUND_MS + DOWN_BOUND_MS + 240_000 }, async () => {
      const result = await runCell(stack, phase, fault);
      results.push(result);
      recordCell(stack, result);
      console.log(`${phase} x ${fault}: ${result.ok ? 'ok' : 'FAIL'} ${result.outcome} ${result.seconds}s ${JSON.stringify({ problems: result.problems, notes: result.notes })}`);
      expect(result.problems).toEqual([]);
    });
  }
});
