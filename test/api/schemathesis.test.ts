// The contract, checked by schemathesis (PyPI, installed by scripts/install.sh into .tools/venv)
// against the API on the real stack: every check, at least 1,000 generated cases, and it must find
// nothing. The stack holds a VM and a finished migration so that lists have rows to check.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApi } from '../../api/main';
import type { Stack } from '../../lib/stack';
import pino from 'pino';
import { startApi } from '../../api/main';
import { tokenAuthenticator } from '../../api/auth';
import { parseConfig } from '../../lib/config';
import { startStack } from '../../lib/stack';

const READ = 'read-token-schemathesis';
const OPERATOR = 'operator-token-schemathesis';
const SCHEMATHESIS = join(process.cwd(), '.tools/venv/bin/schemathesis');
/** Cases per operation in the fuzzing phase; with the coverage phase's own cases, 4,439 cases in about 5 minutes here (with the flavor and cold-migration routes; 1,944 in 3.5 minutes before them). */
const MAX_EXAMPLES = 20;

let stack: Stack;
let api: RunningApi;

beforeAll(async () => {
  stack = await startStack({ bandwidthMiBps: 256 });
  // With flavors, so that the flavor routes answer rows and a resize's checks run.
  api = await startApi({
    config: parseConfig({ ...stack.config, flavors: [{ id: 'c1', name: 'contract-small', vcpus: 1, ram: 64, disk: 0 }, { id: 'c2', name: 'contract-big', vcpus: 2, ram: 128, disk: 1, description: 'a resize' }] }),
    listen: '127.0.0.1:0',
    logger: pino({ level: 'silent' }),
    auth: tokenAuthenticator({ read: READ, operator: OPERATOR }),
  });
  // A VM and one finished migration: servers and migrations lists answer rows, not only [].
  const { uuid } = await stack.sims.host('xen-a').admin.createVm({ nameLabel: 'contract-vm', memoryMiB: 64, diskMiB: [8], sr: 'shared' });
  const headers = { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' };
  let started: Response | undefined;
  for (let i = 0; i < 40; i++) {
    started = await fetch(`${api.url}/v1/migrations`, { method: 'POST', headers, body: JSON.stringify({ instanceUuid: uuid, host: 'xen-b' }) });
    if (started.status !== 404) break; // the inventory has not reported the VM yet
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(started?.status).toBe(202);
  const { id } = (await started?.json()) as { id: string };
  for (;;) {
    const view = (await (await fetch(`${api.url}/v1/migrations/${id}`, { headers })).json()) as { status: string };
    if (['completed', 'failed', 'error', 'cancelled'].includes(view.status)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
}, 180_000);

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    // In a folder of its own: schemathesis keeps its example database in ./.schemathesis.
    const cwd = mkdtempSync(join(tmpdir(), 'ferry-schemathesis-'));
    const child = spawn(command, args, { cwd, env: { ...process.env, NO_COLOR: '1', SCHEMATHESIS_TELEMETRY: 'false' } });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/**
 * The operations split among processes, each with one worker: schemathesis' threads (--workers)
 * race in CPython 3.11's ast module (hypothesis' lambda descriptions) now and then, processes do not.
 */
const GROUPS: string[][] = [
  ['--include-tag', 'nova', '--include-method', 'GET'],
  ['--include-tag', 'nova', '--exclude-method', 'GET'],
  ['--exclude-tag', 'nova'],
];

describe('schemathesis', () => {
  it('finds nothing against /openapi.json on the real stack: all checks, at least 1,000 cases', async () => {
    expect(existsSync(SCHEMATHESIS), 'scripts/install.sh installs schemathesis into .tools/venv').toBe(true);
    const runs = await Promise.all(
      GROUPS.map((group) =>
        run(SCHEMATHESIS, [
          'run',
          `${api.url}/openapi.json`,
          ...group,
          '--checks',
          'all',
          '--max-examples',
          String(MAX_EXAMPLES),
          '--workers',
          '1',
          '--seed',
          '12',
          '--phases',
          'examples,coverage,fuzzing',
          '--request-timeout',
          '30',
          '--header',
          `Authorization: Bearer ${OPERATOR}`,
          // The Nova routes are documented as served at 2.80 (see the document's description).
          '--header',
          'OpenStack-API-Version: compute 2.80',
        ]),
      ),
    );
    let total = 0;
    const failed: string[] = [];
    for (const [i, { code, output }] of runs.entries()) {
      // The summary: "Test cases: N generated, ..."
      total += Number(/(\d+) generated/.exec(output)?.[1] ?? 0);
      if (code !== 0) failed.push(`schemathesis ${GROUPS[i]?.join(' ')} exited ${code}:\n${output}`);
    }
    for (const failure of failed) console.log(failure);
    expect(failed.map((f) => f.slice(0, 6000))).toEqual([]);
    console.log(`schemathesis: ${total} cases, no failure`);
    expect(total).toBeGreaterThanOrEqual(1000);
  }, 900_000);
});
