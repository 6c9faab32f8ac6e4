// The inventory reporter of a host without an event feed (a QEMU host: its guests are processes
// and files, not a XenAPI database to watch): it reads the host every POLL_MS and reports when the
// report changed, and at least every inventory.reportSeconds. Same interface as HostReporter.
import type { Client } from '@temporalio/client';
import type { HostReport } from '../activities/types';
import type { FerryConfig, HostConfig } from '../lib/config';
import { sendHostReport } from '../lib/host-inventory';
import type { Logger } from '../lib/logger';
import { describeFailure } from '../workflows/outcome';
import type { HostReportMessage } from '../workflows/definitions';

const POLL_MS = 1000;

export class PollingHostReporter {
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private last: { at: number; body: string } | null = null;

  constructor(private readonly deps: { host: HostConfig; config: FerryConfig; client: Client; logger: Logger; describe: () => Promise<HostReport> }) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      void this.reportNow()
        .catch((err: unknown) => this.deps.logger.warn({ err: describeFailure(err).message }, 'host report not sent'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, POLL_MS);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.chain.catch(() => undefined);
  }

  /** Reads the host and reports it if it changed or is due; resolves once sent. Reports go out one at a time. */
  reportNow(): Promise<void> {
    const send = () => this.report();
    this.chain = this.chain.then(send, send);
    return this.chain;
  }

  private async report(): Promise<void> {
    const { host, config, client } = this.deps;
    const message: HostReportMessage = { host: host.name, pool: host.pool, observedAt: new Date().toISOString(), state: null, downReason: null };
    try {
      const { hostUuid: _hostUuid, ...state } = await this.deps.describe();
      message.state = state;
    } catch (err) {
      message.downReason = `its QEMU host could not be read: ${describeFailure(err).message}`;
    }
    const body = JSON.stringify({ ...message, observedAt: undefined });
    const due = !this.last || Date.now() - this.last.at >= config.inventory.reportSeconds * 1000;
    if (!due && this.last?.body === body) return;
    await sendHostReport(client, config, message);
    this.last = { at: Date.now(), body };
  }
}
