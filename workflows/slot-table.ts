// The bookkeeping of migrationSlots, free of Temporal so it can be tested on its own: who holds a
// slot, who waits, and whether a destination can take one more migration.
import type { DestinationReservation, MigrationLimits, SlotHolder, SlotRequest, SlotsState } from './definitions';

export const DEFAULT_LIMITS: MigrationLimits = { outboundPerHost: 1, inboundPerHost: 2, cluster: 5 };

export class SlotTable {
  readonly state: SlotsState;
  private limits: MigrationLimits;

  constructor(initial: SlotsState) {
    this.state = { queue: [...initial.queue], holders: [...initial.holders] };
    this.limits = initial.queue[0]?.limits ?? DEFAULT_LIMITS;
  }

  /** Memory promised to destinations, per host (optionally leaving one migration out). */
  reservedBytes(except?: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const h of this.state.holders) {
      if (h.destHost && h.workflowId !== except) out[h.destHost] = (out[h.destHost] ?? 0) + h.memoryBytes;
    }
    return out;
  }

  holder(workflowId: string): SlotHolder | undefined {
    return this.state.holders.find((h) => h.workflowId === workflowId);
  }

  /** Queues a request (once); returns the workflow ids granted a slot by it, oldest first. */
  request(request: SlotRequest): string[] {
    this.limits = request.limits;
    if (this.holder(request.workflowId)) return [request.workflowId]; // a retried request: answer again
    if (!this.state.queue.some((r) => r.workflowId === request.workflowId)) this.state.queue.push(request);
    return this.grantWaiting();
  }

  /** Gives up a slot or a place in the queue; returns the workflow ids granted a slot by it. */
  release(workflowId: string): string[] {
    this.state.holders = this.state.holders.filter((h) => h.workflowId !== workflowId);
    this.state.queue = this.state.queue.filter((r) => r.workflowId !== workflowId);
    return this.grantWaiting();
  }

  /**
   * Reserves the destination for the migration and answers null, or says why it cannot take it
   * (busy: only its inbound limit is reached, which may free up).
   */
  reserveDestination(reservation: DestinationReservation): { reason: string; busy: boolean } | null {
    const holder = this.holder(reservation.workflowId);
    if (!holder) return { reason: 'the migration holds no slot', busy: false };
    const others = this.state.holders.filter((h) => h.destHost === reservation.destHost && h.workflowId !== reservation.workflowId);
    const reserved = this.reservedBytes(reservation.workflowId)[reservation.destHost] ?? 0;
    if (others.length >= this.limits.inboundPerHost) {
      return { reason: `${reservation.destHost} already receives ${others.length} migration(s), the limit is ${this.limits.inboundPerHost}`, busy: true };
    }
    if (reservation.memoryFreeBytes - reserved < reservation.memoryBytes) {
      return {
        reason: `not enough free memory on ${reservation.destHost} after reservations: ${reservation.memoryFreeBytes - reserved} bytes, ${reservation.memoryBytes} needed`,
        busy: false,
      };
    }
    holder.destHost = reservation.destHost;
    holder.memoryBytes = reservation.memoryBytes;
    return null;
  }

  releaseDestination(workflowId: string): void {
    const holder = this.holder(workflowId);
    if (holder) holder.destHost = null;
  }

  /** Slots go to the oldest requests that fit; one from a busy host does not block another host's. */
  private grantWaiting(): string[] {
    const granted: string[] = [];
    for (const request of [...this.state.queue]) {
      if (this.state.holders.length >= this.limits.cluster) break;
      const outbound = this.state.holders.filter((h) => h.sourceHost === request.sourceHost).length;
      if (outbound >= this.limits.outboundPerHost) continue;
      this.state.queue.splice(this.state.queue.indexOf(request), 1);
      this.state.holders.push({ workflowId: request.workflowId, sourceHost: request.sourceHost, destHost: null, memoryBytes: request.memoryBytes });
      granted.push(request.workflowId);
    }
    return granted;
  }
}
