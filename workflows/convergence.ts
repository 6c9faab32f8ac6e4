// The convergence policy of a live migration as a pure function of the transfer's progress and the
// clock, as Nova's libvirt driver keeps its decisions (nova/virt/libvirt/migration.py). xapi tells
// only task.progress (0..1), so non-convergence is read from the estimated time left: a transfer
// that converges sees it fall about as fast as the clock runs; pre-copy chasing a guest that dirties
// memory as fast as the link sends sees it stand still or grow.
import type { TransferProgress } from './definitions';

export interface ConvergencePolicy {
  /** Seconds the whole transfer may take (0: no limit). */
  completionSeconds: number;
  timeoutAction: 'abort' | 'force_complete';
  /** Seconds without any progress before the migration is aborted (0: no limit). */
  progressTimeoutSeconds: number;
  autoConverge: boolean;
  /** vCPU caps (percent of one CPU) applied one after the other while pre-copy does not converge. */
  capSteps: readonly number[];
  stepSeconds: number;
  forceCompleteAfterLastStep: boolean;
}

export interface ConvergenceState {
  startedAt: number;
  /** When the task's progress last grew. */
  lastAdvanceAt: number;
  lastFraction: number;
  /** When convergence was last judged, and the estimate of time left then. */
  lastJudgedAt: number;
  etaWhenJudged: number | null;
  /** Index of the next cap step; capSteps.length once force-complete was the last step. */
  nextStep: number;
  forced: boolean;
  forceRequested: boolean;
}

export type ConvergenceAction =
  | { kind: 'wait'; untilMs: number }
  | { kind: 'cap'; cap: number; why: string }
  | { kind: 'force_complete'; why: string }
  | { kind: 'abort'; why: string; cause: 'CompletionTimeout' | 'ProgressTimeout' };

export function startConvergence(now: number): ConvergenceState {
  return { startedAt: now, lastAdvanceAt: now, lastFraction: 0, lastJudgedAt: now, etaWhenJudged: null, nextStep: 0, forced: false, forceRequested: false };
}

/** Folds a progress report into the state: only a growing fraction counts as progress. */
export function observe(state: ConvergenceState, p: TransferProgress, now: number): ConvergenceState {
  if (p.fraction <= state.lastFraction) return state;
  return { ...state, lastFraction: p.fraction, lastAdvanceAt: now };
}

/**
 * Whether pre-copy converges: over the last window the estimated time left fell by at least half
 * the time that passed. Unknown (no estimate yet) counts as converging.
 */
export function converging(etaBefore: number | null, etaNow: number | null, windowSeconds: number): boolean {
  if (etaBefore === null) return true;
  if (etaNow === null) return false;
  return etaNow <= etaBefore - windowSeconds / 2;
}

/** What to do now, and the state after doing it. */
export function nextAction(
  state: ConvergenceState,
  p: TransferProgress | null,
  now: number,
  policy: ConvergencePolicy,
): { action: ConvergenceAction; state: ConvergenceState } {
  const s = { ...state };
  if (s.forceRequested && !s.forced) {
    s.forced = true;
    return { action: { kind: 'force_complete', why: 'requested by an operator' }, state: s };
  }
  const completionAt = policy.completionSeconds > 0 ? s.startedAt + policy.completionSeconds * 1000 : Infinity;
  if (now >= completionAt && !s.forced) {
    const why = `completion timeout: ${Math.round(policy.completionSeconds)} s`;
    if (policy.timeoutAction === 'force_complete') {
      s.forced = true;
      return { action: { kind: 'force_complete', why }, state: s };
    }
    return { action: { kind: 'abort', why, cause: 'CompletionTimeout' }, state: s };
  }
  const stalledAt = policy.progressTimeoutSeconds > 0 ? s.lastAdvanceAt + policy.progressTimeoutSeconds * 1000 : Infinity;
  if (now >= stalledAt) {
    const why = `progress timeout: the migration task did not progress for ${policy.progressTimeoutSeconds} s`;
    return { action: { kind: 'abort', why, cause: 'ProgressTimeout' }, state: s };
  }
  const stepsLeft = policy.autoConverge && !s.forced && s.nextStep <= policy.capSteps.length;
  const judgeAt = stepsLeft ? s.lastJudgedAt + policy.stepSeconds * 1000 : Infinity;
  if (now >= judgeAt && p?.transferPhase === 'precopy') {
    const ok = converging(s.etaWhenJudged, p.etaSeconds, (now - s.lastJudgedAt) / 1000);
    s.lastJudgedAt = now;
    s.etaWhenJudged = p.etaSeconds;
    if (!ok) {
      const cap = policy.capSteps[s.nextStep];
      s.nextStep++;
      if (cap !== undefined) return { action: { kind: 'cap', cap, why: 'auto-converge: pre-copy does not converge' }, state: s };
      if (policy.forceCompleteAfterLastStep) {
        s.forced = true;
        return { action: { kind: 'force_complete', why: 'auto-converge: the last vCPU cap did not make pre-copy converge' }, state: s };
      }
    }
    return nextAction(s, p, now, policy);
  }
  // Not yet in pre-copy (or no report yet): judge again one window later.
  const nextJudge = now >= judgeAt ? now + policy.stepSeconds * 1000 : judgeAt;
  return { action: { kind: 'wait', untilMs: Math.min(completionAt, stalledAt, nextJudge) }, state: s };
}
