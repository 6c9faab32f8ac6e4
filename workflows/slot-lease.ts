// A migration's side of the migrationSlots entity: its lease (outbound, cluster and, once chosen,
// the destination's inbound slot and memory). Workflow code: deterministic, only
// @temporalio/workflow APIs and the conductor's activities, which reach the entity through
// signalWithStart (an entity that was lost is started afresh, never an error).
//
// Calls to the entity go out one at a time, in the order they were made (a release never overtakes
// the request or re-assertion before it), and none of them is cancelled with the workflow: a
// cancelled migration still gives its lease back.
import { ApplicationFailure, CancellationScope, condition, setHandler } from '@temporalio/workflow';
import {
  destinationReservedSignal,
  reassertLeaseSignal,
  slotGrantedSignal,
  type MigrationLimits,
  type ReservationAnswer,
  type SlotGrant,
  type SlotRequest,
} from './definitions';
import { conductor } from './activities';

/**
 * The conductor's calls to the entity: activities and signals (version 2), or local activities with
 * the requests as updates that answer at once (version 3).
 */
type EntityCalls = Pick<
  typeof conductor,
  | 'requestMigrationSlot'
  | 'reserveMigrationDestination'
  | 'releaseMigrationDestination'
  | 'releaseMigrationSlot'
  | 'requestMigrationSlotNow'
  | 'reserveMigrationDestinationNow'
>;

/** A migration waiting for its grant re-sends its (idempotent) request this often. */
const REQUEST_AGAIN_EVERY = '30s';
/** An answer to a reservation that does not come in this long is asked for again. */
const ANSWER_TIMEOUT = '30s';

export interface SlotLeaseHooks {
  /** The migration starts waiting for its slot (status queued). */
  onQueued(): void;
  /** The slot was granted (the migration goes on). */
  onGranted(): void;
}

export class SlotLease {
  private grant: SlotGrant | null = null;
  private answer: ReservationAnswer | null = null;
  /** What was last asked for; null before acquire and after release. */
  private request: SlotRequest | null = null;
  /** The destination whose inbound slot and memory the lease holds now. */
  private dest: { host: string; memoryBytes: number } | null = null;
  private chain: Promise<void> = Promise.resolve();
  private entity: EntityCalls = conductor;
  /** Requests and reservations as updates (version 3). */
  private answersAtOnce = false;

  constructor(
    private readonly workflowId: string,
    private readonly hooks: SlotLeaseHooks,
  ) {}

  /** Calls the entity through these (the conductor's local activities, from version 3 on), asking for answers at once. */
  callThrough(entity: EntityCalls): void {
    this.entity = entity;
    this.answersAtOnce = true;
  }

  /** Registers the handlers for slotGranted, destinationReserved and reassertLease. Call once, at the start of the workflow. */
  install(): void {
    setHandler(slotGrantedSignal, (grant) => {
      if (this.request) this.grant = grant;
    });
    setHandler(destinationReservedSignal, (answer) => {
      this.answer = answer;
    });
    // A fresh entity lost the leases: say again what this migration holds, or waits for.
    setHandler(reassertLeaseSignal, () => this.reassert());
  }

  /** Waits (queued) for an outbound + cluster slot, and, when destHost is given, the destination's inbound slot too. Re-requests every 30 s. */
  async acquire(request: { sourceHost: string; destHost: string | null; memoryBytes: number; limits: MigrationLimits }): Promise<SlotGrant> {
    if (this.request && this.grant) return this.grant;
    const asked: SlotRequest = {
      workflowId: this.workflowId,
      sourceHost: request.sourceHost,
      memoryBytes: request.memoryBytes,
      limits: request.limits,
      ...(request.destHost ? { destHost: request.destHost } : {}),
    };
    this.request = asked;
    this.grant = null;
    const ask = async () => {
      if (!this.answersAtOnce) return this.call(() => this.entity.requestMigrationSlot(asked));
      const answer = await this.call(() => this.entity.requestMigrationSlotNow(asked));
      if (answer.granted && this.request === asked) this.grant = { reservedBytes: answer.reservedBytes };
    };
    if (!this.answersAtOnce) this.hooks.onQueued();
    await ask();
    const answered = () => this.grant !== null || this.request !== asked;
    if (this.answersAtOnce && !answered()) this.hooks.onQueued();
    // The request is idempotent (a repeated one keeps its place): re-sent, it reaches an entity
    // that was lost and restarted even if that one's reassertLease did not reach us.
    while (!(await condition(answered, REQUEST_AGAIN_EVERY))) await ask();
    if (this.request !== asked || this.grant === null) {
      throw ApplicationFailure.nonRetryable('the slot lease was released while waiting for it', 'SlotLeaseReleased');
    }
    if (request.destHost) this.dest = { host: request.destHost, memoryBytes: request.memoryBytes };
    this.hooks.onGranted();
    return this.grant;
  }

  /**
   * For a scheduled candidate (no requested host): reserve its inbound slot and memory; null when
   * reserved, else the reason. Never waits for a busy destination (busy is a refusal like another).
   * On the requested host that acquire already holds, it checks the memory only.
   */
  async reserveDestination(candidate: { name: string; memoryFreeBytes: number }, memoryBytes: number): Promise<string | null> {
    for (let attempt = 0; ; attempt++) {
      this.answer = null;
      const reservation = { workflowId: this.workflowId, destHost: candidate.name, memoryBytes, memoryFreeBytes: candidate.memoryFreeBytes };
      let answered: boolean;
      if (this.answersAtOnce) {
        this.answer = await this.call(() => this.entity.reserveMigrationDestinationNow(reservation));
        answered = true;
      } else {
        await this.call(() => this.entity.reserveMigrationDestination(reservation));
        const isAnswer = () => this.answer !== null && this.answer.destHost === candidate.name;
        answered = await condition(isAnswer, ANSWER_TIMEOUT);
      }
      if (!answered) continue; // the entity was lost before it answered: the request starts a fresh one
      const answer = this.answer as ReservationAnswer | null;
      if (answer?.ok) {
        this.dest = { host: candidate.name, memoryBytes };
        return null;
      }
      // An entity that lost this lease (and whose reassertLease we have not answered yet): re-assert, then ask again.
      if (answer?.noLease && this.held && attempt === 0) {
        await this.reassert();
        continue;
      }
      return answer?.reason ?? 'reservation refused';
    }
  }

  async releaseDestination(): Promise<void> {
    if (!this.request) return;
    this.dest = null;
    await this.call(() => this.entity.releaseMigrationDestination({ workflowId: this.workflowId }));
  }

  /**
   * Gives everything back. Safe to call more than once and when nothing was acquired; never throws
   * when the entity is gone. `alongside`: through a (non-local) activity, so that the workflow task
   * that asks for it can also start other steps without waiting for it.
   */
  async release(options: { alongside?: boolean } = {}): Promise<void> {
    if (!this.request) {
      await this.chain; // a release already under way
      return;
    }
    this.request = null;
    this.grant = null;
    this.dest = null;
    const entity = options.alongside ? conductor : this.entity;
    await this.call(() => entity.releaseMigrationSlot({ workflowId: this.workflowId }));
  }

  get held(): boolean {
    return this.request !== null && this.grant !== null;
  }

  /** The entity's last answer to reserveDestination (busy: refused only for the inbound limit). */
  get lastAnswer(): ReservationAnswer | null {
    return this.answer;
  }

  /** Re-requests what the migration holds (held: true, with its destination) or waits for. */
  private reassert(): Promise<void> {
    const request = this.request;
    if (!request) return Promise.resolve();
    const again: SlotRequest = this.held
      ? { ...request, held: true, destHost: this.dest?.host ?? null, memoryBytes: this.dest?.memoryBytes ?? request.memoryBytes }
      : request;
    return this.call(() => this.entity.requestMigrationSlot(again));
  }

  /** Runs calls to the entity one at a time, in order, whatever cancellation the workflow sees. */
  private call<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(() => CancellationScope.nonCancellable(fn));
    this.chain = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }
}
