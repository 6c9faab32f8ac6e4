// What every benchmark prints: one JSON line per figure, with the machine it was taken on (cores,
// CPU model, Node version, the git commit and whether the tree had local changes), and the few
// statistics the benchmarks share. bench/run.ts passes the machine to its children in
// FERRY_BENCH_MACHINE, so a whole run names one commit.
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { projectRoot } from '../lib/paths';

export interface Machine {
  cpus: number;
  cpuModel: string;
  memGiB: number;
  node: string;
  commit: string;
  /** The 1-minute load average when the figure was taken: above the core count, the figures are noisy. */
  load1?: number;
}

function gitCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: projectRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: projectRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return dirty ? `${head}-dirty` : head;
  } catch {
    return 'unknown';
  }
}

let cached: Machine | null = null;

export function machine(): Machine {
  if (!cached) {
    const inherited = process.env.FERRY_BENCH_MACHINE;
    cached = inherited
      ? (JSON.parse(inherited) as Machine)
      : {
          cpus: cpus().length,
          cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
          memGiB: Math.round(totalmem() / 2 ** 30),
          node: process.version,
          commit: gitCommit(),
        };
  }
  return { ...cached, load1: +(loadavg()[0] ?? 0).toFixed(2) };
}

/** Prints one figure: `{"bench": name, ...fields, ...machine}`. */
export function emit(bench: string, fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ bench, ...fields, ...machine() })}\n`);
}

/** The p-th percentile (0..100) by nearest rank; NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

/** Rounded to `digits` decimals (figures are read by people: no 17-digit floats). */
export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(values: readonly number[], digits = 1): Summary {
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
  return {
    n: values.length,
    min: round(Math.min(...values), digits),
    p50: round(percentile(values, 50), digits),
    p95: round(percentile(values, 95), digits),
    p99: round(percentile(values, 99), digits),
    max: round(Math.max(...values), digits),
    mean: round(mean, digits),
  };
}

/** Runs a benchmark's main(): exit 0 when it resolves, 1 (with the error on stderr) when it throws. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
