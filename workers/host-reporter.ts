// The agent's half of the host inventory: it watches its pool's database with event.from (as
// xapi's own clients keep a live cache) and, when something changes and at least every
// inventory.reportSeconds, reports its host to the host's hostInventory entity (signal-with-start,
// in the system namespace). A report that says nothing new and is not due is not sent. Steps that
// move a VM call reportNow() before they return, so that a finished migration is in the inventory
// before the workflow can complete.
import type { Client } from '@temporalio/client';
import type { HostReport } from '../activities/types';
import type { FerryConfig, HostConfig } from '../lib/config';
import type { Logger } from '../lib/logger';
import type { XenApiClient } from '../xenapi/client';
import { describeFailure } from '../workflows/outcome';
import { sendHostReport } from '../lib/host-inventory';
import type { HostReportMessage } from '../workflows/definitions';

/** The classes whose changes can change a report: the host, its metrics, the VMs and their disks. */
const WATCHED = ['host', 'host_metrics', 'vm', 'vbd', 'vdi'];
/** event.from waits at most this long (s) for a change (the client allows the call that long plus its own timeout). */
const WATCH_SECONDS = 30;
/** Changes closer together than this make one report. */
const DEBOUNCE_MS = 250;

export interface HostReporterDeps {
  host: HostConfig;
  config: FerryConfig;
  xenapi: XenApiClient;
  /** A client of the system namespace. */
  client: Client;
  logger: Logger;
  describe: () => Promise<HostReport>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class HostReporter {
  private stopped = false;
  private loop: Promise<void> | null = null;
  private chain: Promise<void> = Promise.resolve();
  private lastSent: { at: number; body: string; message: HostReportMessage } | null = null;

  constructor(private readonly deps: HostReporterDeps) {}

  start(): void {
    this.loop ??= this.watch();
  }

  /** Stops watching (an event.from in flight ends by itself); waits for a report being sent. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.chain.catch(() => undefined);
  }

  /** Reads the host now and reports it unless the entity already has exactly this; resolves once sent. */
  reportNow(): Promise<void> {
    return this.inTurn(() => this.report());
  }

  private async watch(): Promise<void> {
    const { xenapi, config, logger } = this.deps;
    const reportMs = config.inventory.reportSeconds * 1000;
    let token = '';
    while (!this.stopped) {
      let changed: boolean;
      try {
        const answer = await xenapi.eventFrom(WATCHED, token, Math.min(WATCH_SECONDS, config.inventory.reportSeconds));
        changed = token === '' || answer.events.length > 0;
        token = answer.token;
      } catch (err) {
        // Its XenAPI does not answer: say so (the report's downReason), then watch again from scratch.
        logger.warn({ err: describeFailure(err).message }, 'event.from failed; reporting and retrying');
        token = '';
        await this.reportNow().catch(() => undefined);
        await sleep(1000);
        continue;
      }
      if (changed) await sleep(DEBOUNCE_MS);
      const due = !this.lastSent || Date.now() - this.lastSent.at >= reportMs;
      // Nothing changed since the last report and its XenAPI just answered: the report is still true,
      // and only says again that the agent lives (no XenAPI calls to read the host again).
      const send = changed || !this.lastSent || this.lastSent.message.downReason !== null ? () => this.reportNow() : () => this.heartbeat();
      if (changed || due) await send().catch((err: unknown) => logger.warn({ err: describeFailure(err).message }, 'host report not sent'));
    }
  }

  private async report(): Promise<void> {
    const { host, config, client } = this.deps;
    const message: HostReportMessage = { host: host.name, pool: host.pool, observedAt: new Date().toISOString(), state: null, downReason: null };
    try {
      const { hostUuid: _hostUuid, ...state } = await this.deps.describe();
      message.state = state;
    } catch (err) {
      const failure = describeFailure(err);
      message.downReason = failure.type === 'HostNotLive' ? failure.message : `its XenAPI did not answer: ${failure.message}`;
    }
    const body = JSON.stringify({ ...message, observedAt: undefined });
    const due = !this.lastSent || Date.now() - this.lastSent.at >= config.inventory.reportSeconds * 1000;
    if (!due && this.lastSent?.body === body) return;
    await sendHostReport(client, config, message);
    this.lastSent = { at: Date.now(), body, message };
  }

  /** The last report again, as observed now. */
  private heartbeat(): Promise<void> {
    return this.inTurn(() => this.resend());
  }

  /** Reports go out one at a time, in order, whether the one before was sent or not. */
  private inTurn(send: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(send, send);
    return this.chain;
  }

  private async resend(): Promise<void> {
    const last = this.lastSent;
    if (!last) return;
    const message = { ...last.message, observedAt: new Date().toISOString() };
    await sendHostReport(this.deps.client, this.deps.config, message);
    this.lastSent = { ...last, at: Date.now(), message };
  }
}
