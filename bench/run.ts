// npm run bench: every benchmark, one after the other, each a child process of its own (each starts
// and stops its own stack). Its JSON lines go to stdout, each with the machine (a benchmark that does
// not add it, bench/precopy.ts, gets it here); anything else a benchmark prints (tables) goes to
// stderr. A benchmark that fails, or runs past its time limit, fails the run, after the others ran.
// The last line is the run itself: each benchmark's seconds and the total, against a 15-minute budget.
//   npm run bench [-- --only overhead,scheduler] [-- --skip history-events]
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { projectRoot } from '../lib/paths';
import { emit, machine, round } from './report';

/** In order; a file that does not exist (yet) is skipped. Limits in seconds, on 2 busy cores. */
const BENCHMARKS: { name: string; args?: string[]; limitS: number }[] = [
  { name: 'scheduler', limitS: 120 },
  { name: 'precopy', limitS: 120 },
  { name: 'overhead', limitS: 300 },
  { name: 'profile', limitS: 180 },
  { name: 'concurrency', limitS: 180 },
  { name: 'history-events', limitS: 300 },
  { name: 'api', limitS: 300 },
  { name: 'hosts-scale', limitS: 720 },
  { name: 'drain', limitS: 180 },
  { name: 'cold-migration', limitS: 300 },
  { name: 'qemu-precopy', limitS: 300 },
  { name: 'qemu-live', limitS: 300 },
];

const BUDGET_S = 900;

function runOne(name: string, args: string[], limitS: number, env: NodeJS.ProcessEnv): Promise<{ ok: boolean; seconds: number; lines: number; why?: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'bench', `${name}.ts`), ...args], {
      cwd: projectRoot,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let lines = 0;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    }, limitS * 1000);
    const fields = machine();
    createInterface({ input: child.stdout }).on('line', (line) => {
      let figure: Record<string, unknown> | null = null;
      try {
        const parsed: unknown = JSON.parse(line);
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) figure = parsed as Record<string, unknown>;
      } catch {
        // not a figure
      }
      if (!figure) {
        process.stderr.write(`${line}\n`);
        return;
      }
      lines++;
      const { load1: _load1, ...known } = fields;
      process.stdout.write(`${JSON.stringify({ ...figure, ...Object.fromEntries(Object.entries(known).filter(([k]) => !(k in figure))) })}\n`);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const seconds = round((performance.now() - started) / 1000, 1);
      const ok = code === 0 && !timedOut;
      resolve({ ok, seconds, lines, why: ok ? undefined : timedOut ? `over its ${limitS} s limit` : `exit ${code ?? signal}` });
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: 'string' }, skip: { type: 'string' } } });
  const only = values.only?.split(',');
  const skip = values.skip?.split(',') ?? [];
  const { load1: _load1, ...fixed } = machine();
  const env = { ...process.env, FERRY_BENCH_MACHINE: JSON.stringify(fixed) };
  const started = performance.now();
  const seconds: Record<string, number> = {};
  const failed: string[] = [];
  const missing: string[] = [];
  for (const b of BENCHMARKS) {
    if ((only && !only.includes(b.name)) || skip.includes(b.name)) continue;
    if (!existsSync(join(projectRoot, 'bench', `${b.name}.ts`))) {
      missing.push(b.name);
      continue;
    }
    process.stderr.write(`bench: ${b.name}\n`);
    const result = await runOne(b.name, b.args ?? [], b.limitS, env);
    seconds[b.name] = result.seconds;
    if (!result.ok) failed.push(`${b.name} (${result.why})`);
    else if (result.lines === 0) failed.push(`${b.name} (printed no figure)`);
    process.stderr.write(`bench: ${b.name} ${result.ok ? 'done' : `FAILED: ${result.why}`} in ${result.seconds} s\n`);
  }
  const totalS = round((performance.now() - started) / 1000, 1);
  emit('run', { seconds, totalS, budgetS: BUDGET_S, withinBudget: totalS < BUDGET_S, notPresent: missing, failed });
  if (failed.length > 0) {
    process.stderr.write(`bench: failed: ${failed.join(', ')}\n`);
    process.exit(1);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
