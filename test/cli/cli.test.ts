// The CLI end to end against the API on a fake service: output, --json, watch, and exit codes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { run } from '../../cli/main';
import { EXIT } from '../../cli/exit-codes';
import { FakeFerryService, VM1, VM2, VM_HALTED } from '../api/fake-service';
import { OPERATOR, READ, testServer } from '../api/helpers';

let app: FastifyInstance;
let service: FakeFerryService;
let url: string;
let helpOut = '';

beforeAll(async () => {
  ({ app, service } = testServer());
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app.close();
});

async function ferry(args: string[], token: string | undefined = OPERATOR, tty = false) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(['--api', url, ...args], {
    stdout: { write: (t: string) => out.push(t), isTTY: tty, columns: 140 },
    stderr: { write: (t: string) => err.push(t) },
    env: { FERRY_TOKEN: token, FERRY_CONFIG: '/nonexistent/temporal.yaml' },
  });
  return { code, out: out.join(''), err: err.join('') };
}

describe('ferry CLI', () => {
  it('migrate prints the migration and its id; --json prints the API answer', async () => {
    const human = await ferry(['migrate', VM1, '--host', 'xen-b']);
    expect(human.code).toBe(EXIT.ok);
    expect(human.out).toMatch(/^Migration [0-9a-f-]{36} accepted \(workflow live-migration-11111111-1111-4111-8111-111111111111, Nova id \d+\)\n$/);
    service.migrations[0]!.status = 'completed';
    const json = await ferry(['--json', 'migrate', VM1]);
    expect(JSON.parse(json.out)).toMatchObject({ workflowId: `live-migration-${VM1}`, location: expect.stringMatching(/^\/v1\/migrations\//) });
    service.migrations[0]!.status = 'completed';
  });

  it('exit codes: usage 2, not found 3, conflict 4, unreachable 5, unauthorized 6', async () => {
    expect((await ferry(['migrate'])).code).toBe(EXIT.usage);
    const unknown = await ferry(['frobnicate']);
    expect(unknown.code).toBe(EXIT.usage);
    expect(unknown.err).toContain('Usage: ferry');
    expect((await ferry(['show', '44444444-4444-4444-8444-444444444444'])).code).toBe(EXIT.notFound);
    const halted = await ferry(['migrate', VM_HALTED]);
    expect(halted.code).toBe(EXIT.conflict);
    expect(halted.err).toContain('vm_state stopped');
    // An unknown host is not found (3), the instance's own host a refusal (4).
    const unknownHost = await ferry(['migrate', VM2, '--host', 'xen-z']);
    expect(unknownHost.code).toBe(EXIT.notFound);
    expect(unknownHost.err).toContain('xen-z');
    expect((await ferry(['migrate', VM2, '--host', 'xen-b'])).code).toBe(EXIT.conflict);
    expect((await ferry(['hosts'], '')).code).toBe(EXIT.unauthorized);
    expect((await ferry(['migrate', VM2], READ)).code).toBe(EXIT.unauthorized);
    const down = await run(['--api', 'http://127.0.0.1:9', '--json', 'hosts'], { stdout: { write: () => true }, stderr: { write: () => true }, env: {} });
    expect(down).toBe(EXIT.unreachable);
    expect((await ferry(['--api', 'not a url', 'hosts'])).code).toBe(EXIT.usage);
    const badOption = await ferry(['list', '--status', 'done']);
    expect(badOption.code).toBe(EXIT.usage);
    expect(badOption.err).toMatch(/^ferry: option '--status <status>' argument 'done' is invalid\. Allowed choices are accepted, /);
    expect(badOption.err).toContain('Usage: ferry list [options]');
  });

  it('help and completion print to stdout and exit 0 without calling the API', async () => {
    const help = await run(['--api', 'http://127.0.0.1:9', 'abort', '--help'], { stdout: { write: (t: string) => (helpOut += t) }, stderr: { write: () => true }, env: {} });
    expect(help).toBe(EXIT.ok);
    expect(helpOut).toMatch(/^Usage: ferry abort \[options\] <id>\n/);
    expect(helpOut).toContain('--reason <text>');
    const completion = await ferry(['completion', 'bash']);
    expect(completion.code).toBe(EXIT.ok);
    expect(completion.out).toContain('complete -F _ferry_completion ferry');
    expect(completion.err).toBe('');
  });

  it('abort and force-complete: 0 when accepted, 4 with the workflow\'s reason when refused', async () => {
    const started = JSON.parse((await ferry(['--json', 'migrate', VM2])).out);
    expect((await ferry(['force-complete', started.id])).out).toContain('Force-complete accepted');
    service.refuseAbort = 'cannot abort: past the point of no return';
    const refused = await ferry(['--json', 'abort', started.id]);
    expect(refused.code).toBe(EXIT.conflict);
    expect(JSON.parse(refused.out)).toEqual({ error: { code: 'conflict', status: 409, message: 'cannot abort: past the point of no return' } });
    service.refuseAbort = null;
    const ok = await ferry(['abort', started.id, '--reason', 'test']);
    expect(ok.code).toBe(EXIT.ok);
    expect(ok.out).toContain('Abort accepted');
    service.migrations[0]!.status = 'cancelled';
  });

  it('list, show and hosts print tables; --json prints the data', async () => {
    const list = await ferry(['list', '--instance', VM1], READ);
    expect(list.code).toBe(0);
    expect(list.out.split('\n')[0]).toMatch(/^ID\s+INSTANCE/);
    expect(JSON.parse((await ferry(['--json', 'list', '--status', 'completed'], READ)).out).every((m: { status: string }) => m.status === 'completed')).toBe(true);
    const show = await ferry(['show', VM1], READ);
    expect(show.out).toContain(`Instance    ${VM1}`);
    const hosts = await ferry(['hosts'], READ);
    expect(hosts.out).toMatch(/xen-c\s+pool-2\s+DOWN/);
    expect(JSON.parse((await ferry(['--json', 'instances'], READ)).out).instances).toHaveLength(3);
  });

  it('watch follows the stream: a progress line per phase, the outcome, exit 0 or 1', async () => {
    const started = JSON.parse((await ferry(['--json', 'migrate', VM1])).out);
    let calls = 0;
    service.onGet = (m) => {
      calls += 1;
      if (calls === 2) {
        Object.assign(m, {
          status: 'running',
          phase: 'precopy',
          dest_compute: 'xen-b',
          progress: {
            memoryTotalBytes: 100, memoryProcessedBytes: 50, memoryRemainingBytes: 50, diskTotalBytes: 0, diskProcessedBytes: 0, diskRemainingBytes: 0,
            fraction: 0.5, fractionPerSecond: 0.1, etaSeconds: 5, transferPhase: 'precopy',
          },
        });
      }
      if (calls === 4) Object.assign(m, { status: 'failed', phase: 'done', error: { type: 'MigrationFailed', message: 'link cut' } });
    };
    const watched = await ferry(['watch', started.id], READ);
    service.onGet = null;
    expect(watched.code).toBe(EXIT.migrationFailed);
    expect(watched.out).toContain('precopy');
    expect(watched.out).toContain('50%');
    expect(watched.out.trim().split('\n').at(-1)).toBe(`failed: MigrationFailed: link cut (${VM1} stays on xen-a)`);

    const again = JSON.parse((await ferry(['--json', 'migrate', VM1])).out);
    service.onGet = (m) => Object.assign(m, { status: 'completed', phase: 'done' });
    const json = await ferry(['--json', 'watch', again.id], READ);
    service.onGet = null;
    expect(json.code).toBe(EXIT.ok);
    const events = json.out.trim().split('\n').map((l) => JSON.parse(l));
    service.onGet = (m) => Object.assign(m, { status: 'completed', phase: 'done' });
    const streamed = JSON.parse((await ferry(['--json', 'migrate', VM2, '--watch'])).out.trim().split('\n')[0]!);
    service.onGet = null;
    expect(streamed).toMatchObject({ event: 'started', data: { workflowId: `live-migration-${VM2}` } });
    expect(events.at(-1)).toMatchObject({ event: 'end', data: { status: 'completed' } });

    const tty = JSON.parse((await ferry(['--json', 'migrate', VM2])).out);
    service.onGet = (m) => Object.assign(m, { status: 'completed', phase: 'done' });
    const drawn = await ferry(['watch', tty.id], READ, true);
    service.onGet = null;
    expect(drawn.out).toContain('\r\x1b[2K');
    expect(drawn.code).toBe(0);
  });
});
