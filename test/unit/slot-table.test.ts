import { describe, expect, it } from 'vitest';
import { SlotTable } from '../../workflows/slot-table';

const limits = { outboundPerHost: 1, inboundPerHost: 1, cluster: 2 };
const req = (workflowId: string, sourceHost: string) => ({ workflowId, sourceHost, memoryBytes: 100, limits });

describe('SlotTable', () => {
  it('grants in request order within the per-host and cluster limits', () => {
    const t = new SlotTable({ queue: [], holders: [] });
    expect(t.request(req('m1', 'a'))).toEqual(['m1']);
    expect(t.request(req('m2', 'a'))).toEqual([]); // outbound limit of host a
    expect(t.request(req('m3', 'b'))).toEqual(['m3']); // another host may go first
    expect(t.request(req('m4', 'c'))).toEqual([]); // cluster limit
    expect(t.state.queue.map((r) => r.workflowId)).toEqual(['m2', 'm4']);
    expect(t.release('m1')).toEqual(['m2']); // the oldest that fits
    expect(t.release('m3')).toEqual(['m4']);
  });

  it('answers a repeated request again instead of queueing it twice', () => {
    const t = new SlotTable({ queue: [], holders: [] });
    t.request(req('m1', 'a'));
    expect(t.request(req('m1', 'a'))).toEqual(['m1']);
    t.request(req('m2', 'a'));
    t.request(req('m2', 'a'));
    expect(t.state.queue).toHaveLength(1);
  });

  it('reserves destinations within the inbound limit and the free memory left by other reservations', () => {
    const t = new SlotTable({ queue: [], holders: [] });
    t.request(req('m1', 'a'));
    t.request(req('m2', 'b'));
    expect(t.reserveDestination({ workflowId: 'm1', destHost: 'x', memoryBytes: 600, memoryFreeBytes: 1000 })).toBeNull();
    expect(t.reserveDestination({ workflowId: 'm2', destHost: 'x', memoryBytes: 100, memoryFreeBytes: 1000 })).toEqual({
      reason: expect.stringMatching(/already receives 1/),
      busy: true,
    });
    expect(t.reserveDestination({ workflowId: 'm2', destHost: 'y', memoryBytes: 600, memoryFreeBytes: 500 })).toEqual({
      reason: expect.stringMatching(/not enough free memory/),
      busy: false,
    });
    expect(t.reservedBytes()).toEqual({ x: 600 });
    t.releaseDestination('m1');
    expect(t.reservedBytes()).toEqual({});
    expect(t.reserveDestination({ workflowId: 'nobody', destHost: 'x', memoryBytes: 1, memoryFreeBytes: 10 })?.reason).toMatch(/holds no slot/);
  });
});

describe('SlotTable: a request that names its destination', () => {
  const toward = (workflowId: string, sourceHost: string, destHost: string) => ({ ...req(workflowId, sourceHost), destHost });
  const wide = { outboundPerHost: 1, inboundPerHost: 1, cluster: 3 };

  it('holds nothing while the destination is full, and is granted when it frees', () => {
    const t = new SlotTable({ queue: [], holders: [] });
    expect(t.request({ ...toward('m1', 'a', 'x'), limits: wide })).toEqual(['m1']);
    expect(t.holder('m1')?.destHost).toBe('x'); // the inbound slot is part of the grant
    expect(t.reservedBytes()).toEqual({ x: 100 });
    expect(t.request({ ...toward('m2', 'b', 'x'), limits: wide })).toEqual([]);
    // m2 waits for x without an outbound or a cluster slot: b's outbound and the cluster stay free.
    expect(t.state.holders.map((h) => h.workflowId)).toEqual(['m1']);
    expect(t.request({ ...req('m3', 'b'), limits: wide })).toEqual(['m3']);
    expect(t.release('m3')).toEqual([]); // x still receives m1
    expect(t.release('m1')).toEqual(['m2']);
    expect(t.holder('m2')).toEqual({ workflowId: 'm2', sourceHost: 'b', destHost: 'x', memoryBytes: 100 });
  });

  it('is granted only when outbound, inbound and cluster all fit at once', () => {
    const t = new SlotTable({ queue: [], holders: [] });
    t.request({ ...toward('m1', 'a', 'x'), limits: wide });
    expect(t.request({ ...toward('m2', 'a', 'y'), limits: wide })).toEqual([]); // y is free, a's outbound is not
    expect(t.request({ ...toward('m3', 'b', 'x'), limits: wide })).toEqual([]); // b is free, x is not
    expect(t.state.queue.map((r) => r.workflowId)).toEqual(['m2', 'm3']);
    expect(t.release('m1')).toEqual(['m2', 'm3']); // both fit now, oldest first
  });

  it('serves the oldest request that fits first; one that does not fit does not block younger ones', () => {
    const t = new SlotTable({ queue: [], holders: [] });
    t.request({ ...toward('m1', 'a', 'x'), limits: wide });
    t.request({ ...toward('m2', 'b', 'x'), limits: wide }); // waits for x
    t.request({ ...req('m3', 'a'), limits: wide }); // waits for a's outbound
    expect(t.request({ ...toward('m4', 'c', 'y'), limits: wide })).toEqual(['m4']); // fits: not blocked by m2, m3
    // m1 done: a's outbound and x's inbound free at once; m2 (older) gets x, m3 gets a.
    expect(t.release('m1')).toEqual(['m2', 'm3']);
  });

  it('counts requests with a destination against the inbound limit of reservations made later', () => {
    const t = new SlotTable({ queue: [], holders: [] });
    t.request({ ...toward('m1', 'a', 'x'), limits: wide });
    t.request({ ...req('m2', 'b'), limits: wide });
    expect(t.reserveDestination({ workflowId: 'm2', destHost: 'x', memoryBytes: 1, memoryFreeBytes: 1000 })?.busy).toBe(true);
    // The requested host's own memory check: m1 already holds x's inbound slot, only memory counts.
    expect(t.reserveDestination({ workflowId: 'm1', destHost: 'x', memoryBytes: 100, memoryFreeBytes: 50 })?.reason).toMatch(/not enough free memory/);
    expect(t.reserveDestination({ workflowId: 'm1', destHost: 'x', memoryBytes: 100, memoryFreeBytes: 1000 })).toBeNull();
  });

  it('a repeated request keeps its place in the queue', () => {
    const t = new SlotTable({ queue: [], holders: [] });
    t.request({ ...toward('m1', 'a', 'x'), limits: wide });
    t.request({ ...toward('m2', 'b', 'x'), limits: wide });
    t.request({ ...toward('m3', 'c', 'x'), limits: wide });
    t.request({ ...toward('m2', 'b', 'x'), limits: wide }); // re-sent every 30 s while waiting
    expect(t.state.queue.map((r) => r.workflowId)).toEqual(['m2', 'm3']);
    expect(t.release('m1')).toEqual(['m2']);
  });
});

describe('SlotTable: limits and re-asserted leases', () => {
  it('keeps the limits of a state without a queue (after continue-as-new)', () => {
    const custom = { outboundPerHost: 3, inboundPerHost: 3, cluster: 1 };
    const t = new SlotTable({ queue: [], holders: [], limits: custom });
    expect(t.state.limits).toEqual(custom);
    expect(new SlotTable(t.state).limits).toEqual(custom); // what continueAsNew hands over
    // Signals that carry no limits (release, reserve) keep them; a request carries the policy's.
    const held = new SlotTable({ queue: [], holders: [{ workflowId: 'm1', sourceHost: 'a', destHost: null, memoryBytes: 1 }], limits: custom });
    expect(held.reserveDestination({ workflowId: 'm1', destHost: 'x', memoryBytes: 1, memoryFreeBytes: 10 })).toBeNull();
    expect(held.release('nobody')).toEqual([]);
    expect(held.limits).toEqual(custom);
  });

  it('falls back to the oldest request limits, then the defaults, for states from older runs', () => {
    expect(new SlotTable({ queue: [req('m1', 'a')], holders: [] }).limits).toEqual(limits);
    expect(new SlotTable({ queue: [], holders: [] }).limits).toEqual({ outboundPerHost: 1, inboundPerHost: 2, cluster: 5 });
  });

  it('a re-asserted lease (held: true) is installed at once, even above the limits', () => {
    const t = new SlotTable({ queue: [], holders: [] });
    t.request(req('m1', 'a')); // cluster 2
    t.request(req('m2', 'b'));
    t.request(req('m3', 'c')); // queued: cluster limit
    expect(t.request({ ...req('m4', 'a'), destHost: 'x', held: true })).toEqual(['m4']);
    expect(t.holder('m4')).toEqual({ workflowId: 'm4', sourceHost: 'a', destHost: 'x', memoryBytes: 100 });
    expect(t.state.holders).toHaveLength(3);
    // A queued migration that re-asserts a lease is moved to the holders.
    expect(t.request({ ...req('m3', 'c'), held: true })).toEqual(['m3']);
    expect(t.state.queue).toEqual([]);
    expect(t.state.holders).toHaveLength(4);
    // A holder re-asserting says where its destination reservation is now.
    t.request({ ...req('m1', 'a'), destHost: 'y', memoryBytes: 7, held: true });
    expect(t.holder('m1')).toMatchObject({ destHost: 'y', memoryBytes: 7 });
    // Nothing new is granted until enough leases end.
    t.request(req('m5', 'd'));
    expect(t.release('m1')).toEqual([]);
    expect(t.release('m2')).toEqual([]);
    expect(t.release('m3')).toEqual(['m5']); // back under the cluster limit of 2
  });

  it('grants nothing while paused, and what fits once resumed', () => {
    const t = new SlotTable({ queue: [], holders: [] });
    t.paused = true;
    expect(t.request(req('m1', 'a'))).toEqual([]);
    expect(t.request({ ...req('m2', 'b'), held: true })).toEqual(['m2']); // re-asserted leases still install
    t.paused = false;
    expect(t.grantWaiting()).toEqual(['m1']);
  });

  it('lists holders and waiters for the audit', () => {
    const t = new SlotTable({ queue: [], holders: [] });
    t.request(req('m1', 'a'));
    t.request(req('m2', 'a'));
    expect(t.workflowIds()).toEqual(['m1', 'm2']);
  });
});
