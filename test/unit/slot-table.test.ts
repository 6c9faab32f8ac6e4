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
