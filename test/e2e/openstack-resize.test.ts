// openstackclient's resize and cold migration against ferry through a real Keystone (as
// test/e2e/openstack.test.ts does for live migration): `flavor list|show` from temporal.yaml's
// flavors, `server resize --flavor --wait` to VERIFY_RESIZE on another host, `server resize
// confirm` (the server keeps its id and shows its new size), `server migrate --host --wait` (cold,
// 2.56) then `server resize revert` (back on its host, its old size), `server migration list --type
// resize|cold-migration`, and Nova's refusals. The coldMigration workflow moves the disks with real
// rsync between the simulated hosts.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type RunningApi } from '../../api/main';
import { parseConfig } from '../../lib/config';
import { openstackCliPath, startKeystone, type RunningKeystone } from '../../lib/keystone';
import { startStack, type Stack } from '../../lib/stack';

const PASSWORD_ENV = 'FERRY_TEST_KEYSTONE_SERVICE_PASSWORD';
/** The test VMs' size (1 vCPU, 32 MiB; disk 0: any disk) and the one a resize gives (2 vCPUs, 64 MiB, a 1 GiB disk). */
const FLAVORS = [
  { name: 'os-small', id: 'small-1', vcpus: 1, ram: 32, disk: 0, description: 'the test VMs' },
  { name: 'os-grow', id: 'grow-1', vcpus: 2, ram: 64, disk: 1 },
];

let stack: Stack;
let keystone: RunningKeystone;
let api: RunningApi;
let dir: string;
let clouds: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-openstack-resize-'));
  const [stackStarted, keystoneStarted] = await Promise.allSettled([startStack({ bandwidthMiBps: 256 }), startKeystone({ stateDir: join(dir, 'keystone') })]);
  if (stackStarted.status === 'fulfilled') stack = stackStarted.value;
  if (keystoneStarted.status === 'fulfilled') keystone = keystoneStarted.value;
  if (stackStarted.status === 'rejected') throw stackStarted.reason;
  if (keystoneStarted.status === 'rejected') throw keystoneStarted.reason;
  process.env[PASSWORD_ENV] = keystone.service.password;
  // The flavors are the API's (it resolves them for the workflow): the stack's workers need none.
  const config = parseConfig({
    ...stack.config,
    flavors: FLAVORS,
    api: { ...stack.config.api, auth: { mode: 'keystone', url: keystone.url, service: { user: keystone.service.name, passwordEnv: PASSWORD_ENV }, cacheSeconds: 30 } },
  });
  api = await startApi({ config, listen: '127.0.0.1:0', logger: pino({ level: process.env.FERRY_LOG_LEVEL ?? 'silent' }) });
  await keystone.registerCompute(api.url);
  clouds = keystone.writeCloudsYaml(dir);
  // Keystone under load on a shared machine can refuse its very first connections: the API's first
  // validation is waited for (bounded), so that the tests start once the chain answers.
  const token = await keystone.issueToken(keystone.users.admin);
  const deadline = Date.now() + 60_000;
  while ((await fetch(`${api.url}/v2.1/flavors`, { headers: { 'x-auth-token': token } })).status !== 200) {
    if (Date.now() > deadline) throw new Error('the API does not validate Keystone tokens after 60 s');
    await new Promise((r) => setTimeout(r, 500));
  }
}, 240_000);

afterAll(async () => {
  await api?.close();
  await Promise.all([stack?.stop(), keystone?.stop()]);
  delete process.env[PASSWORD_ENV];
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function openstack(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(openstackCliPath, args, { env: { ...process.env, OS_CLIENT_CONFIG_FILE: clouds, OS_CLOUD: 'ferry-admin' }, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolveRun({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function json<T = Record<string, unknown>>(args: string[]): Promise<T> {
  const run = await openstack([...args, '-f', 'json']);
  if (run.code !== 0) throw new Error(`openstack ${args.join(' ')} failed (${run.code}): ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

async function ok(args: string[], timeoutMs?: number): Promise<Run> {
  const run = await openstack(args, timeoutMs);
  expect(run.code, `openstack ${args.join(' ')}: ${run.stderr}`).toBe(0);
  return run;
}

/** Polls `server show` until the server satisfies the predicate. */
async function serverWhen(id: string, predicate: (s: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const shown = await json(['server', 'show', id]);
    if (predicate(shown)) return shown;
    if (Date.now() > deadline) throw new Error(`${id} did not become ${what}: ${JSON.stringify(shown)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

type MigrationRow = Record<string, unknown> & { UUID: string; Status: string; Type: string };

const vm = async (name: string) => (await stack.sims.host('xen-a').admin.createVm({ nameLabel: name, memoryMiB: 32, vcpus: 1, diskMiB: [8], sr: 'local' })).uuid;

describe('openstackclient: resize and cold migration', () => {
  it('flavor list and flavor show come from temporal.yaml', async () => {
    const list = await json<{ ID: string; Name: string; RAM: number; Disk: number; VCPUs: number; 'Is Public': boolean }[]>(['flavor', 'list']);
    expect(list).toEqual([
      expect.objectContaining({ ID: 'grow-1', Name: 'os-grow', RAM: 64, Disk: 1, VCPUs: 2, 'Is Public': true }),
      expect.objectContaining({ ID: 'small-1', Name: 'os-small', RAM: 32, Disk: 0, VCPUs: 1 }),
    ]);
    const shown = await json(['flavor', 'show', 'os-grow']);
    expect(shown).toMatchObject({ id: 'grow-1', name: 'os-grow', ram: 64, disk: 1, vcpus: 2 });
    const missing = await openstack(['flavor', 'show', 'm9.huge']);
    expect(missing.code).not.toBe(0);
  }, 60_000);

  it('server resize --flavor --wait, then server resize confirm: the server keeps its id, on its new host with its new size', async () => {
    const id = await vm('os-resize-1');
    await serverWhen(id, (s) => s.status === 'ACTIVE', 'listed');
    // The size it has: Nova's "When resizing, instances must change flavor!".
    const same = await openstack(['server', 'resize', '--flavor', 'os-small', id]);
    expect(same.code).not.toBe(0);
    expect(same.stderr).toContain('When resizing, instances must change flavor!');

    await ok(['server', 'resize', '--flavor', 'os-grow', '--wait', id], 180_000);
    const verify = await json(['server', 'show', id]);
    expect(verify).toMatchObject({ id, name: 'os-resize-1', status: 'VERIFY_RESIZE', 'OS-EXT-STS:vm_state': 'resized', 'OS-EXT-STS:task_state': null });
    expect(verify['OS-EXT-SRV-ATTR:host']).not.toBe('xen-a');
    const resizes = await json<MigrationRow[]>(['server', 'migration', 'list', '--server', id, '--type', 'resize']);
    expect(resizes).toHaveLength(1);
    expect(resizes[0]).toMatchObject({ Status: 'finished', Type: 'resize', 'Source Compute': 'xen-a', 'Dest Compute': verify['OS-EXT-SRV-ATTR:host'] });
    // A second resize while it waits for the user: Nova's 409.
    const busy = await openstack(['server', 'resize', '--flavor', 'os-small', id]);
    expect(busy.stderr).toContain(`while it is in vm_state resized`);

    await ok(['server', 'resize', 'confirm', id]);
    const confirmed = await serverWhen(id, (s) => s.status === 'ACTIVE', 'ACTIVE after the confirm');
    expect(confirmed).toMatchObject({ id, name: 'os-resize-1', 'OS-EXT-SRV-ATTR:host': verify['OS-EXT-SRV-ATTR:host'] });
    expect(confirmed.flavor).toMatchObject({ name: 'os-grow', vcpus: 2, ram: 64, disk: 1 });
    const rows = await json<MigrationRow[]>(['server', 'migration', 'list', '--server', id]);
    expect(rows[0]).toMatchObject({ UUID: resizes[0]?.UUID, Status: 'confirmed' });
    // Confirming a server that is no longer resized: Nova's 409 naming its vm_state.
    const again = await openstack(['server', 'resize', 'confirm', id]);
    expect(again.stderr).toContain('while it is in vm_state active');
  }, 300_000);

  it('server migrate --host --wait (cold, 2.56), then server resize revert: back on its host with its old size', async () => {
    const id = await vm('os-cold-1');
    await serverWhen(id, (s) => s.status === 'ACTIVE', 'listed');
    await ok(['--os-compute-api-version', '2.56', 'server', 'migrate', '--host', 'xen-c', '--wait', id], 180_000);
    expect(await json(['server', 'show', id])).toMatchObject({ status: 'VERIFY_RESIZE', 'OS-EXT-SRV-ATTR:host': 'xen-c' });
    const colds = await json<MigrationRow[]>(['server', 'migration', 'list', '--server', id, '--type', 'cold-migration']);
    expect(colds[0]).toMatchObject({ Status: 'finished', Type: 'migration', 'Dest Compute': 'xen-c' });

    await ok(['server', 'resize', 'revert', id]);
    const reverted = await serverWhen(id, (s) => s.status === 'ACTIVE', 'ACTIVE after the revert');
    expect(reverted).toMatchObject({ id, 'OS-EXT-SRV-ATTR:host': 'xen-a' });
    expect(reverted.flavor).toMatchObject({ name: 'os-small', vcpus: 1, ram: 32 });
    expect((await json<MigrationRow[]>(['server', 'migration', 'list', '--server', id]))[0]).toMatchObject({ Status: 'reverted' });
    // To the host it is on: Nova's 400.
    const self = await openstack(['--os-compute-api-version', '2.56', 'server', 'migrate', '--host', 'xen-a', id]);
    expect(self.stderr).toContain('Cannot migrate to the host where the server exists.');
  }, 300_000);
});
