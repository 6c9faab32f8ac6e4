// event.from as xapi_event.ml serves it (subscriptions to a class or one object, the token, add /
// mod / del once per object, valid_ref_counts, the timeout, SESSION_INVALID on logout), and
// waitForTask following a task with it over real XML-RPC: progress, cancel at once, failure, a host
// that stops answering.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SimCluster } from '../../simulator/cluster';
import { XenApiClient } from '../../xenapi/client';
import { XenApiTransportError } from '../../xenapi/errors';
import { waitForTask, type TaskProgress } from '../../xenapi/task';
import { PASSWORD, clientFor, hostRefOf, startTestCluster, waitForFigures } from './helpers';

const TOKEN = /^\d{20},\d{20}$/;

describe('event.from', () => {
  let cluster: SimCluster;
  let xa: XenApiClient;
  beforeAll(async () => {
    cluster = await startTestCluster({ bandwidthMiBps: 256 });
    xa = clientFor(cluster, 'xen-a');
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  beforeEach(async () => {
    const a = cluster.host('xen-a').admin;
    await a.setBandwidth(256);
    await a.setMaxIterations(5);
  });

  it('starts from the empty token with every object of a class as "add", class names lowercase', async () => {
    const batch = await xa.eventFrom(['VM'], '', 1);
    expect(batch.token).toMatch(TOKEN);
    const vms = await xa.call<string[]>('VM.get_all');
    expect(batch.events.map((e) => e.ref).sort()).toEqual([...vms].sort());
    expect(new Set(batch.events.map((e) => `${e.class} ${e.operation}`))).toEqual(new Set(['vm add']));
    expect(batch.events.every((e) => e.snapshot && typeof (e.snapshot as { uuid?: unknown }).uuid === 'string')).toBe(true);
    // Row counts of every class (xapi sends int32 values), whatever the subscription.
    expect(batch.valid_ref_counts).toMatchObject({ vm: vms.length, host: 2, pool: 1 });
    expect(Number.isInteger(batch.valid_ref_counts.task)).toBe(true);
    // Subscriptions are case-insensitive, as xapi lowercases them.
    expect((await xa.eventFrom(['vm'], '', 1)).events).toHaveLength(vms.length);
  });

  it('refuses a token it cannot parse', async () => {
    await expect(xa.eventFrom(['VM'], '42', 0)).rejects.toMatchObject({ code: 'EVENT_FROM_TOKEN_PARSE_FAILURE', params: ['42'] });
  });

  it('reports each changed object once since the token: mod, del, nothing for an object created and deleted meanwhile', async () => {
    const vm = await xa.call<string>('VM.create', { name_label: 'ev-1', memory_static_max: String(16 * 1024 * 1024) });
    const start = (await xa.eventFrom(['VM'], '', 0)).token;
    await xa.call('VM.set_name_label', vm, 'ev-1b');
    await xa.call('VM.set_name_description', vm, 'twice');
    const shortLived = await xa.call<string>('VM.create', { name_label: 'ev-2' });
    await xa.call('VM.destroy', shortLived);
    const mods = await xa.eventFrom(['VM'], start, 1);
    expect(mods.events.map((e) => [e.operation, e.ref])).toEqual([['mod', vm]]);
    expect(mods.events[0]?.snapshot).toMatchObject({ name_label: 'ev-1b', name_description: 'twice' });
    // The event's id is the generation of the object's last change; the token is the latest one seen (the deletion).
    const generation = (token: string) => Number(token.split(',')[0]);
    expect(Number(mods.events[0]?.id)).toBeGreaterThan(generation(start));
    expect(Number(mods.events[0]?.id)).toBeLessThan(generation(mods.token));
    await xa.call('VM.destroy', vm);
    const dels = await xa.eventFrom(['VM'], mods.token, 1);
    expect(dels.events.map((e) => [e.operation, e.ref, e.snapshot])).toEqual([['del', vm, undefined]]);
    expect(dels.token > mods.token).toBe(true);
  });

  it('follows one object ("task/<ref>"), returns at once when it changes and waits out the timeout otherwise', async () => {
    const a = cluster.host('xen-a').admin;
    const { ref } = await a.createVm({ nameLabel: 'ev-task', memoryMiB: 64, sr: 'shared' });
    const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
    const first = await xa.eventFrom([`task/${task}`], '', 5);
    expect(first.events.map((e) => [e.class, e.operation, e.ref])).toEqual([['task', 'add', task]]);
    let token = first.token;
    let status = (first.events[0]?.snapshot as { status: string }).status;
    while (status === 'pending') {
      const next = await xa.eventFrom([`task/${task}`], token, 5);
      // Only this task, never another object.
      expect(next.events.every((e) => e.ref === task && e.operation === 'mod')).toBe(true);
      expect(next.events.length).toBe(1);
      token = next.token;
      status = (next.events[0]?.snapshot as { status: string }).status;
    }
    expect(status).toBe('success');
    // Nothing changes any more: the call waits for its timeout and gives the token back.
    const t0 = performance.now();
    const idle = await xa.eventFrom([`task/${task}`], token, 0.3);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    expect(idle.events).toEqual([]);
    expect(idle.token).toBe(token);
  });

  it('fails a waiting call with SESSION_INVALID when its session logs out', async () => {
    const other = new XenApiClient({ url: cluster.host('xen-a').xenapiUrl, user: 'root', password: PASSWORD });
    const session = await other.login();
    const { token } = await other.eventFrom(['pool'], '', 0);
    const waiting = other.rawCall('event.from', [session, ['pool'], token, 10]).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 200));
    await xa.rawCall('session.logout', [session]);
    expect(await waiting).toMatchObject({ code: 'SESSION_INVALID', params: [session] });
  });

  describe('waitForTask', () => {
    it('reports progress as the task changes, and resolves with its result', async () => {
      const a = cluster.host('xen-a').admin;
      const { ref } = await a.createVm({ nameLabel: 'wft-progress', memoryMiB: 128, sr: 'shared' });
      const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
      const reports: TaskProgress[] = [];
      // A long event.from timeout: the reports come from the changes, not from timeouts.
      expect(await waitForTask(xa, task, { eventTimeoutS: 30, onProgress: (p) => void reports.push(p) })).toBe('');
      const progress = reports.map((r) => r.progress);
      expect(new Set(progress.filter((p) => p > 0 && p < 1)).size).toBeGreaterThanOrEqual(3);
      expect(progress.every((p, i) => i === 0 || (progress[i - 1] as number) <= p)).toBe(true);
      expect(reports[0]).toMatchObject({ status: 'pending', cancellable: true });
      expect(reports.at(-1)).toMatchObject({ status: 'success', progress: 1, cancellable: false });
    });

    it('cancels the moment the signal fires, not when event.from returns', async () => {
      const a = cluster.host('xen-a').admin;
      await a.setMaxIterations(0);
      await a.setBandwidth(16);
      // Dirtying faster than the link sends, unlimited rounds: it never ends by itself, and its
      // progress stands still once round 1 is done.
      const { ref } = await a.createVm({ nameLabel: 'wft-cancel', memoryMiB: 4, dirtyRateMiBps: 64, sr: 'shared' });
      const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
      await waitForFigures(cluster, 'xen-a', task, (f) => f.iteration >= 3, 'three rounds');
      const controller = new AbortController();
      let abortedAt = 0;
      setTimeout(() => {
        abortedAt = performance.now();
        controller.abort();
      }, 300);
      const statuses: string[] = [];
      const err = await waitForTask(xa, task, { eventTimeoutS: 30, signal: controller.signal, onProgress: (p) => void statuses.push(p.status) }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'TASK_CANCELLED', params: [task] });
      expect(performance.now() - abortedAt).toBeLessThan(2_000);
      expect(statuses.at(-1)).toBe('cancelled');
      expect((await xa.getRecord('VM', ref)).power_state).toBe('Running');
    });

    it('calls onProgress again after each idle event.from timeout, with the same figures', async () => {
      const a = cluster.host('xen-a').admin;
      const b = cluster.host('xen-b').admin;
      const { ref } = await a.createVm({ nameLabel: 'wft-idle', memoryMiB: 2, sr: 'shared' });
      // A frozen destination never answers the source's check: the task waits, unchanged.
      await b.freeze();
      const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
      const seen: TaskProgress[] = [];
      const result = await waitForTask(xa, task, {
        eventTimeoutS: 0.2,
        onProgress: async (p) => {
          seen.push(p);
          if (seen.length === 6) await b.thaw();
        },
      }).finally(() => b.thaw());
      expect(result).toBe('');
      expect(seen.slice(0, 6)).toEqual(Array(6).fill({ status: 'pending', progress: 0, cancellable: true }));
      expect(seen.at(-1)?.status).toBe('success');
    });

    it('throws the error_info of a failed task', async () => {
      const a = cluster.host('xen-a').admin;
      const { ref } = await a.createVm({ nameLabel: 'wft-fail', memoryMiB: 4, sr: 'shared' });
      await a.failNext('VM.pool_migrate', 'VM_MIGRATE_FAILED', [ref, 'src', 'dst', 'injected']);
      const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
      await expect(waitForTask(xa, task)).rejects.toMatchObject({ code: 'VM_MIGRATE_FAILED', params: [ref, 'src', 'dst', 'injected'] });
      await expect(waitForTask(xa, 'OpaqueRef:00000000-0000-0000-0000-000000000000')).rejects.toMatchObject({ code: 'HANDLE_INVALID' });
    });

    it('notices a host that stops answering: event.from times out after its wait plus the call timeout', async () => {
      const a = cluster.host('xen-a').admin;
      await a.setMaxIterations(0);
      await a.setBandwidth(16);
      const { ref } = await a.createVm({ nameLabel: 'wft-frozen', memoryMiB: 4, dirtyRateMiBps: 64, sr: 'shared' });
      const task = await xa.call<string>('Async.VM.pool_migrate', ref, await hostRefOf(xa, 'xen-b'), {});
      const quick = clientFor(cluster, 'xen-a', 500);
      await quick.login();
      await a.freeze();
      try {
        const t0 = performance.now();
        const err = await waitForTask(quick, task, { eventTimeoutS: 0.2 }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(XenApiTransportError);
        expect((err as XenApiTransportError).timedOut).toBe(true);
        expect(performance.now() - t0).toBeLessThan(3_000);
      } finally {
        await a.thaw();
      }
      await expect(waitForTask(xa, task, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'TASK_CANCELLED' });
    });
  });
});
