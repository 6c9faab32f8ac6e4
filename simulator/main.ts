// One simulated pool per process: its database and every member host, each on its own loopback
// address.
//   npx tsx simulator/main.ts --config temporal.yaml --pool pool-1      (password from passwordEnv)
//   npx tsx simulator/main.ts --config temporal.yaml --host xen-a       (the pool of xen-a)
//   npx tsx simulator/main.ts --pool-json '{"pool":"p","members":[...]}' --password secret
//   npx tsx simulator/main.ts --name xen-a --pool p --ip 127.0.0.11 --xenapi-port 18080 \
//       --data-port 18180 --admin-port 18280 --password secret          (a pool of one host)
// Options: --bandwidth MiB/s, --memory-mib, --max-iterations (0 = unlimited), --min-dirty-pages,
// --state-dir, --product-version, --platform-version, --cpu-model, --user. Prints one JSON line
// {"event":"ready",...} on stdout.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, readSecret, type HostConfig } from '../lib/config';
import { DEFAULTS, memberFromHostConfig, validatePool, type PoolOptions } from './options';
import { startSimPool } from './server';

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
  const opts = optionsFromArgv(argv.filter((a) => a !== '--exit-with-parent'));
  const running = await startSimPool(opts);
  process.stdout.write(
    `${JSON.stringify({
      event: 'ready',
      pool: opts.pool,
      pid: process.pid,
      members: opts.members.map((m) => ({ name: m.name, ip: m.ip, xenapiPort: m.xenapiPort, dataPort: m.dataPort, adminPort: m.adminPort })),
    })}\n`,
  );
  const stop = () => {
    running.close().finally(() => process.exit(0));
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
