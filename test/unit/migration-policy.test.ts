// Migration policies per VM group: KubeVirt's matching (most selector terms, then name), the
// settings they override, the request's options on top, and temporal.yaml's errors.
import { describe, expect, it } from 'vitest';
import {
  NO_POLICY_MATCHED,
  matchedTerms,
  matchingPolicies,
  policyOtherConfigKeys,
  resolveMigrationPolicy,
  type VmLabels,
} from '../../activities/conductor/migration-policy';
import { parseConfig, type FerryConfig } from '../../lib/config';

const host = { name: 'xen-a', pool: 'p', xenapiUrl: 'http://127.0.0.1:1/', passwordEnv: 'XEN_PW' };

function migration(policies: unknown[], extra: Record<string, unknown> = {}): FerryConfig['migration'] {
  return parseConfig({ hosts: [host], migration: { policies, ...extra } }).migration;
}

function configError(policies: unknown[]): string {
  try {
    migration(policies);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('the config was accepted');
}

const vm = (tags: string[], otherConfig: Record<string, string> = {}): VmLabels => ({ tags, otherConfig });

const database = { name: 'database', selector: { tags: ['database'] }, completionTimeoutPerGiB: 3200, autoConverge: { enabled: false } };
const batch = {
  name: 'batch',
  selector: { tags: ['batch'] },
  completionTimeoutPerGiB: 120,
  timeoutAction: 'force_complete',
  autoConverge: { enabled: true, capSteps: [50, 10], stepSeconds: 2 },
};

describe('which policy selects a VM', () => {
  it('a policy selects a VM only when every tag and other_config term holds', () => {
    const [policy] = migration([{ name: 'p', selector: { tags: ['a', 'b'], otherConfig: ['tier=db', 'backup'] } }]).policies;
    const p = policy as NonNullable<typeof policy>;
    expect(matchedTerms(p, vm(['a', 'b'], { tier: 'db', backup: '' }))).toEqual(['tag a', 'tag b', 'other_config tier=db', 'other_config backup']);
    expect(matchedTerms(p, vm(['a'], { tier: 'db', backup: 'yes' }))).toBeNull();
    expect(matchedTerms(p, vm(['a', 'b'], { tier: 'web', backup: 'yes' }))).toBeNull();
    expect(matchedTerms(p, vm(['a', 'b'], { tier: 'db' }))).toBeNull();
  });

  it('KEY=VALUE splits at the first "=": the value may hold more', () => {
    const [p] = migration([{ name: 'p', selector: { otherConfig: ['XenCenter.CustomFields.sla=a=b'] } }]).policies;
    expect(matchedTerms(p as NonNullable<typeof p>, vm([], { 'XenCenter.CustomFields.sla': 'a=b' }))).toEqual(['other_config XenCenter.CustomFields.sla=a=b']);
    expect(matchedTerms(p as NonNullable<typeof p>, vm([], { 'XenCenter.CustomFields.sla': 'a' }))).toBeNull();
  });

  it('the most specific selector wins (KubeVirt: most matching terms)', () => {
    const policies = migration([
      { name: 'a-broad', selector: { tags: ['database'] } },
      { name: 'z-narrow', selector: { tags: ['database'], otherConfig: ['tier=gold'] } },
    ]).policies;
    expect(matchingPolicies(policies, vm(['database'], { tier: 'gold' })).map((m) => m.policy.name)).toEqual(['z-narrow', 'a-broad']);
    expect(matchingPolicies(policies, vm(['database'], { tier: 'silver' })).map((m) => m.policy.name)).toEqual(['a-broad']);
  });

  it('a tie goes to the name that sorts first, whatever the order in the file', () => {
    const policies = migration([
      { name: 'web', selector: { tags: ['web'] } },
      { name: 'batch', selector: { tags: ['batch'] } },
    ]).policies;
    const applied = resolveMigrationPolicy(migration(policies), vm(['web', 'batch']));
    expect(applied.name).toBe('batch');
    expect(applied.reason).toBe('matched tag batch; also matched web (1 term: same number, its name sorts after batch)');
  });

  it('no policy: migration.* applies, and the reason says so', () => {
    const m = migration([database, batch]);
    const applied = resolveMigrationPolicy(m, vm(['web']));
    expect(applied).toEqual({
      name: null,
      reason: NO_POLICY_MATCHED,
      settings: { completionTimeoutPerGiB: 800, timeoutAction: 'abort', progressTimeout: 150, autoConverge: { enabled: true, capSteps: [60, 30, 10], stepSeconds: 5, forceCompleteAfterLastStep: true } },
    });
    expect(NO_POLICY_MATCHED).toBe('default: no policy matched');
    // A run from before policies: its source check answered no labels.
    expect(resolveMigrationPolicy(m, undefined).name).toBeNull();
  });
});

describe('the settings a policy gives', () => {
  it('a database VM: a longer completion timeout and no auto-converge; the rest from migration.*', () => {
    const applied = resolveMigrationPolicy(migration([database, batch]), vm(['database']));
    expect(applied.name).toBe('database');
    expect(applied.reason).toBe('matched tag database');
    expect(applied.settings).toEqual({
      completionTimeoutPerGiB: 3200,
      timeoutAction: 'abort',
      progressTimeout: 150,
      autoConverge: { enabled: false, capSteps: [60, 30, 10], stepSeconds: 5, forceCompleteAfterLastStep: true },
    });
  });

  it('a batch VM: a short timeout that force-completes, auto-converge with its own steps', () => {
    const applied = resolveMigrationPolicy(migration([database, batch], { autoConverge: { enabled: false } }), vm(['batch']));
    expect(applied.settings).toEqual({
      completionTimeoutPerGiB: 120,
      timeoutAction: 'force_complete',
      progressTimeout: 150,
      autoConverge: { enabled: true, capSteps: [50, 10], stepSeconds: 2, forceCompleteAfterLastStep: true },
    });
  });

  it("the request's own options win over the policy, and the reason says which", () => {
    const applied = resolveMigrationPolicy(migration([database]), vm(['database']), { autoConverge: true, progressTimeout: 30 });
    expect(applied.settings.autoConverge.enabled).toBe(true);
    expect(applied.settings.progressTimeout).toBe(30);
    expect(applied.settings.completionTimeoutPerGiB).toBe(3200);
    expect(applied.reason).toBe("matched tag database; the request's options set progressTimeout, autoConverge");
  });

  it('a source check reads only the other_config keys some policy names', () => {
    const m = migration([
      { name: 'a', selector: { otherConfig: ['tier=db', 'backup'] } },
      { name: 'b', selector: { tags: ['x'], otherConfig: ['tier=web'] } },
    ]);
    expect(policyOtherConfigKeys(m.policies)).toEqual(['backup', 'tier']);
    expect(policyOtherConfigKeys(undefined)).toEqual([]);
  });
});

describe('temporal.yaml: migration.policies', () => {
  it('defaults to no policies', () => {
    expect(parseConfig({ hosts: [host] }).migration.policies).toEqual([]);
  });

  it('refuses a policy that selects nothing, naming the field', () => {
    expect(configError([{ name: 'all', selector: {} }])).toMatch(/migration\.policies\[0\]\.selector: select by at least one tag or other_config entry/);
  });

  it('refuses duplicate names, bad names and bad other_config terms', () => {
    const message = configError([
      { name: 'db', selector: { tags: ['x'] } },
      { name: 'db', selector: { tags: ['y'] } },
      { name: 'Bad Name', selector: { otherConfig: ['=value'] } },
    ]);
    expect(message).toContain('migration.policies[1].name: duplicate policy name "db"');
    expect(message).toContain('migration.policies[2].name: must be lowercase letters');
    expect(message).toContain('migration.policies[2].selector.otherConfig[0]: must be KEY or KEY=VALUE');
  });

  it('refuses a per-migration bandwidth: xapi has no such option', () => {
    expect(configError([{ name: 'slow', selector: { tags: ['x'] }, bandwidthMiBps: 100 }])).toMatch(
      /migration\.policies\[0\]\.bandwidthMiBps: xapi has no per-migration bandwidth limit: VM\.migrate_send and VM\.pool_migrate read only the options force, copy, compress and network/,
    );
  });

  it('refuses an unknown setting and a bad value, naming the field', () => {
    const message = configError([{ name: 'p', selector: { tags: ['x'] }, timeoutAction: 'explode', autoConverge: { capSteps: [] }, downtime: 3 }]);
    expect(message).toContain('migration.policies[0].timeoutAction');
    expect(message).toContain('migration.policies[0].autoConverge.capSteps: list at least one cap');
    expect(message).toMatch(/migration\.policies\[0\]: Unrecognized key.*downtime/);
  });
});
