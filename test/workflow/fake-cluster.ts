// Fake activities for workflow tests on the time-skipping test server: the conductor's (cluster,
// policy, scheduler, slots) and each host agent's, with the real names and signatures
// (activities/conductor, activities/host). A FakeCluster records every call and lets a test decide
// what each host answers, and whether a host answers at all: a silent host's activities are picked
// up and never complete until it answers again.
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { ConductorActivities } from '../../activities/conductor';
import { schedule } from '../../activities/conductor/scheduler';
import type { PolledHost } from '../../activities/conductor/hosts';
import type { HostActivities } from '../../activities/host';
import type { AssertCanMigrateInput, DestinationFacts, HostReport, HostSummary, InstancePresence, MigrateSendInput, MigrateSendResult } from '../../activities/types';
import type { FerryConfig } from '../../lib/config';
import { destinationReservedSignal, progressSignal, slotGrantedSignal, type HostView, type InstanceView } from '../../workflows/definitions';

const summaryOf = ({ instances: _instances, ...h }: HostView): HostSummary => ({ ...h, queue: hostQueueOf(h.name) });

export const CONDUCTOR_QUEUE = 'ferry-conductor';
export const hostQueueOf = (host: string) => `ferry-host-${host}`;

export interface FakeHost {
  name: string;
  pool: string;
}

export interface Call {
  host: string; // 'conductor' for the conductor's activities
  activity: string;
  args: unknown[];
}

/** The migration policy of temporal.yaml's defaults, with a short host timeout. */
export function policy(overrides: Partial<FerryConfig['migration']> = {}): FerryConfig['migration'] {
  return {
    limits: { outboundPerHost: 1, inboundPerHost: 2, cluster: 5 },
    maxRetries: -1,
    completionTimeoutPerGiB: 800,
    timeoutAction: 'abort',
    progressTimeout: 150,
    downtimeTargetMs: 500,
    hostTimeout: 300,
    autoConverge: { enabled: true, capSteps: [60, 30, 10], stepSeconds: 5, forceCompleteAfterLastStep: true },
    policies: [],
    resizeConfirmWindowSeconds: 0,
    ...overrides,
  };
}

export function instanceOn(host: string, uuid: string, memoryBytes = 512 * 2 ** 20): InstanceView {
  return { uuid, name: `vm-${uuid.slice(0, 8)}`, powerState: 'Running', host, memoryBytes, vcpus: 1, vcpuCap: null, diskBytes: 0, storage: 'shared' };
}

export function presence(host: string, runningHere: boolean, powerState: InstancePresence['powerState'] = runningHere ? 'Running' : null): InstancePresence {
  return { host, present: runningHere, runningHere, powerState, residentOn: runningHere ? host : null, migrationTask: null, vcpuCap: null };
}

export const TRANSFER_DONE: MigrateSendResult = {
  bytesSent: 512 * 2 ** 20,
  downtimeMs: null,
  memoryTotalBytes: 512 * 2 ** 20,
  diskTotalBytes: 0,
  transferMs: 1000,
  alreadyDone: false,
};

/** One test's world: the hosts, the instance, what each host answers. */
export class FakeCluster {
  readonly calls: Call[] = [];
  policy = policy();
  /** Grant slots as soon as they are requested (else a test calls grant()). */
  autoGrant = true;
  /** The host the VM runs on: the source, until a transfer succeeds. */
  runsOn: string | null;
  /** What the source's migrateSend does; default: the transfer succeeds at once. A success moves the VM. */
  migrateSend: (input: MigrateSendInput) => Promise<MigrateSendResult> = async () => TRANSFER_DONE;
  /** The source's VM.assert_can_migrate (checkCanLiveMigrateSource); throw to refuse the candidate. */
  assertCanMigrate: (input: AssertCanMigrateInput) => void = () => undefined;
  /** Where the VM runs as each host sees it (instancePresence); default: from runsOn. */
  presence: (host: string) => InstancePresence = (host) => presence(host, host === this.runsOn);
  /** The workflow id of a resize or cold migration of the instance that runs, or null. */
  coldMigrationRunning: string | null = null;
  private readonly silent = new Set<string>();
  private waiters: Array<{ host: string; resume: () => void }> = [];
  private pendingGrant: string | null = null;

  constructor(
    readonly client: Client,
    readonly hosts: FakeHost[],
    readonly source: string,
    readonly instance: InstanceView,
  ) {
    this.runsOn = source;
  }

  /** A host whose agent stops answering: its activities hang until answerAgain. */
  stopAnswering(host: string): void {
    this.silent.add(host);
  }

  answerAgain(host: string): void {
    this.silent.delete(host);
    const resumed = this.waiters.filter((w) => w.host === host);
    this.waiters = this.waiters.filter((w) => w.host !== host);
    for (const w of resumed) w.resume();
  }

  /** Lets every hung activity go (end of a test). */
  dispose(): void {
    for (const host of [...this.silent]) this.answerAgain(host);
  }

  callsOf(activity: string, host?: string): Call[] {
    return this.calls.filter((c) => c.activity === activity && (host === undefined || c.host === host));
  }

  async grant(): Promise<void> {
    const workflowId = this.pendingGrant;
    if (!workflowId) throw new Error('no slot request to grant');
    this.pendingGrant = null;
    await this.client.workflow.getHandle(workflowId).signal(slotGrantedSignal, { reservedBytes: {} });
  }

  /** What the real agent does on its first poll of the task: tell the workflow the transfer runs. */
  async reportProgress(workflowId: string): Promise<void> {
    await this.client.workflow.getHandle(workflowId).signal(progressSignal, {
      fraction: 0.01,
      memoryTotalBytes: 100,
      memoryProcessedBytes: 1,
      memoryRemainingBytes: 99,
      diskTotalBytes: 0,
      diskProcessedBytes: 0,
      diskRemainingBytes: 0,
      fractionPerSecond: 0,
      etaSeconds: null,
      transferPhase: 'precopy',
    });
  }

  get slotRequested(): boolean {
    return this.pendingGrant !== null;
  }

  private record(host: string, activity: string, args: unknown[]): void {
    this.calls.push({ host, activity, args });
  }

  /** Returns once the host answers; while it is silent the activity hangs (or ends when Temporal cancels it). */
  private async answer(host: string): Promise<void> {
    if (!this.silent.has(host)) return;
    const signal = Context.current().cancellationSignal;
    await new Promise<void>((resolve, reject) => {
      this.waiters.push({ host, resume: () => resolve() });
      signal.addEventListener('abort', () => reject(new Error(`${host}: cancelled while not answering`)));
    });
  }

  /** Every host as the inventory would show it: up, enabled, 8 GiB free, the instance on its source. */
  hostViews(): HostView[] {
    return this.hosts.map((h) => ({
      name: h.name,
      pool: h.pool,
      up: true,
      downReason: null,
      enabled: true,
      productVersion: '8.2.1',
      platformVersion: '3.4.0',
      memoryTotalBytes: 16 * 2 ** 30,
      memoryFreeBytes: 8 * 2 ** 30,
      instances: h.name === this.source ? [this.instance] : [],
    }));
  }

  conductorActivities(): Partial<ConductorActivities> {
    const rec = (activity: string, args: unknown[]) => this.record('conductor', activity, args);
    return {
      listPolledHosts: async (): Promise<PolledHost[]> => {
        rec('listPolledHosts', []);
        return this.hosts.map((h) => ({ name: h.name, pool: h.pool, queue: hostQueueOf(h.name), polled: true, reason: null }));
      },
      planLiveMigration: async (input) => {
        rec('planLiveMigration', [input]);
        const views = this.hostViews();
        const source = views.find((h) => h.name === this.source && !input.notOn?.includes(h.name));
        if (!source) throw ApplicationFailure.nonRetryable(`instance ${input.instanceUuid} could not be found on any host`, 'InstanceNotFound');
        const requested = input.requestedHost ? views.find((h) => h.name === input.requestedHost) : null;
        if (requested === undefined) throw ApplicationFailure.nonRetryable(`requested host ${input.requestedHost} is not a host of this cluster`, 'ComputeHostNotFound');
        return { policy: this.policy, source: summaryOf(source), requested: requested && summaryOf(requested) };
      },
      runningColdMigration: async (input) => {
        rec('runningColdMigration', [input]);
        return this.coldMigrationRunning;
      },
      scheduleDestinations: async (input) => {
        rec('scheduleDestinations', [input]);
        const views = this.hostViews();
        const result = schedule({ ...input, hosts: views, sourceHost: input.source.name });
        const candidates = result.candidates.map((name) => summaryOf(views.find((h) => h.name === name) as HostView));
        return { candidates: candidates.slice(0, input.limit), rejected: result.rejected, rejectedMore: 0, moreCandidates: Math.max(0, candidates.length - input.limit) };
      },
      migrationPolicy: async () => {
        rec('migrationPolicy', []);
        return this.policy;
      },
      findDestination: async (request) => {
        rec('findDestination', [request]);
        return schedule(request);
      },
      requestMigrationSlot: async (request) => {
        rec('requestMigrationSlot', [request]);
        this.pendingGrant = request.workflowId;
        if (this.autoGrant) await this.grant();
      },
      requestMigrationSlotNow: async (request) => {
        rec('requestMigrationSlotNow', [request]);
        if (this.autoGrant) return { granted: true, reservedBytes: {} };
        this.pendingGrant = request.workflowId;
        return { granted: false, reservedBytes: {} };
      },
      reserveMigrationDestinationNow: async (reservation) => {
        rec('reserveMigrationDestinationNow', [reservation]);
        return { destHost: reservation.destHost, ok: true, reason: null, busy: false };
      },
      reserveMigrationDestination: async (reservation) => {
        rec('reserveMigrationDestination', [reservation]);
        await this.client.workflow
          .getHandle(reservation.workflowId)
          .signal(destinationReservedSignal, { destHost: reservation.destHost, ok: true, reason: null, busy: false });
      },
      releaseMigrationDestination: async (arg) => {
        rec('releaseMigrationDestination', [arg]);
      },
      releaseMigrationSlot: async (arg) => {
        rec('releaseMigrationSlot', [arg]);
      },
      closedMigrations: async (ids) => {
        rec('closedMigrations', [ids]);
        return [];
      },
      runningMigrations: async () => {
        rec('runningMigrations', []);
        return [];
      },
    };
  }

  hostActivities(host: FakeHost): Partial<HostActivities> {
    const step = async <T>(activity: string, args: unknown[], answer: () => T | Promise<T>): Promise<T> => {
      this.record(host.name, activity, args);
      await this.answer(host.name);
      return answer();
    };
    const facts = (): DestinationFacts => ({ host: host.name, hostUuid: `uuid-${host.name}`, srRef: 'OpaqueRef:sr', networkRef: 'OpaqueRef:net', memoryFreeBytes: 8 * 2 ** 30 });
    return {
      describeHost: (): Promise<HostReport> =>
        step('describeHost', [], () => {
          const { up: _up, downReason: _downReason, ...view } = this.hostViews().find((h) => h.name === host.name) as HostView;
          return { ...view, hostUuid: `uuid-${host.name}` };
        }),
      checkInstanceActive: (ref) =>
        step('checkInstanceActive', [ref], () => {
          if (host.name !== this.source) throw ApplicationFailure.nonRetryable(`instance ${ref.instanceUuid} is not on ${host.name}`, 'InstanceNotFound');
          return this.instance;
        }),
      checkCanLiveMigrateDestination: (input) => step('checkCanLiveMigrateDestination', [input], facts),
      migrateReceive: () => step('migrateReceive', [], () => ({ session_id: `OpaqueRef:session-${host.name}` })),
      assertCanMigrate: (input) => step('assertCanMigrate', [input], () => this.assertCanMigrate(input)),
      logoutMigrateReceive: (input) => step('logoutMigrateReceive', [input], () => undefined),
      preLiveMigration: () => step('preLiveMigration', [], facts),
      migrateSend: (input) =>
        step('migrateSend', [input], async () => {
          const result = await this.migrateSend(input);
          this.runsOn = input.destination.host;
          return result;
        }),
      settleMigrationTask: (ref) => step('settleMigrationTask', [ref], () => ({ outcome: 'none' as const })),
      forceCompleteGuest: (ref) => step('forceCompleteGuest', [ref], () => ({ paused: true })),
      capGuestVcpu: (input) => step('capGuestVcpu', [input], () => undefined),
      postLiveMigration: (ref) => step('postLiveMigration', [ref], () => undefined),
      postLiveMigrationAtDestination: (ref) =>
        step('postLiveMigrationAtDestination', [ref], () => {
          const p = this.presence(host.name);
          if (!p.runningHere) throw ApplicationFailure.nonRetryable(`instance ${ref.instanceUuid} does not run on ${host.name}`, 'MigrationNotFinished');
          return p;
        }),
      rollbackLiveMigrationAtDestination: (input) => step('rollbackLiveMigrationAtDestination', [input], () => ({ removed: false })),
      rollbackLiveMigration: (input) => step('rollbackLiveMigration', [input], () => this.presence(host.name)),
      instancePresence: (ref) => step('instancePresence', [ref], () => this.presence(host.name)),
    };
  }
}
