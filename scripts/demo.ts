// The demo: the whole of ferry on this machine (Temporal dev server with its web UI, three simulated
// Xen hosts, the conductor and one host agent per host, the API), then a live migration driven by the
// `ferry` CLI with its progress bar, and the web UI's address of that workflow.
//
//   bash scripts/demo.sh [--free-ports] [--no-auth | --keystone] [--memory-mib N] [--dirty-mibps N] [--bandwidth-mibps N] [--exit]
//
// --free-ports: a generated config on free ports instead of temporal.yaml's fixed ones.
// --no-auth:    the API's explicit no-auth mode (local demo only); otherwise token auth with fresh tokens.
// --keystone:   a real Keystone too (lib/keystone.ts, from scripts/install.sh) with ferry as its `compute`
//               service; the API validates Keystone tokens, and a clouds.yaml is written for openstackclient.
// --exit:       stop everything after the migration instead of waiting for Ctrl-C.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { noAuthenticator, tokenAuthenticator } from '../api/auth';
import { startApi, type RunningApi } from '../api/main';
import { webUiUrl } from '../cli/render';
import { parseConfig } from '../lib/config';
import { startKeystone, type RunningKeystone } from '../lib/keystone';
import { createLogger } from '../lib/logger';
import { startStack, type Stack } from '../lib/stack';
import type { MigrationStatusView } from '../workflows/definitions';

const root = resolve(__dirname, '..');
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s = '') => process.stdout.write(`${s}\n`);

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'free-ports': { type: 'boolean', default: false },
      'no-auth': { type: 'boolean', default: false },
      keystone: { type: 'boolean', default: false },
      'memory-mib': { type: 'string', default: '512' },
      'dirty-mibps': { type: 'string', default: '24' },
      'bandwidth-mibps': { type: 'string', default: '64' },
      exit: { type: 'boolean', default: false },
    },
  });
  const memoryMiB = Number(values['memory-mib']);
  const dirtyMiBps = Number(values['dirty-mibps']);
  const bandwidth = Number(values['bandwidth-mibps']);
  if (values.keystone && values['no-auth']) {
    process.stderr.write('demo: --keystone and --no-auth exclude each other\n');
    return 2;
  }

  say(bold('ferry demo: starting the Temporal dev server, three simulated Xen hosts, the workers and the API...'));
  const started = Date.now();
  let stack: Stack;
  // Keystone starts alongside the stack (about 30 s on 2 cores).
  const keystoneStarting = values.keystone ? startKeystone() : null;
  keystoneStarting?.catch(() => undefined); // awaited below; a failure must not be an unhandled rejection meanwhile
  try {
    stack = await startStack(values['free-ports'] ? { ui: true } : { configPath: resolve(root, 'temporal.yaml'), ui: true, workDir: resolve(root, '.data', 'demo') });
  } catch (err) {
    await keystoneStarting?.then((k) => k.stop()).catch(() => undefined);
    say(`could not start the stack: ${(err as Error).message}`);
    say('(if a port of temporal.yaml is busy, run again with --free-ports)');
    return 5;
  }
  let api: RunningApi | undefined;
  let keystone: RunningKeystone | undefined;
  const stop = async () => {
    await api?.close().catch(() => undefined);
    await Promise.all([stack.stop().catch(() => undefined), (keystone ?? (await keystoneStarting?.catch(() => undefined)))?.stop().catch(() => undefined)]);
  };
  try {
    let operatorToken = randomBytes(16).toString('hex');
    let readToken = randomBytes(16).toString('hex');
    const logger = createLogger('api');
    logger.level = 'warn';
    if (keystoneStarting) {
      keystone = await keystoneStarting;
      // api.auth.mode keystone, as an operator's temporal.yaml would say it; the service password by variable.
      process.env.FERRY_KEYSTONE_PASSWORD = keystone.service.password;
      const auth = { mode: 'keystone', url: keystone.url, service: { user: keystone.service.name, passwordEnv: 'FERRY_KEYSTONE_PASSWORD' } };
      api = await startApi({ config: parseConfig({ ...stack.config, api: { ...stack.config.api, auth } }), logger });
      await keystone.registerCompute(api.url);
      operatorToken = await keystone.issueToken(keystone.users.admin);
      readToken = await keystone.issueToken(keystone.users.reader);
    } else {
      const auth = values['no-auth'] ? noAuthenticator : tokenAuthenticator({ read: readToken, operator: operatorToken });
      api = await startApi({ config: stack.config, auth, logger });
    }
    const uiUrl = stack.devServer.uiUrl ?? `http://127.0.0.1:${stack.config.temporal.uiPort}`;
    say(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    say(`  Temporal     ${stack.config.temporal.address} (namespace ${stack.config.temporal.namespace})`);
    say(`  web UI       ${uiUrl}`);
    say(`  ferry API    ${api.url}   (OpenAPI: ${api.url}/openapi.json)`);
    say(`  hosts        ${stack.config.hosts.map((h) => `${h.name} (${h.pool})`).join(', ')}`);
    say(`  logs         ${resolve(stack.workDir, 'logs')}`);
    if (keystone) say(`  Keystone     ${keystone.url} (ferry is its compute service; state and log in ${keystone.stateDir})`);
    say();

    // A running VM on xen-a whose guest dirties memory while it moves: pre-copy has work to do.
    const admin = stack.sims.host('xen-a').admin;
    await admin.setBandwidth(bandwidth);
    const vm = await admin.createVm({ nameLabel: 'demo-web-1', memoryMiB, vcpus: 2, diskMiB: [64], sr: 'shared', dirtyRateMiBps: dirtyMiBps });
    say(bold(`Live-migrating demo-web-1 (${vm.uuid}, ${memoryMiB} MiB, dirtying ${dirtyMiBps} MiB/s over a ${bandwidth} MiB/s link) with the ferry CLI:`));
    const cliArgs = ['--api', api.url, 'migrate', vm.uuid, '--watch'];
    say(`  $ ferry ${cliArgs.join(' ')}`);
    say();
    const env = { ...process.env, FERRY_CONFIG: stack.configPath, FERRY_TOKEN: values['no-auth'] ? '' : operatorToken };
    const code = await new Promise<number>((resolveExit) => {
      const child = spawn(process.execPath, ['--import', 'tsx', resolve(root, 'cli', 'ferry.ts'), ...cliArgs], { stdio: 'inherit', env, cwd: root });
      child.on('exit', (c) => resolveExit(c ?? 1));
    });

    const res = await fetch(`${api.url}/v1/migrations/${vm.uuid}`, { headers: values['no-auth'] ? {} : { authorization: `Bearer ${readToken}` } });
    const view = (await res.json()) as MigrationStatusView;
    say();
    say(bold(`The migration in the Temporal web UI (its history, activities and timeline):`));
    say(`  ${webUiUrl(uiUrl, stack.config.temporal.namespace, view.workflowId, view.uuid)}`);
    say(`  all migrations of this VM: ${uiUrl}/namespaces/${stack.config.temporal.namespace}/workflows?query=${encodeURIComponent(`InstanceUuid="${vm.uuid}"`)}`);
    say();
    if (keystone) {
      const clouds = keystone.writeCloudsYaml(resolve(stack.workDir, 'openstack'));
      const openstack = resolve(root, '.tools', 'keystone', 'bin', 'openstack');
      say(bold('openstackclient through Keystone (clouds ferry-admin, ferry-member, ferry-reader):'));
      say(`  export OS_CLIENT_CONFIG_FILE=${clouds} OS_CLOUD=ferry-admin`);
      say(`  ${openstack} server migration list`);
      say(`  ${openstack} server event list ${vm.uuid}`);
      say();
    }
    if (values.exit) return code;

    say(bold('The stack keeps running. In another terminal:'));
    const tokenHint = values['no-auth'] ? '' : `FERRY_TOKEN=${operatorToken} `;
    say(`  ${tokenHint}npm run --silent ferry -- --api ${api.url} hosts`);
    say(`  ${tokenHint}npm run --silent ferry -- --api ${api.url} list`);
    say(`  ${tokenHint}npm run --silent ferry -- --api ${api.url} migrate ${vm.uuid} --host xen-c --watch`);
    if (!values['no-auth']) say(`  read-only token: ${readToken}`);
    say('Press Ctrl-C to stop everything.');
    await new Promise<void>((resolveStop) => {
      process.once('SIGINT', () => resolveStop());
      process.once('SIGTERM', () => resolveStop());
    });
    say('\nstopping...');
    return code;
  } finally {
    await stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
