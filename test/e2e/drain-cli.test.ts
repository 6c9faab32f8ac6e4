// `ferry drain <host> --watch` as an operator runs it: the CLI as its own process (npm run ferry's
// entry point), against the API in front of the real stack. The watch follows the whole operation
// and each VM until the drain ends, exits 0 when the host is empty, and `ferry maintenance leave
// --bring-back` then `ferry maintenance watch` bring the VMs home.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApi } from '../../api/main';
import { EXIT } from '../../cli/exit-codes';
import type { Stack } from '../../lib/stack';
import { inventoryWhen, placements, startStackWithApi } from './helpers';

const READ = 'read-token-drain-cli';
const OPERATOR = 'operator-token-drain-cli';
const root = resolve(__dirname, '..', '..');

let stack: Stack;
let api: RunningApi;

beforeAll(async () => {
  ({ stack, api } = await startStackWithApi(
    {
      hosts: [
        { name: 'xen-a', pool: 'pool-1', memoryMiB: 2048 },
        { name: 'xen-b', pool: 'pool-1', memoryMiB: 2048 },
      ],
      bandwidthMiBps: 256,
    },
    { read: READ, operator: OPERATOR },
  ));
}, 240_000);

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

/** Runs `ferry <args>` as a process (no TTY: the plain, line by line output). */
function ferry(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', resolve(root, 'cli', 'ferry.ts'), '--api', api.url, ...args], {
      cwd: root,
      env: { ...process.env, FERRY_TOKEN: OPERATOR, FERRY_CONFIG: '/nonexistent/temporal.yaml' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, out, err }));
  });
}

describe('ferry drain --watch', () => {
  it('follows the drain of a host, each VM and the whole, to drained (exit 0); leave --bring-back and maintenance watch bring the VMs home', async () => {
    const admin = stack.sims.host('xen-a').admin;
    const vms: { size: number; uuid: string }[] = [];
    for (const [i, size] of [48, 16, 32].entries()) vms.push({ size, ...(await admin.createVm({ nameLabel: `cli-drain-${i}`, memoryMiB: size, sr: 'shared' })) });
    await inventoryWhen(stack, (inv) => vms.every((vm) => inv.hosts.some((h) => h.name === 'xen-a' && h.instances.some((i) => i.uuid === vm.uuid))));

    const drain = await ferry(['drain', 'xen-a', '--watch']);
    expect(drain.code, drain.err + drain.out).toBe(EXIT.ok);
    // Each VM's way (the watch polls every second, so a short state may pass unseen; where each
    // VM ended never does), then the operation's last line: every VM moved to xen-b, the host drained.
    expect(drain.out).toContain('Maintenance of xen-a started (workflow host-maintenance-xen-a)');
    for (const vm of vms) expect(drain.out).toContain(`cli-drain-${vms.indexOf(vm)} moved -> xen-b`);
    const lines = drain.out.trim().split('\n');
    expect(lines.at(-1)).toMatch(/drained/);
    expect(lines.at(-1)).toMatch(/3\/3 moved/);
    for (const vm of vms) expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-b', powerState: 'Running' }]);

    // Show, as JSON: the API's view of the operation.
    const shown = await ferry(['--json', 'maintenance', 'show', 'xen-a']);
    expect(shown.code, shown.err).toBe(EXIT.ok);
    expect(JSON.parse(shown.out)).toMatchObject({ host: 'xen-a', status: 'drained', counts: { total: 3, moved: 3 } });

    const leave = await ferry(['maintenance', 'leave', 'xen-a', '--bring-back']);
    expect(leave.code, leave.err + leave.out).toBe(EXIT.ok);
    const watched = await ferry(['maintenance', 'watch', 'xen-a']);
    expect(watched.code, watched.err + watched.out).toBe(EXIT.ok);
    for (const vm of vms) expect(watched.out).toContain(`cli-drain-${vms.indexOf(vm)} returned`);
    for (const vm of vms) expect(await placements(stack, vm.uuid)).toEqual([{ host: 'xen-a', powerState: 'Running' }]);
  }, 300_000);
});
