// The demo: the whole of ferry on this machine (Temporal dev server with its web UI, three simulated
// Xen hosts, the conductor and one host agent per host, the API), then a live migration driven by the
// `ferry` CLI with its progress bar, and the web UI's address of that workflow.
//
//   bash scripts/demo.sh [--driver xen|qemu] [--free-ports] [--no-auth | --keystone] [--memory-mib N] [--dirty-mibps N] [--bandwidth-mibps N] [--exit]
//
// --driver qemu: two QEMU hosts (issue 15) instead of the simulated Xen hosts, on free ports; the
//               guest is a real QEMU process (TCG) running ferry's counting boot sector, and its
//               memory moves by QEMU's own live migration. --dirty-mibps does not apply (the guest
//               dirties at the pace of its delay loop, --delay-loops), --memory-mib defaults to 128.
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
import { createQemuGuest } from '../activities/host/qemu/admin';
import { findHost, loadConfig, parseConfig } from '../lib/config';
import { HostInventory } from '../lib/host-inventory';
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
      driver: { type: 'string', default: 'xen' },
      'delay-loops': { type: 'string', default: '3000000' },
      'free-ports': { type: 'boolean', default: false },
      'no-auth': { type: 'boolean', default: false },
      keystone: { type: 'boolean', default: false },
      'memory-mib': { type: 'string' },
      'dirty-mibps': { type: 'string', default: '24' },
      'bandwidth-mibps': { type: 'string' },
      exit: { type: 'boolean', default: false },
    },
  });
  const qemu = values.driver === 'qemu';
  if (!qemu && values.driver !== 'xen') {
    process.stderr.write(`demo: --driver is xen or qemu, not ${values.driver}\n`);
    return 2;
  }
  const memoryMiB = Number(values['memory-mib'] ?? (qemu ? 128 : 512));
  const dirtyMiBps = Number(values['dirty-mibps']);
  const bandwidth = Number(values['bandwidth-mibps'] ?? (qemu ? 16 : 64));
  if (values.keystone && values['no-auth']) {
    process.stderr.write('demo: --keystone and --no-auth exclude each other\n');
    return 2;
  }

  say(bold(`ferry demo: starting the Temporal dev server, ${qemu ? 'two QEMU hosts' : 'three simulated Xen hosts'}, the workers and the API...`));
  const started = Date.now();
  let stack: Stack;
  // Keystone starts alongside the stack (about 30 s on 2 cores).
  const keystoneStarting = values.keystone ? startKeystone() : null;
  keystoneStarting?.catch(() => undefined); // awaited below; a failure must not be an unhandled rejection meanwhile
  try {
    stack = await startStack(
      qemu
        ? {
            ui: true,
            // Two QEMU hosts sharing one images directory (pool qemu-1), sending at --bandwidth-mibps.
            hosts: ['qemu-a', 'qemu-b'].map((name) => ({ name, pool: 'qemu-1', driver: 'qemu' as const, qemu: { bandwidthMiBps: bandwidth } })),
          }
        : values['free-ports']
          ? { ui: true, flavors: loadConfig(resolve(root, 'temporal.yaml')).flavors }
          : { configPath: resolve(root, 'temporal.yaml'), ui: true, workDir: resolve(root, '.data', 'demo') },
    );
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

    let vm: { uuid: string };
    if (qemu) {
      // A real QEMU guest on qemu-a that increments a byte in every page of its region, pass after pass.
      const regionMiB = Math.max(1, memoryMiB - 64);
      vm = await createQemuGuest(findHost(stack.config, 'qemu-a'), stack.config.hosts, { name: 'demo-web-1', memoryMiB, regionMiB, delayLoops: Number(values['delay-loops']) });
      await waitUntilListed(stack, vm.uuid);
      say(bold(`Live-migrating demo-web-1 (${vm.uuid}, a ${memoryMiB} MiB QEMU guest dirtying ${regionMiB} MiB, over a ${bandwidth} MiB/s limit) with the ferry CLI:`));
    } else {
      // A running VM on xen-a whose guest dirties memory while it moves: pre-copy has work to do.
      const admin = stack.sims.host('xen-a').admin;
      await admin.setBandwidth(bandwidth);
      vm = await admin.createVm({ nameLabel: 'demo-web-1', memoryMiB, vcpus: 2, diskMiB: [64], sr: 'shared', dirtyRateMiBps: dirtyMiBps });
      say(bold(`Live-migrating demo-web-1 (${vm.uuid}, ${memoryMiB} MiB, dirtying ${dirtyMiBps} MiB/s over a ${bandwidth} MiB/s link) with the ferry CLI:`));
    }
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
    say(`  ${tokenHint}npm run --silent ferry -- --api ${api.url} migrate ${vm.uuid} --host ${qemu ? 'qemu-a' : 'xen-c'} --watch`);
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

/** Waits (bounded) until the inventory lists the new QEMU guest: its agent reports it within a second or two. */
async function waitUntilListed(stack: Stack, uuid: string): Promise<void> {
  const inventory = new HostInventory(stack.systemClient, stack.config);
  const deadline = Date.now() + 30_000;
  while (!(await inventory.view({ fresh: true })).hosts.some((h) => h.instances.some((i) => i.uuid === uuid))) {
    if (Date.now() > deadline) throw new Error(`the inventory does not list the guest ${uuid} after 30 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
