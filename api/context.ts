// What every route plugin receives: the service, the authenticator and metrics.
import type { FerryConfig } from '../lib/config';
import type { FerryService } from './ferry-service';
import type { ApiMetrics } from './metrics';
import type { Authenticator } from './auth';

export interface ApiContext {
  auth: Authenticator;
  config: FerryConfig;
  service: FerryService;
  metrics: ApiMetrics;
  /** Below microversion 2.34, how long os-migrateLive waits for the conductor's pre-checks, ms. */
  preCheckWaitMs: number;
  /** How often the progress stream asks the workflow for its status. */
  pollIntervalMs: number;
  /** Set when the server starts closing: progress streams end so that close() does not wait for migrations. */
  closing: boolean;
}

export interface PluginOptions {
  ctx: ApiContext;
}

export { FINAL_STATUSES } from '../workflows/definitions';
export const IN_PROGRESS_STATUSES = new Set(['accepted', 'queued', 'preparing', 'running']);
