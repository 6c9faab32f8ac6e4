// Simulated pools in one process: each pool's database and every member host, each host on its own
// loopback address with its own XenAPI, data and admin servers.
//   npx tsx simulator/main.ts --config temporal.yaml --pool pool-1      (password from passwordEnv)
//   npx tsx simulator/main.ts --config temporal.yaml --host xen-a       (the pool of xen-a)
//   npx tsx simulator/main.ts --pool-json '{"pool":"p","members":[...]}' --password secret
//   npx tsx simulator/main.ts --pools-json '[{"pool":"p1",...},{"pool":"p2",...}]' --password secret
//                                                                       (several pools, one process)
//   npx tsx simulator/main.ts --name xen-a --pool p --ip 127.0.0.11 --xenapi-port 18080 \
//       --data-port 18180 --admin-port 18280 --password secret          (a pool of one host)
// Options: --bandwidth MiB/s, --memory-mib, --max-iterations (0 = unlimited), --min-dirty-pages,
// --state-dir, --product-version, --platform-version, --cpu-model, --user. Prints one JSON line
// {"event":"ready", pools, pid, members} on stdout once every pool listens.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, readSecret, type HostConfig } from '../lib/config';
import { DEFAULTS, memberFromHostConfig, validatePool, type PoolOptions } from './options';
import { startSimPool, type RunningPool } from './server';

/** The pools this process runs: several with --pools-json, else the one the other options describe. */
export function poolsFromArgv(argv: string[]): PoolOptions[] {
  const i = argv.indexOf('--pools-json');
  if (i < 0) return [optionsFromArgv(argv)];
  const rest = [...argv.slice(0, i), ...argv.slice(i + 2)];
  const { values } = parseArgs({ args: rest, options: { password: { type: 'string' }, 'password-env': { type: 'string' } }, strict: true });
  const password = values.password ?? (values['password-env'] ? readSecret(values['password-env'], '--password-env') : undefined);
  const pools = JSON.parse(argv[i + 1] ?? '[]') as PoolOptions[];
  if (!Array.isArray(pools) || !pools.length) throw new Error('--pools-json needs a non-empty array of pools');
  return pools.map((p) => {
    const opts = { ...p, password: password ?? p.password };
    if (!opts.password) throw new Error(`no password for pool ${p.pool}: --password or --password-env`);
    validatePool(opts);
    return opts;
  });
}

export function optionsFromArgv(argv: string[]): PoolOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      host: { type: 'string' },
      name: { type: 'string' },
      pool: { type: 'string' },
      'pool-json': { type: 'string' },
      ip: { type: 'string' },
      'xenapi-port': { type: 'string' },
      'data-port': { type: 'string' },
      'admin-port': { type: 'string' },
      user: { type: 'string' },
      password: { type: 'string' },
      'password-env': { type: 'string' },
      'memory-mib': { type: 'string' },
      bandwidth: { type: 'string' },
      'max-iterations': { type: 'string' },
      'min-dirty-pages': { type: 'string' },
      'state-dir': { type: 'string' },
      'product-version': { type: 'string' },
      'platform-version': { type: 'string' },
      'cpu-model': { type: 'string' },
    },
    strict: true,
  });
  const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
  const password = () => values.password ?? (values['password-env'] ? readSecret(values['password-env'], '--password-env') : undefined);
  let opts: PoolOptions;
  if (values['pool-json']) {
    opts = { ...(JSON.parse(values['pool-json']) as PoolOptions) };
    const pw = password();
    if (pw) opts.password = pw;
  } else if (values.config) {
    const configPath = resolve(values.config);
    const config = loadConfig(configPath);
    const poolName = values.pool ?? config.hosts.find((h) => h.name === values.host)?.pool;
    if (!poolName) throw new Error('--config needs --pool <name> or --host <name>');
    const hosts = config.hosts.filter((h) => h.pool === poolName && h.simulator);
    if (!hosts.length) throw new Error(`no simulated host of pool ${poolName} in ${values.config}`);
    const first = hosts[0] as HostConfig;
    opts = {
      pool: poolName,
      members: hosts.map(memberFromHostConfig),
      user: values.user ?? first.user,
      password: password() ?? readSecret(first.passwordEnv, `hosts.${first.name}.passwordEnv`),
      bandwidthMiBps: num(values.bandwidth, config.simulator.bandwidthMiBps),
      maxIterations: num(values['max-iterations'], DEFAULTS.maxIterations),
      minDirtyPages: num(values['min-dirty-pages'], DEFAULTS.minDirtyPages),
      stateDir: resolve(values['state-dir'] ?? resolve(configPath, '..', config.temporal.dataDir, 'simulator')),
    };
  } else {
    const required = (v: string | undefined, flag: string) => {
      if (!v) throw new Error(`missing ${flag} (or use --config / --pool-json)`);
      return v;
    };
    opts = {
      pool: required(values.pool, '--pool'),
      members: [
        {
          name: required(values.name, '--name'),
          ip: values.ip ?? '127.0.0.1',
          xenapiPort: Number(required(values['xenapi-port'], '--xenapi-port')),
          dataPort: Number(required(values['data-port'], '--data-port')),
          adminPort: Number(required(values['admin-port'], '--admin-port')),
          memoryMiB: num(values['memory-mib'], DEFAULTS.memoryMiB),
          cpuModel: values['cpu-model'] ?? DEFAULTS.cpuModel,
          productVersion: values['product-version'] ?? DEFAULTS.productVersion,
          platformVersion: values['platform-version'] ?? DEFAULTS.platformVersion,
        },
      ],
      user: values.user ?? DEFAULTS.user,
      password: required(password(), '--password'),
      bandwidthMiBps: num(values.bandwidth, DEFAULTS.bandwidthMiBps),
      maxIterations: num(values['max-iterations'], DEFAULTS.maxIterations),
      minDirtyPages: num(values['min-dirty-pages'], DEFAULTS.minDirtyPages),
      stateDir: resolve(values['state-dir'] ?? '.data/simulator'),
    };
  }
  if (!opts.password) throw new Error('no password: --password, --password-env or the hosts\' passwordEnv');
  validatePool(opts);
  return opts;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--exit-with-parent')) {
    // Started by cluster.ts with a pipe on stdin: when the parent dies the pipe closes, and a
    // simulator must not outlive the test or bench that started it.
    process.stdin.on('end', () => process.exit(0));
    process.stdin.on('error', () => process.exit(0));
    process.stdin.resume();
  }
  const pools = poolsFromArgv(argv.filter((a) => a !== '--exit-with-parent'));
  const running: RunningPool[] = await Promise.all(pools.map((p) => startSimPool(p)));
  process.stdout.write(
    `${JSON.stringify({
      event: 'ready',
      pool: pools[0]?.pool,
      pools: pools.map((p) => p.pool),
      pid: process.pid,
      members: pools.flatMap((p) => p.members.map((m) => ({ pool: p.pool, name: m.name, ip: m.ip, xenapiPort: m.xenapiPort, dataPort: m.dataPort, adminPort: m.adminPort }))),
    })}\n`,
  );
  const stop = () => {
    Promise.all(running.map((r) => r.close())).finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`simulator: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
