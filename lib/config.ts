// temporal.yaml: ferry's one configuration file, validated with zod.
// Secrets never live in the file: it names the environment variables that hold them.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const envVarName = z
  .string()
  .regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name (A-Z, 0-9, _)');

const hostPort = z
  .string()
  .regex(/^[^\s:]+:\d{1,5}$/, 'must be host:port, for example 127.0.0.1:7233');

const hostName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits and dashes (it names a task queue)');

const port = z.number().int().min(1).max(65535);

/** A network's xapi name_label. */
const networkLabel = z.string().trim().min(1, 'name a network by its xapi name_label');

// ---- driver qemu (issue 15): a host is an agent with a state directory on this machine ----------
/**
 * A QEMU host: its guests live under stateDir (guests/<uuid>/, disks/), their shared-storage images
 * under imagesDir (the same directory for the hosts of a pool that share storage), and what Nova's
 * [libvirt] section sets per compute node: post-copy and auto-converge permitted, bandwidth, the
 * downtime steps.
 */
export const QemuHostConfigSchema = z
  .object({
    stateDir: z.string().min(1),
    /** Where shared-storage images live; hosts of a pool naming the same directory share storage. Default <stateDir>/images. */
    imagesDir: z.string().min(1).optional(),
    /** Address the migration stream and NBD exports listen on. */
    listenHost: z.string().min(1).default('127.0.0.1'),
    /** Memory this host offers its guests, MiB. */
    memoryMiB: z.number().int().positive().default(2048),
    /** The CPU model it gives guests (Nova's cpu_models): a guest moves only to a host with the same. */
    cpuModel: z.string().min(1).default('qemu64'),
    /** Nova's live_migration_permit_post_copy. */
    permitPostCopy: z.boolean().default(false),
    /** Nova's live_migration_permit_auto_converge. */
    permitAutoConverge: z.boolean().default(true),
    /** Nova's live_migration_bandwidth, MiB/s (absent: QEMU's default). */
    bandwidthMiBps: z.number().positive().optional(),
    /** Nova's live_migration_downtime (ms), _downtime_steps and _downtime_delay (s per GiB). */
    downtimeMs: z.number().int().min(100).default(500),
    downtimeSteps: z.number().int().min(3).default(10),
    downtimeDelaySecondsPerGiB: z.number().int().min(3).default(75),
    /** The QEMU version the host reports instead of its binary's (tests of DestinationHypervisorTooOld). */
    reportedVersion: z.string().regex(/^\d+(\.\d+)*$/).optional(),
  })
  .strict();
export type QemuHostConfig = z.infer<typeof QemuHostConfigSchema>;

/**
 * A QEMU host has no XenAPI: its xenapiUrl and passwordEnv, when left out, are filled with values
 * nothing reads (qemu.invalid), so the rest of ferry keeps one host shape.
 */
const withoutXenApi = (h: unknown) =>
  typeof h === 'object' && h !== null && (h as { driver?: unknown }).driver === 'qemu'
    ? { xenapiUrl: 'http://qemu.invalid/', passwordEnv: 'FERRY_XENAPI_PASSWORD', ...h }
    : h;

export const HostConfigSchema = z.preprocess(
  withoutXenApi,
  z.object({
    name: hostName,
    pool: z.string().min(1),
    /** XenAPI XML-RPC endpoint of this host (or of its pool master). */
    xenapiUrl: z.url(),
    user: z.string().min(1).default('root'),
    passwordEnv: envVarName,
    /**
     * The network (its xapi name_label) whose PIF on this host receives migrations: passed to
     * host.migrate_receive and as VM.pool_migrate's `network` option. Absent: the pool's (pools.<pool>),
     * else the management PIF's network.
     */
    migrationNetwork: networkLabel.optional(),
    /** Only for simulated hosts: where the simulator's data plane and admin endpoint listen. */
    simulator: z
      .object({
        dataPort: port,
        adminPort: port,
        memoryMiB: z.number().int().positive().default(16384),
        cpuModel: z.string().default('Intel Xeon (simulated)'),
        productVersion: z.string().default('8.2.1'),
        platformVersion: z.string().default('3.4.0'),
      })
      .strict()
      .optional(),
    /** Which hypervisor this host runs: xen (XenAPI; absent means xen) or qemu (QEMU processes driven over QMP). */
    driver: z.enum(['xen', 'qemu']).optional(),
    /** Only for driver qemu: what the agent needs to run guests as QEMU processes on this machine. */
    qemu: QemuHostConfigSchema.optional(),
  })
  .strict()
  .refine((h) => (h.driver === 'qemu') === (h.qemu !== undefined), { message: 'a host with driver qemu needs a qemu section, and only such a host has one', path: ['qemu'] }),
);

/** The hypervisor a host runs (driver absent: xen). */
export function hostDriver(host: { driver?: 'xen' | 'qemu' }): 'xen' | 'qemu' {
  return host.driver ?? 'xen';
}

/** Nova's hypervisor_type of a host: what InvalidHypervisorType names. */
export function hypervisorType(host: { driver?: 'xen' | 'qemu' }): 'xen' | 'QEMU' {
  return hostDriver(host) === 'qemu' ? 'QEMU' : 'xen';
}

/** One AES-256 key of the payload codec: 32 bytes, base64, in an environment variable or a file. */
const encryptionKeyShape = {
  /** Travels in each payload's metadata (encryption-key-id), so a reader knows which key to use. */
  keyId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1 to 64 letters, digits, dots, dashes or underscores'),
  keyEnv: envVarName.optional(),
  /** Absolute, or relative to the config file. */
  keyFile: z.string().min(1).optional(),
};
const oneKeySource = (k: { keyEnv?: string; keyFile?: string }) => (k.keyEnv === undefined) !== (k.keyFile === undefined);
const oneKeySourceMessage = { message: 'set exactly one of keyEnv and keyFile' };
export const EncryptionKeySchema = z.object(encryptionKeyShape).strict().refine(oneKeySource, oneKeySourceMessage);

/**
 * The payload codec (lib/payload-codec.ts): every payload a ferry client or worker sends to Temporal
 * is encrypted with the current key (keyId, keyEnv | keyFile); `previousKeys` only decrypt, so a key
 * can rotate. Absent: payloads travel in clear.
 */
export const EncryptionSchema = z
  .object({
    ...encryptionKeyShape,
    previousKeys: z.array(EncryptionKeySchema).default([]),
    /** Temporal's remote codec protocol (POST /encode, /decode) for the web UI and `temporal --codec-endpoint`. */
    codecServer: z
      .object({
        listen: hostPort,
        /** When set, a request must carry `Authorization: Bearer <token>` (or the bare token, as `temporal --codec-auth` sends it). */
        authTokenEnv: envVarName.optional(),
        /** Origins allowed by CORS; default: the dev server's web UI (temporal.uiPort on 127.0.0.1 and localhost). */
        corsOrigins: z.array(z.url()).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine(oneKeySource, oneKeySourceMessage)
  .superRefine((e, ctx) => {
    const ids = [e.keyId, ...e.previousKeys.map((k) => k.keyId)];
    ids.forEach((id, i) => {
      if (ids.indexOf(id) !== i) ctx.addIssue({ code: 'custom', path: ['previousKeys', i - 1, 'keyId'], message: `duplicate key id "${id}"` });
    });
  });

const keystoneRoles = z.array(z.string().min(1)).min(1, 'name at least one Keystone role');

/**
 * api.auth.mode keystone: each caller's X-Auth-Token is validated with Keystone (identity v3) using
 * ferry's own service user, and the token's roles map to ferry's operator and read roles.
 */
export const KeystoneAuthSchema = z
  .object({
    mode: z.literal('keystone'),
    /** Keystone's identity v3 endpoint, for example http://127.0.0.1:5000/v3 */
    url: z.url().refine((u) => /\/v3\/?$/.test(u), 'must be the identity v3 endpoint (ending in /v3)'),
    /** ferry's own credentials, used to validate callers' tokens (Keystone's policy wants the service or admin role). */
    service: z
      .object({
        user: z.string().min(1).default('ferry'),
        /** The environment variable that holds the service user's password. */
        passwordEnv: envVarName,
        project: z.string().min(1).default('service'),
        userDomain: z.string().min(1).default('Default'),
        projectDomain: z.string().min(1).default('Default'),
      })
      .strict(),
    /** Keystone role names granting each of ferry's roles (operator includes read). */
    roles: z
      .object({ operator: keystoneRoles.default(['admin']), read: keystoneRoles.default(['reader', 'member']) })
      .strict()
      .prefault({}),
    /** How long a validated token is trusted before Keystone is asked again (never past its expiry), seconds. */
    cacheSeconds: z.number().min(0).max(300).default(30),
    /** Each request to Keystone gets this long, ms; then the caller gets a 503. */
    timeoutMs: z.number().int().positive().default(5_000),
  })
  .strict();
export type KeystoneAuthConfig = z.infer<typeof KeystoneAuthSchema>;

/** The settings a migration policy may override; any left out fall back to migration.* (KubeVirt's MigrationPolicy spec). */
const policyOverrides = {
  /** Nova's live_migration_completion_timeout for this group, seconds per GiB of RAM plus moved disk; 0 disables. */
  completionTimeoutPerGiB: z.number().min(0).optional(),
  /** Nova's live_migration_timeout_action for this group. */
  timeoutAction: z.enum(['abort', 'force_complete']).optional(),
  /** Seconds without progress before the migration is aborted; 0 disables. */
  progressTimeout: z.number().min(0).optional(),
  autoConverge: z
    .object({
      enabled: z.boolean().optional(),
      capSteps: z.array(z.number().int().min(1).max(100)).min(1, 'list at least one cap').optional(),
      stepSeconds: z.number().positive().optional(),
      forceCompleteAfterLastStep: z.boolean().optional(),
    })
    .strict()
    .optional(),
  /**
   * KubeVirt's bandwidthPerMigration. Refused for Xen (see the refinement below): xapi's
   * VM.migrate_send and VM.pool_migrate take no bandwidth option.
   */
  bandwidthMiBps: z.number().positive().optional(),
};

/** Why bandwidthMiBps is refused: checked against xapi's ocaml/xapi/xapi_vm_migrate.ml. */
export const XEN_BANDWIDTH_REFUSAL =
  "xapi has no per-migration bandwidth limit: VM.migrate_send and VM.pool_migrate read only the options force, copy, compress and network (ocaml/xapi/xapi_vm_migrate.ml), so ferry cannot apply it to a Xen host; remove it (the migration network's link is the only limit)";

/**
 * A named migration policy (KubeVirt's MigrationPolicy): which VMs it selects, by xapi tags (every
 * listed tag present) and other_config entries ("KEY": present, "KEY=VALUE": that value), and the
 * settings it overrides for them. When several select a VM, the one whose selector has the most
 * terms wins; a tie goes to the name that sorts first (activities/conductor/migration-policy.ts).
 */
export const MigrationPolicySchema = z
  .object({
    name: z.string().regex(/^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/, 'must be lowercase letters, digits, dots, dashes or underscores (at most 63), as a KubeVirt policy name'),
    selector: z
      .object({
        /** xapi VM tags: every one must be on the VM. */
        tags: z.array(z.string().min(1, 'a tag cannot be empty')).default([]),
        /** other_config entries: "KEY" (present, any value) or "KEY=VALUE" (split at the first "="). */
        otherConfig: z.array(z.string().regex(/^[^=]+(=.*)?$/s, 'must be KEY or KEY=VALUE, with a non-empty KEY')).default([]),
      })
      .strict()
      .refine((s) => s.tags.length + s.otherConfig.length > 0, {
        message: 'select by at least one tag or other_config entry (migration.* already applies to every VM)',
      }),
    ...policyOverrides,
  })
  .strict();
export type MigrationPolicyConfig = z.infer<typeof MigrationPolicySchema>;

/**
 * A flavor as Nova has it (nova/objects/flavor.py): the size a resize gives a VM. The id is Nova's
 * flavorid (a string: openstackclient and the API take it or the name); memory in MiB, root disk in
 * GiB (0: the image's size, never grown), as `openstack flavor create --ram --disk --vcpus`.
 */
export const FlavorConfigSchema = z
  .object({
    name: z.string().min(1).max(255),
    // Nova's flavorid: letters, digits, '-', '_', '.' and spaces (flavors.py's valid_flavorid pattern).
    id: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[\w.\- ]*$/, "only letters, digits, '-', '_', '.' and spaces (Nova's flavor id)"),
    vcpus: z.number().int().positive(),
    /** Memory, MiB. */
    ram: z.number().int().positive(),
    /** Root disk, GiB; 0: the VM's disk keeps its size. */
    disk: z.number().int().min(0),
    description: z.string().max(65535).optional(),
  })
  .strict();
export type FlavorConfig = z.infer<typeof FlavorConfigSchema>;

export const ConfigSchema = z
  .object({
    temporal: z
      .object({
        address: hostPort.default('127.0.0.1:7233'),
        namespace: z.string().min(1).default('default'),
        /**
         * Where ferry keeps its housekeeping workflows (the host inventory), so that the web UI's list
         * of the main namespace shows operations a user started, not per-host entities.
         */
        systemNamespace: z.string().min(1).default('ferry-system'),
        uiPort: port.default(8233),
        /** Folder of the dev server's SQLite file, relative to the config file. */
        dataDir: z.string().default('.data'),
        apiKeyEnv: envVarName.optional(),
        tls: z
          .object({ certPathEnv: envVarName, keyPathEnv: envVarName, caPathEnv: envVarName.optional() })
          .strict()
          .optional(),
        encryption: EncryptionSchema.optional(),
      })
      .strict()
      .prefault({}),
    taskQueues: z
      .object({
        conductor: z.string().min(1).default('ferry-conductor'),
        hostPrefix: z.string().min(1).default('ferry-host-'),
      })
      .strict()
      .prefault({}),
    simulator: z
      .object({
        /** Link bandwidth between simulated hosts, MiB/s. */
        bandwidthMiBps: z.number().positive().default(256),
      })
      .strict()
      .prefault({}),
    hosts: z.array(HostConfigSchema).min(1, 'list at least one host'),
    /** Per pool (by the hosts' `pool`): the network whose PIFs receive migrations, unless a host names its own. */
    pools: z.record(z.string().min(1), z.object({ migrationNetwork: networkLabel }).strict()).default({}),
    /** The host inventory: each agent reports its host's state to a hostInventory entity workflow. */
    inventory: z
      .object({
        /** An agent reports at least this often (seconds), and at once when its host or VMs change. */
        reportSeconds: z.number().positive().default(60),
        /** A host whose agent has not reported for this long (seconds) counts as down (Nova's service_down_time). */
        staleSeconds: z.number().positive().default(180),
        /** How old (milliseconds) a reader's cached copy of the inventory may be before it lists it again. */
        cacheMs: z.number().int().min(0).default(1000),
      })
      .strict()
      .refine((i) => i.staleSeconds > i.reportSeconds, { message: 'staleSeconds must be longer than reportSeconds, or a live host counts as down between reports', path: ['staleSeconds'] })
      .prefault({}),
    migration: z
      .object({
        limits: z
          .object({
            outboundPerHost: z.number().int().positive().default(1),
            inboundPerHost: z.number().int().positive().default(2),
            cluster: z.number().int().positive().default(5),
          })
          .strict()
          .prefault({}),
        /** Nova's migrate_max_retries: -1 is unlimited. */
        maxRetries: z.number().int().min(-1).default(-1),
        /** Nova's live_migration_completion_timeout, seconds per GiB of RAM plus disk; 0 disables. */
        completionTimeoutPerGiB: z.number().min(0).default(800),
        /** Nova's live_migration_timeout_action. */
        timeoutAction: z.enum(['abort', 'force_complete']).default('abort'),
        /** Seconds without bytes moved before the migration is aborted; 0 disables. */
        progressTimeout: z.number().min(0).default(150),
        downtimeTargetMs: z.number().int().positive().default(500),
        /**
         * Seconds a host (its agent or its XenAPI) may stay away during one step before the migration
         * stops waiting for it: it ends in error and a cleanup workflow finishes when the host returns.
         */
        hostTimeout: z.number().positive().default(300),
        autoConverge: z
          .object({
            enabled: z.boolean().default(true),
            /** vCPU caps (percent of one vCPU) applied in turn while pre-copy does not converge. */
            capSteps: z.array(z.number().int().min(1).max(100)).default([60, 30, 10]),
            /** Seconds between steps. */
            stepSeconds: z.number().positive().default(5),
            /** Force-complete after the last step instead of waiting for the timeout. */
            forceCompleteAfterLastStep: z.boolean().default(true),
          })
          .strict()
          .prefault({}),
        /** Per VM group settings (KubeVirt's MigrationPolicy): see MigrationPolicySchema. */
        policies: z.array(MigrationPolicySchema).default([]),
        /**
         * Nova's resize_confirm_window: seconds after a resize or cold migration finished
         * (VERIFY_RESIZE) before it is confirmed by itself; 0 = never (the user confirms or reverts).
         */
        resizeConfirmWindowSeconds: z.number().int().min(0).default(0),
      })
      .strict()
      .superRefine((migration, ctx) => {
        const names = new Set<string>();
        migration.policies.forEach((policy, i) => {
          if (names.has(policy.name)) ctx.addIssue({ code: 'custom', path: ['policies', i, 'name'], message: `duplicate policy name "${policy.name}"` });
          names.add(policy.name);
          if (policy.bandwidthMiBps !== undefined) ctx.addIssue({ code: 'custom', path: ['policies', i, 'bandwidthMiBps'], message: XEN_BANDWIDTH_REFUSAL });
        });
      })
      .prefault({}),
    /** Nova's flavors: the sizes a resize gives a VM (GET /v2.1/flavors; POST .../action resize flavorRef). */
    flavors: z.array(FlavorConfigSchema).default([]),
    api: z
      .object({
        listen: hostPort.default('127.0.0.1:8774'),
        /** Who may call the API (api/auth.ts). Absent: static tokens from FERRY_READ_TOKEN and FERRY_OPERATOR_TOKEN. */
        auth: z
          .discriminatedUnion(
            'mode',
            [
              z
                .object({
                  mode: z.literal('token'),
                  readTokenEnv: envVarName.default('FERRY_READ_TOKEN'),
                  operatorTokenEnv: envVarName.default('FERRY_OPERATOR_TOKEN'),
                })
                .strict(),
              KeystoneAuthSchema,
              // Only when asked for (a local demo): every caller is an operator.
              z.object({ mode: z.literal('none') }).strict(),
            ],
            { error: 'mode must be one of token, keystone, none' },
          )
          .prefault({ mode: 'token' }),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.hosts.forEach((host, i) => {
      if (seen.has(host.name)) {
        ctx.addIssue({ code: 'custom', path: ['hosts', i, 'name'], message: `duplicate host name "${host.name}"` });
      }
      seen.add(host.name);
    });
    const flavorIds = new Set<string>();
    const flavorNames = new Set<string>();
    config.flavors.forEach((flavor, i) => {
      if (flavorIds.has(flavor.id)) ctx.addIssue({ code: 'custom', path: ['flavors', i, 'id'], message: `duplicate flavor id "${flavor.id}"` });
      if (flavorNames.has(flavor.name)) ctx.addIssue({ code: 'custom', path: ['flavors', i, 'name'], message: `duplicate flavor name "${flavor.name}"` });
      flavorIds.add(flavor.id);
      flavorNames.add(flavor.name);
    });
    for (const pool of Object.keys(config.pools)) {
      if (!config.hosts.some((h) => h.pool === pool)) {
        ctx.addIssue({ code: 'custom', path: ['pools', pool], message: `no host is in pool "${pool}" (hosts' pools: ${[...new Set(config.hosts.map((h) => h.pool))].join(', ')})` });
      }
    }
  });

export type FerryConfig = z.infer<typeof ConfigSchema>;
export type HostConfig = z.infer<typeof HostConfigSchema>;
export type EncryptionConfig = z.infer<typeof EncryptionSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function formatPath(path: PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('') || '(root)';
}

/** Validates an already-parsed document; `source` names the file in error messages. */
export function parseConfig(doc: unknown, source = 'temporal.yaml'): FerryConfig {
  const result = ConfigSchema.safeParse(doc);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  ${formatPath(issue.path)}: ${issue.message}`);
    throw new ConfigError(`${source} is invalid:\n${lines.join('\n')}`);
  }
  // A host without its own migration network takes its pool's.
  for (const host of result.data.hosts) host.migrationNetwork ??= result.data.pools[host.pool]?.migrationNetwork;
  return result.data;
}

export function defaultConfigPath(): string {
  return resolve(process.env.FERRY_CONFIG ?? resolve(__dirname, '..', 'temporal.yaml'));
}

export function loadConfig(path = defaultConfigPath()): FerryConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${path} is not valid YAML: ${(err as Error).message}`);
  }
  const config = parseConfig(doc, path);
  // Key files are relative to the config file, as temporal.dataDir is.
  const encryption = config.temporal.encryption;
  if (encryption) {
    for (const key of [encryption, ...encryption.previousKeys]) if (key.keyFile) key.keyFile = resolve(path, '..', key.keyFile);
  }
  return config;
}

/** Reads a secret named in the config; a missing variable is an error that names it. */
export function readSecret(envName: string, what: string): string {
  const value = process.env[envName];
  if (value === undefined || value === '') {
    throw new ConfigError(`${what}: environment variable ${envName} is not set`);
  }
  return value;
}

export function hostQueue(config: FerryConfig, host: string): string {
  return `${config.taskQueues.hostPrefix}${host}`;
}

export function findHost(config: FerryConfig, name: string): HostConfig {
  const host = config.hosts.find((h) => h.name === name);
  if (!host) {
    throw new ConfigError(`unknown host "${name}"; temporal.yaml lists: ${config.hosts.map((h) => h.name).join(', ')}`);
  }
  return host;
}
