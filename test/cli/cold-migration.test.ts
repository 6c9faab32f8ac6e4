// `ferry resize`, `cold-migrate`, `confirm`, `revert`, `cold-show`, `cold-watch` and `cold-list`
// against the API on a fake service: output, --json, the watch, refusals and exit codes, completion.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { run } from '../../cli/main';
import { EXIT } from '../../cli/exit-codes';
import { buildProgram, parseCommandLine } from '../../cli/args';
import { bashCompletion } from '../../cli/completion';
import { type FakeFerryService, VM1, VM2, VM_HALTED } from '../api/fake-service';
import { OPERATOR, READ, testServer } from '../api/helpers';

let app: FastifyInstance;
let service: FakeFerryService;
let url: string;
const GiB = 2 ** 30;

beforeAll(async () => {
  ({ app, service } = testServer());
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app.close();
});

async function ferry(args: string[], token: string | undefined = OPERATOR) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(['--api', url, ...args], {
    stdout: { write: (t: string) => out.push(t), isTTY: false, columns: 160 },
    stderr: { write: (t: string) => err.push(t) },
    env: { FERRY_TOKEN: token, FERRY_CONFIG: '/nonexistent/temporal.yaml' },
  });
  return { code, out: out.join(''), err: err.join('') };
}

describe('ferry resize, cold-migrate, confirm, revert', () => {
  it('parses the command lines', () => {
    expect(parseCommandLine(['resize', VM1, 'm1.medium', '-w']).command).toEqual({ name: 'resize', instance: VM1, flavor: 'm1.medium', watch: true });
    expect(parseCommandLine(['cold-migrate', VM1, '--host', 'xen-b']).command).toEqual({ name: 'cold-migrate', instance: VM1, host: 'xen-b', watch: false });
    expect(parseCommandLine(['confirm', VM1]).command).toEqual({ name: 'confirm', id: VM1, watch: false });
    expect(parseCommandLine(['revert', VM1, '--watch']).command).toEqual({ name: 'revert', id: VM1, watch: true });
    expect(parseCommandLine(['cold-list', '--open', '--limit', '5']).command).toEqual({ name: 'cold-list', instance: undefined, open: true, limit: 5 });
    expect(() => parseCommandLine(['resize', VM1])).toThrow(/missing required argument 'flavor'/);
    expect(() => parseCommandLine(['confirm', 'web-1'])).toThrow(/not a cold migration id or instance uuid/);
    expect(() => parseCommandLine(['cold-migrate', VM1, '--host', 'Xen_B'])).toThrow(/not a host name/);
  });

  it('completes the new commands and their options from the tree', () => {
    const script = join(mkdtempSync(join(tmpdir(), 'ferry-completion-')), 'ferry.bash');
    writeFileSync(script, bashCompletion(buildProgram()));
    const complete = (...words: string[]) =>
      execFileSync('bash', ['-c', 'source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ferry_completion; printf "%s\\n" "${COMPREPLY[@]}"', script, 'ferry', ...words], {
        encoding: 'utf8',
      })
        .split('\n')
        .filter(Boolean);
    expect(complete('co')).toEqual(['cold-migrate', 'confirm', 'cold-show', 'cold-watch', 'cold-list', 'completion']);
    expect(complete('cold-migrate', VM1, '--')).toEqual(expect.arrayContaining(['--host', '--watch', '--json']));
    expect(complete('re')).toEqual(['resize', 'revert']);
  });

  it('resize starts it and watches it to VERIFY_RESIZE; confirm twice answers the same; revert after confirm exits 4', async () => {
    const started = await ferry(['resize', VM1, 'm1.medium']);
    expect(started.code).toBe(EXIT.ok);
    expect(started.out).toMatch(/^Resize to m1\.medium [0-9a-f-]{36} accepted \(workflow cold-migration-11111111-1111-4111-8111-111111111111\)\n$/);
    const run1 = service.coldMigrations.runs[0]!;
    expect(run1.newFlavor).toMatchObject({ id: '3', ram: 4096 });
    // The watch of a finished one prints its line and what to do next.
    service.coldMigrations.set(run1.uuid, {
      status: 'finished',
      step: 'verifyResize',
      sourceHost: 'xen-a',
      destHost: 'xen-b',
      diskProcessedBytes: 10 * GiB,
      diskTotalBytes: 10 * GiB,
      downtimeMs: 2300,
      oldSize: { vcpus: 2, ramMiB: 2048, diskBytes: 10 * GiB },
      newSize: { vcpus: 2, ramMiB: 4096, diskBytes: 20 * GiB },
    });
    const watched = await ferry(['cold-watch', VM1]);
    expect(watched.code).toBe(EXIT.ok);
    expect(watched.out).toContain('xen-a → xen-b  finished (verifyResize)');
    expect(watched.out).toContain('100%  10.0 GiB of 10.0 GiB  downtime 2.3s');
    expect(watched.out).toContain(`finished: ${VM1} runs on xen-b (VERIFY_RESIZE, downtime 2.3s); ferry confirm ${VM1} or ferry revert ${VM1}`);
    const shown = await ferry(['cold-show', run1.uuid]);
    expect(shown.out).toContain('(resize to m1.medium)');
    expect(shown.out).toContain('server VERIFY_RESIZE');
    expect(shown.out).toMatch(/Size +2 vCPU, 2\.0 GiB memory, 10\.0 GiB disk → 2 vCPU, 4\.0 GiB memory, 20\.0 GiB disk/);
    expect(shown.out).toMatch(/Downtime +2\.30s/);

    expect((await ferry(['confirm', VM1], READ)).code).toBe(EXIT.unauthorized);
    const confirmed = await ferry(['confirm', VM1]);
    expect(confirmed.code).toBe(EXIT.ok);
    expect(confirmed.out).toMatch(/^Confirm accepted: xen-a → xen-b {2}confirming \(confirmResize\)/);
    const again = await ferry(['--json', 'confirm', run1.uuid]);
    expect(again.code).toBe(EXIT.ok);
    expect(JSON.parse(again.out)).toMatchObject({ uuid: run1.uuid, status: 'confirming' });
    const revert = await ferry(['revert', VM1]);
    expect(revert.code).toBe(EXIT.conflict);
    expect(revert.err).toContain('cannot revert: the resize was already confirmed');
    service.coldMigrations.set(run1.uuid, { status: 'confirmed', step: 'done' });
    const list = await ferry(['cold-list']);
    expect(list.out).toMatch(/^ID +INSTANCE +TYPE +FLAVOR +STATUS +STEP +ROUTE +DOWNTIME +CREATED\n/);
    expect(list.out).toMatch(new RegExp(`${run1.uuid} +${VM1} +resize +m1\\.medium +confirmed +done +xen-a → xen-b +2\\.3s`));
  });

  it('cold-migrate --watch follows it to error (exit 1); refusals map to exit codes', async () => {
    // A watched run that errs: the fake moves it before the first poll.
    const watching = ferry(['cold-migrate', VM2, '--host', 'xen-a', '--watch']);
    await new Promise((r) => setTimeout(r, 200));
    const run2 = service.coldMigrations.runs.find((r) => r.instanceUuid === VM2)!;
    service.coldMigrations.set(run2.uuid, { status: 'error', step: 'done', sourceHost: 'xen-b', error: { type: 'NoValidHost', message: 'No valid host was found.' } });
    const watched = await watching;
    expect(watched.code).toBe(EXIT.migrationFailed);
    expect(watched.out).toContain(`error: NoValidHost: No valid host was found. (${VM2} stays on xen-b)`);

    expect((await ferry(['resize', VM_HALTED, 'm9.huge'])).code).toBe(EXIT.notFound);
    const same = await ferry(['resize', VM_HALTED, 'm1.small']);
    expect(same.code).toBe(EXIT.conflict);
    expect(same.err).toContain('When resizing, instances must change flavor!');
    expect((await ferry(['revert', VM_HALTED])).code).toBe(EXIT.notFound);
    const json = await ferry(['--json', 'cold-migrate', VM_HALTED]);
    expect(JSON.parse(json.out)).toMatchObject({ instanceUuid: VM_HALTED, migrationType: 'migration', status: 'pre-migrating' });
    expect((await ferry(['cold-migrate', VM_HALTED])).code).toBe(EXIT.conflict);
  });
});
