import type { Config, QueueSpec } from '#shared/config.js';
import type { VisionProvider } from '#shared/ai/provider.js';
import type { Sql } from '#shared/db/connect.js';
import type { KindSpec } from '#shared/jobs/kinds.js';
import type { Logger } from '#shared/log.js';
import type { Metrics } from '#shared/metrics/metrics.js';
import type { ObjectStore } from '#shared/storage/object-store.js';
import type { Handler } from './handler.js';

/** Tuning of one worker; every field has the default DESIGN.md names. */
export interface WorkerSettings {
  concurrency: number;
  leaseMs: number;
  heartbeatMs: number;
  queues: QueueSpec[] | 'all';
  pollMs: number;
  reclaimMs: number;
  shutdownGraceMs: number;
  batchSize: number;
  /** After an abort, how long a handler may take to notice before its slot is taken back anyway. */
  abortGraceMs: number;
  /** Claims commit without waiting for the WAL flush (WORKER_ASYNC_CLAIMS). */
  asyncClaims: boolean;
}

export const DEFAULT_SETTINGS: WorkerSettings = {
  concurrency: 10,
  leaseMs: 30_000,
  heartbeatMs: 10_000,
  queues: 'all',
  pollMs: 1_000,
  reclaimMs: 2_000,
  shutdownGraceMs: 10_000,
  batchSize: 500,
  abortGraceMs: 5_000,
  asyncClaims: true,
};

/** Everything a worker needs; tests pass their own database, handlers and kinds. */
export interface WorkerOptions {
  sql: Sql;
  log: Logger;
  settings?: Partial<WorkerSettings>;
  /** What the built-in handlers read (model, provider, FETCH_ALLOW_PRIVATE); the defaults of an empty environment when absent. */
  config?: Config;
  /** The vision provider of manifest.extract; the one `config` names when absent. */
  provider?: VisionProvider;
  /** Object storage of uploaded images; the one `config` names when absent. */
  storage?: ObjectStore;
  /** Extra or replacement handlers (tests register kinds of their own here). */
  handlers?: Record<string, Handler<never>>;
  /** Queue options of kinds that are not in the shared registry. */
  kinds?: Record<string, Partial<Omit<KindSpec, 'payload' | 'description'>>>;
  id?: string;
  /** Where the worker counts attempts, claims and reclaims; its own registry when absent. */
  metrics?: Metrics;
}
