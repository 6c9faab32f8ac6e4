// Migration policies per VM group (KubeVirt's MigrationPolicy, with Nova's settings): which of
// temporal.yaml's migration.policies selects a VM, and the settings its migration runs with. Pure
// functions of the config and the VM's xapi tags and other_config, as Nova's migration.py policy
// functions are, so the workflow can call them (deterministic) and the unit tests need no stack.
//
// Matching is KubeVirt's (pkg/virt-controller/watch/migration/migrationpolicy.go, matchPolicy):
// a policy selects a VM when every term of its selector holds; among those, the one with the most
// terms wins (the most specific); a tie goes to the name that sorts first, an arbitrary but
// deterministic choice. A policy's settings override migration.* field by field; the request's
// own options (the workflow input's `options`) override both.
import type { FerryConfig, MigrationPolicyConfig } from '../../lib/config';
import type { AppliedMigrationPolicy, LiveMigrationRequest, MigrationSettings } from '../../workflows/definitions';

/** What a policy selects on, as the source's XenAPI holds it for the VM. */
export interface VmLabels {
  /** VM.tags (a set of strings in xapi). */
  tags: string[];
  /** The VM.other_config entries whose keys some policy names (the others are not read into history). */
  otherConfig: Record<string, string>;
}

/** The reason shown when no policy selects the VM. */
export const NO_POLICY_MATCHED = 'default: no policy matched';

/** An other_config term: KEY (present) or KEY=VALUE, split at the first "=". */
function otherConfigTerm(term: string): { key: string; value: string | null } {
  const at = term.indexOf('=');
  return at < 0 ? { key: term, value: null } : { key: term.slice(0, at), value: term.slice(at + 1) };
}

/** The other_config keys the policies select on: all a source check needs to read. */
export function policyOtherConfigKeys(policies: readonly MigrationPolicyConfig[] | undefined): string[] {
  const keys = new Set<string>();
  for (const p of policies ?? []) for (const term of p.selector.otherConfig) keys.add(otherConfigTerm(term).key);
  return [...keys].sort();
}

/** The selector's terms in words ("tag database", "other_config tier=db", "other_config backup"), or null when one fails. */
export function matchedTerms(policy: MigrationPolicyConfig, labels: VmLabels): string[] | null {
  const terms: string[] = [];
  for (const tag of policy.selector.tags) {
    if (!labels.tags.includes(tag)) return null;
    terms.push(`tag ${tag}`);
  }
  for (const term of policy.selector.otherConfig) {
    const { key, value } = otherConfigTerm(term);
    const actual = Object.prototype.hasOwnProperty.call(labels.otherConfig, key) ? labels.otherConfig[key] : undefined;
    if (actual === undefined || (value !== null && actual !== value)) return null;
    terms.push(`other_config ${term}`);
  }
  return terms;
}

export interface PolicyMatch {
  policy: MigrationPolicyConfig;
  terms: string[];
}

/** Every policy that selects the VM, best first: most terms, then name (KubeVirt's order). */
export function matchingPolicies(policies: readonly MigrationPolicyConfig[] | undefined, labels: VmLabels): PolicyMatch[] {
  const matches: PolicyMatch[] = [];
  for (const policy of policies ?? []) {
    const terms = matchedTerms(policy, labels);
    if (terms) matches.push({ policy, terms });
  }
  return matches.sort((a, b) => b.terms.length - a.terms.length || (a.policy.name < b.policy.name ? -1 : a.policy.name > b.policy.name ? 1 : 0));
}

/** migration.* with a policy's overrides, field by field. */
export function policySettings(migration: FerryConfig['migration'], policy: MigrationPolicyConfig | null): MigrationSettings {
  const ac = migration.autoConverge;
  const over = policy?.autoConverge ?? {};
  return {
    completionTimeoutPerGiB: policy?.completionTimeoutPerGiB ?? migration.completionTimeoutPerGiB,
    timeoutAction: policy?.timeoutAction ?? migration.timeoutAction,
    progressTimeout: policy?.progressTimeout ?? migration.progressTimeout,
    autoConverge: {
      enabled: over.enabled ?? ac.enabled,
      capSteps: [...(over.capSteps ?? ac.capSteps)],
      stepSeconds: over.stepSeconds ?? ac.stepSeconds,
      forceCompleteAfterLastStep: over.forceCompleteAfterLastStep ?? ac.forceCompleteAfterLastStep,
    },
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * The policy a migration applies and the settings it runs with. `labels` is the source agent's
 * read of the VM (undefined for runs from before policies: no policy, migration.* as before).
 */
export function resolveMigrationPolicy(
  migration: FerryConfig['migration'],
  labels: VmLabels | undefined,
  options: LiveMigrationRequest['options'] = {},
): AppliedMigrationPolicy {
  const [best, ...others] = labels ? matchingPolicies(migration.policies, labels) : [];
  const settings = policySettings(migration, best?.policy ?? null);
  let reason = NO_POLICY_MATCHED;
  if (best) {
    reason = `matched ${best.terms.join(' and ')}`;
    if (others.length > 0) {
      const lost = others.map((o) =>
        o.terms.length < best.terms.length
          ? `${o.policy.name} (${plural(o.terms.length, 'term')}: fewer)`
          : `${o.policy.name} (${plural(o.terms.length, 'term')}: same number, its name sorts after ${best.policy.name})`,
      );
      reason += `; also matched ${lost.join(', ')}`;
    }
  }
  // The request's own options are the most specific of all: they win over any policy.
  const requested: string[] = [];
  if (options.completionTimeoutPerGiB !== undefined) {
    settings.completionTimeoutPerGiB = options.completionTimeoutPerGiB;
    requested.push('completionTimeoutPerGiB');
  }
  if (options.timeoutAction !== undefined) {
    settings.timeoutAction = options.timeoutAction;
    requested.push('timeoutAction');
  }
  if (options.progressTimeout !== undefined) {
    settings.progressTimeout = options.progressTimeout;
    requested.push('progressTimeout');
  }
  if (options.autoConverge !== undefined) {
    settings.autoConverge.enabled = options.autoConverge;
    requested.push('autoConverge');
  }
  if (requested.length > 0) reason += `; the request's options set ${requested.join(', ')}`;
  return { name: best?.policy.name ?? null, reason, settings };
}
