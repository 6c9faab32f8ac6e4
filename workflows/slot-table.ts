// The bookkeeping of migrationSlots, free of Temporal so it can be tested on its own: who holds a
// slot, who waits, and whether a destination can take one more migration.
import type { DestinationReservation, MigrationLimits, SlotHolder, SlotRequest, SlotsState } from './definitions';

export const DEFAULT_LIMITS: MigrationLimits = { outboundPerHost: 1, inboundPerHost: 2, cluster: 5 };

export interface Refusal {
  reason: string;
  /** Only the destination's inbound limit is reached, which may free up. */
  busy: boolean;
  /** The migration holds no lease here (the entity may have lost it: the migration re-asserts it). */
  noLease?: boolean;
}

export class SlotTable {
  /** What the entity carries across continue-as-new: queue, holders and the current limits. */
  readonly state: SlotsState & { limits: MigrationLimits };
  /** While paused (a fresh entity waiting for re-asserted leases) nothing is granted. */
  paused = false;

  constructor(initial: SlotsState) {
    // Runs continued before the limits were carried in the state fall back to the oldest request's.
    const limits = initial.limits ?? initial.queue[0]?.limits ?? DEFAULT_LIMITS;
    this.state = {
      queue: [...initial.queue],
      holders: [...initial.holders],
      limits,
      ...(initial.maxHistory !== undefined ? { maxHistory: initial.maxHistory } : {}),
    };
  }

  get limits(): MigrationLimits {
    return this.state.limits;
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

  /** Every migration the table knows of: holders and waiters. */
  workflowIds(): string[] {
    return [...this.state.holders.map((h) => h.workflowId), ...this.state.queue.map((r) => r.workflowId)];
  }

  /**
   * Queues a request (once; a repeated one keeps its place and takes the new fields); returns the
   * workflow ids granted a slot by it, oldest first. A request with held: true is a lease the
   * migration already holds (re-asserted to an entity that lost it): installed at once, even above
   * the limits, since that migration is already under way.
   */
  request(request: SlotRequest): string[] {
    this.state.limits = request.limits;
    const holder = this.holder(request.workflowId);
    if (holder) {
      // A retried request, or a re-asserted lease: answer again. A re-asserted lease says where
      // its destination reservation is now.
      if (request.held) {
        holder.destHost = request.destHost ?? null;
        holder.memoryBytes = request.memoryBytes;
      }
      return [request.workflowId];
    }
    const queued = this.state.queue.findIndex((r) => r.workflowId === request.workflowId);
    if (request.held) {
      if (queued >= 0) this.state.queue.splice(queued, 1);
      this.state.holders.push({
        workflowId: request.workflowId,
        sourceHost: request.sourceHost,
        destHost: request.destHost ?? null,
        memoryBytes: request.memoryBytes,
      });
      return [request.workflowId];
    }
    const { held: _held, ...waiting } = request;
    if (queued >= 0) this.state.queue[queued] = waiting;
    else this.state.queue.push(waiting);
    return this.grantWaiting();
  }

  /** Gives up a slot or a place in the queue; returns the workflow ids granted a slot by it. */
  release(workflowId: string): string[] {
    this.state.holders = this.state.holders.filter((h) => h.workflowId !== workflowId);
    this.state.queue = this.state.queue.filter((r) => r.workflowId !== workflowId);
    return this.grantWaiting();
  }

  /** Reserves the destination for the migration and answers null, or says why it cannot take it. */
  reserveDestination(reservation: DestinationReservation): Refusal | null {
    const holder = this.holder(reservation.workflowId);
    if (!holder) return { reason: 'the migration holds no slot', busy: false, noLease: true };
    const inbound = this.inbound(reservation.destHost, reservation.workflowId);
    const reserved = this.reservedBytes(reservation.workflowId)[reservation.destHost] ?? 0;
    if (inbound >= this.limits.inboundPerHost) {
      return { reason: `${reservation.destHost} already receives ${inbound} migration(s), the limit is ${this.limits.inboundPerHost}`, busy: true };
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

  /** Grants what fits now (after a pause, for instance); returns the workflow ids granted. */
  grantWaiting(): string[] {
    // Fairness: slots go to the oldest requests that fit, in request order. A request that does not
    // fit (its source's outbound or its destination's inbound limit is reached) holds nothing and
    // does not block younger requests from other hosts; only the cluster limit stops everyone.
    const granted: string[] = [];
    if (this.paused) return granted;
    for (const request of [...this.state.queue]) {
      if (this.state.holders.length >= this.limits.cluster) break;
      const outbound = this.state.holders.filter((h) => h.sourceHost === request.sourceHost).length;
      if (outbound >= this.limits.outboundPerHost) continue;
      // A requested destination is part of the grant: outbound, inbound and cluster fit at once.
      if (request.destHost && this.inbound(request.destHost, request.workflowId) >= this.limits.inboundPerHost) continue;
      this.state.queue.splice(this.state.queue.indexOf(request), 1);
      this.state.holders.push({
        workflowId: request.workflowId,
        sourceHost: request.sourceHost,
        destHost: request.destHost ?? null,
        memoryBytes: request.memoryBytes,
      });
      granted.push(request.workflowId);
    }
    return granted;
  }

  /** How many migrations (other than `except`) hold an inbound slot on a host. */
  private inbound(host: string, except: string): number {
    return this.state.holders.filter((h) => h.destHost === host && h.workflowId !== except).length;
  }
}
