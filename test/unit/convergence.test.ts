import { describe, expect, it } from 'vitest';
import { converging, nextAction, observe, startConvergence, type ConvergencePolicy, type ConvergenceState } from '../../workflows/convergence';
import type { TransferProgress } from '../../workflows/definitions';

const policy: ConvergencePolicy = {
  completionSeconds: 100,
  timeoutAction: 'abort',
  progressTimeoutSeconds: 30,
  autoConverge: true,
  capSteps: [60, 30],
  stepSeconds: 5,
  forceCompleteAfterLastStep: true,
};

function progress(fraction: number, etaSeconds: number | null, transferPhase: TransferProgress['transferPhase'] = 'precopy'): TransferProgress {
  return {
    fraction,
    memoryTotalBytes: 100,
    memoryProcessedBytes: fraction * 100,
    memoryRemainingBytes: 100 - fraction * 100,
    diskTotalBytes: 0,
    diskProcessedBytes: 0,
    diskRemainingBytes: 0,
    fractionPerSecond: 0.01,
    etaSeconds,
    transferPhase,
  };
}

/** Runs the policy at each second of `etas` (estimated seconds left), returning the actions taken. */
function run(etas: (number | null)[], rules = policy): string[] {
  let state: ConvergenceState = startConvergence(0);
  const actions: string[] = [];
  etas.forEach((eta, second) => {
    const now = second * 1000;
    const p = progress(Math.min(0.99, second / 1000 + 0.01), eta);
    state = observe(state, p, now);
    const { action, state: next } = nextAction(state, p, now, rules);
    state = next;
    if (action.kind !== 'wait') actions.push(`${second}:${action.kind}${action.kind === 'cap' ? action.cap : ''}`);
  });
  return actions;
}

describe('convergence policy', () => {
  it('judges convergence from the estimate of time left', () => {
    expect(converging(null, 10, 5)).toBe(true);
    expect(converging(20, 15, 5)).toBe(true);
    expect(converging(20, 18, 5)).toBe(false);
    expect(converging(20, 25, 5)).toBe(false);
    expect(converging(20, null, 5)).toBe(false);
  });

  it('leaves a converging transfer alone', () => {
    // The estimate falls one second per second.
    expect(run(Array.from({ length: 40 }, (_, i) => 60 - i))).toEqual([]);
  });

  it('caps step by step, then force-completes, when the estimate does not fall', () => {
    expect(run(Array.from({ length: 40 }, (_, i) => 30 + i))).toEqual(['10:cap60', '15:cap30', '20:force_complete']);
  });

  it('stops capping once the transfer converges again', () => {
    const etas = Array.from({ length: 40 }, (_, i) => (i < 10 ? 30 + i : 40 - 2 * (i - 10)));
    expect(run(etas)).toEqual(['10:cap60']);
  });

  it('never judges before the first window or outside pre-copy', () => {
    let state = startConvergence(0);
    expect(nextAction(state, progress(0.1, 10), 1000, policy).action).toEqual({ kind: 'wait', untilMs: 5000 });
    state = nextAction(state, progress(0.9, 99, 'stop_and_copy'), 6000, policy).state;
    expect(state.etaWhenJudged).toBeNull();
  });

  it('aborts after the completion timeout, or force-completes when that is the action', () => {
    const state = observe(startConvergence(0), progress(0.5, 1), 99_000);
    expect(nextAction(state, progress(0.5, 1), 100_000, policy).action).toEqual({ kind: 'abort', why: 'completion timeout: 100 s', cause: 'CompletionTimeout' });
    const forcing = { ...policy, timeoutAction: 'force_complete' as const };
    const forced = nextAction(state, progress(0.5, 1), 100_000, forcing);
    expect(forced.action.kind).toBe('force_complete');
    expect(forced.state.forced).toBe(true);
    // Once forced, the completion timeout does not fire again.
    expect(nextAction(forced.state, progress(0.5, 1), 101_000, forcing).action.kind).toBe('wait');
  });

  it('aborts when the task does not progress for the progress timeout', () => {
    let state = observe(startConvergence(0), progress(0.2, 10), 1000);
    state = observe(state, progress(0.2, 10), 20_000); // no growth: no progress
    expect(nextAction(state, progress(0.2, 10), 30_999, { ...policy, autoConverge: false }).action.kind).toBe('wait');
    expect(nextAction(state, progress(0.2, 10), 31_000, { ...policy, autoConverge: false }).action).toMatchObject({ kind: 'abort', cause: 'ProgressTimeout' });
  });

  it('force-completes once when an operator asks', () => {
    const state = { ...startConvergence(0), forceRequested: true };
    const first = nextAction(state, null, 0, policy);
    expect(first.action).toEqual({ kind: 'force_complete', why: 'requested by an operator' });
    expect(nextAction(first.state, null, 0, policy).action.kind).toBe('wait');
  });
});
