// One simulated Xen host per process.
//   npx tsx simulator/main.ts --config temporal.yaml --host xen-a        (password from passwordEnv)
//   npx tsx simulator/main.ts --name xen-a --pool pool-1 --xenapi-port 18080 --data-port 18180 \
//       --admin-port 18280 --password secret [--peer xen-b=http://127.0.0.1:18081/@18181] ...
// Options: --bandwidth MiB/s, --memory-mib, --max-iterations (0 = unlimited), --state-dir,
// --product-version, --platform-version, --user. Prints one JSON line {"event":"ready",...} on stdout.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { findHost, loadConfig, readSecret } from '../lib/config';
import { DEFAULTS, type HostOptions, type PeerHost } from './options';
import { startSimHost } from './server';

function portOf(url: string): number {
  const u = new URL(url);
  return Number(u.port || 80);
}

export function optionsFromArgv(argv: string[]): HostOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      host: { type: 'string' },
      name: { type: 'string' },
      pool: { type: 'string' },
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
      peer: { type: 'string', multiple: true },
      'hosts-json': { type: 'string' },
      'exit-with-parent': { type: 'boolean' },
    },
    strict: true,
  });
  const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
  let base: Partial<HostOptions> = {};
  let hosts: PeerHost[] = [];
  if (values.config) {
    if (!values.host) throw new Error('--config needs --host <name>');
    const config = loadConfig(resolve(values.config));
    const h = findHost(config, values.host);
    if (!h.simulator) throw new Error(`host ${h.name} has no simulator block in ${values.config}`);
    hosts = config.hosts.filter((x) => x.simulator).map((x) => ({
      name: x.name, pool: x.pool, xenapiUrl: x.xenapiUrl, dataPort: x.simulator?.dataPort ?? 0, memoryMiB: x.simulator?.memoryMiB ?? DEFAULTS.memoryMiB,
    }));
    base = {
      name: h.name,
      pool: h.pool,
      xenapiPort: portOf(h.xenapiUrl),
      dataPort: h.simulator.dataPort,
      adminPort: h.simulator.adminPort,
      user: h.user,
      password: values.password ?? readSecret(h.passwordEnv, `hosts.${h.name}.passwordEnv`),
      memoryMiB: h.simulator.memoryMiB,
      cpuModel: h.simulator.cpuModel,
      productVersion: h.simulator.productVersion,
      platformVersion: h.simulator.platformVersion,
      bandwidthMiBps: config.simulator.bandwidthMiBps,
      stateDir: resolve(resolve(values.config, '..'), config.temporal.dataDir, 'simulator'),
    };
  }
  if (values['hosts-json']) hosts = JSON.parse(values['hosts-json']) as PeerHost[];
  for (const p of values.peer ?? []) {
    const m = /^([^=]+)=(.+)@(\d+)(?::(.+))?$/.exec(p);
    if (!m) throw new Error(`--peer must be name=xenapiUrl@dataPort, got ${p}`);
    hosts.push({ name: m[1] as string, pool: m[4] ?? values.pool ?? base.pool ?? '', xenapiUrl: m[2] as string, dataPort: Number(m[3]), memoryMiB: DEFAULTS.memoryMiB });
  }
  const name = values.name ?? base.name;
  const pool = values.pool ?? base.pool;
  const password = values.password ?? (values['password-env'] ? readSecret(values['password-env'], '--password-env') : base.password);
  if (!name || !pool || !password) throw new Error('need --config/--host or --name, --pool and --password');
  const required = (v: string | undefined, b: number | undefined, flag: string) => {
    const n = v !== undefined ? Number(v) : b;
    if (!n) throw new Error(`missing ${flag}`);
    return n;
  };
  return {
    name,
    pool,
    xenapiPort: required(values['xenapi-port'], base.xenapiPort, '--xenapi-port'),
    dataPort: required(values['data-port'], base.dataPort, '--data-port'),
    adminPort: required(values['admin-port'], base.adminPort, '--admin-port'),
    user: values.user ?? base.user ?? DEFAULTS.user,
    password,
    memoryMiB: num(values['memory-mib'], base.memoryMiB ?? DEFAULTS.memoryMiB),
    cpuModel: values['cpu-model'] ?? base.cpuModel ?? DEFAULTS.cpuModel,
    productVersion: values['product-version'] ?? base.productVersion ?? DEFAULTS.productVersion,
    platformVersion: values['platform-version'] ?? base.platformVersion ?? DEFAULTS.platformVersion,
    bandwidthMiBps: num(values.bandwidth, base.bandwidthMiBps ?? DEFAULTS.bandwidthMiBps),
    maxIterations: num(values['max-iterations'], DEFAULTS.maxIterations),
    minDirtyPages: num(values['min-dirty-pages'], DEFAULTS.minDirtyPages),
    stateDir: resolve(values['state-dir'] ?? base.stateDir ?? '.data/simulator'),
    hosts,
  };
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
  const running = await startSimHost(opts);
  process.stdout.write(`${JSON.stringify({ event: 'ready', name: opts.name, pid: process.pid, xenapiPort: opts.xenapiPort, dataPort: opts.dataPort, adminPort: opts.adminPort })}\n`);
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
