// `ferry drain` and `ferry maintenance` against the API on a fake service: output, --json, the
// watch's per-VM lines, refusals and exit codes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { run } from '../../cli/main';
import { EXIT } from '../../cli/exit-codes';
import { parseCommandLine } from '../../cli/args';
import type { FakeFerryService } from '../api/fake-service';
import { OPERATOR, READ, testServer } from '../api/helpers';

let app: FastifyInstance;
let service: FakeFerryService;
let url: string;

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
    stdout: { write: (t: string) => out.push(t), isTTY: false, columns: 140 },
    stderr: { write: (t: string) => err.push(t) },
    env: { FERRY_TOKEN: token, FERRY_CONFIG: '/nonexistent/temporal.yaml' },
  });
  return { code, out: out.join(''), err: err.join('') };
}

describe('ferry drain and maintenance', () => {
  it('parses drain and maintenance command lines', () => {
    expect(parseCommandLine(['drain', 'xen-a', '--watch', '--parallelism', '2']).command).toEqual({ name: 'drain', host: 'xen-a', watch: true, parallelism: 2 });
    expect(parseCommandLine(['maintenance', 'leave', 'xen-a', '--bring-back']).command).toMatchObject({ name: 'maintenance', action: 'leave', host: 'xen-a', bringBack: true });
    expect(() => parseCommandLine(['maintenance', 'explode', 'xen-a'])).toThrow(/Allowed choices are show, watch, pause, resume, cancel, leave/);
    expect(() => parseCommandLine(['drain', 'xen-a', '--parallelism', '0'])).toThrow(/integer from 1 to 64/);
  });

  it('drain starts it; show prints each VM; pause and leave follow the workflow rules (refused: exit 4); unknown host exit 3', async () => {
    const started = await ferry(['drain', 'xen-a']);
    expect(started.code).toBe(EXIT.ok);
    expect(started.out).toContain('Maintenance of xen-a started (workflow host-maintenance-xen-a)');
    expect((await ferry(['drain', 'xen-a'])).code).toBe(EXIT.conflict);
    expect((await ferry(['drain', 'xen-z'])).code).toBe(EXIT.notFound);
    expect((await ferry(['drain', 'xen-b'], READ)).code).toBe(EXIT.unauthorized);
    const view = service.maintenance.runs.get('xen-a');
    if (!view) throw new Error('no maintenance');
    view.vms.push({ uuid: 'u1', name: 'db-1', memoryBytes: 2 ** 30, state: 'failed', attempts: 1, migration: 'live-migration-u1', destHost: null, bytesSent: 0, reason: { type: 'NoValidHost', message: 'No valid host was found.' } });
    view.counts = { ...view.counts, total: 1, failed: 1 };
    const show = await ferry(['maintenance', 'show', 'xen-a']);
    expect(show.out).toMatch(/xen-a draining/);
    expect(show.out).toMatch(/failed +db-1 +1\.0 GiB NoValidHost: No valid host was found\./);
    const leave = await ferry(['maintenance', 'leave', 'xen-a']);
    expect(leave.code).toBe(EXIT.conflict);
    expect(leave.err).toContain('cannot leave a maintenance that is draining');
    expect((await ferry(['maintenance', 'pause', 'xen-a'])).out).toMatch(/^pause accepted: xen-a paused/);
    expect((await ferry(['maintenance', 'show', 'xen-b'])).code).toBe(EXIT.notFound);
    // A watch of a settled maintenance prints it and ends: partial is exit 1, like a failed migration.
    view.status = 'partial';
    view.reason = '1 VM(s) could not move: db-1';
    const watched = await ferry(['maintenance', 'watch', 'xen-a']);
    expect(watched.code).toBe(EXIT.migrationFailed);
    expect(watched.out).toContain('db-1 failed (NoValidHost: No valid host was found.)');
    expect(watched.out).toContain('1 VM(s) could not move: db-1');
    const json = await ferry(['--json', 'maintenance', 'leave', 'xen-a', '--bring-back']);
    expect(JSON.parse(json.out)).toMatchObject({ status: 'left', bringBack: true });
  });
});
