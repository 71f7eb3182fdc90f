import type { Logger } from '#shared/log.js';
import type { KindName, PayloadOf } from '#shared/jobs/kinds.js';

/** What a handler knows about the attempt it runs, and how it talks back. */
export interface JobContext {
  id: string;
  kind: string;
  queue: string;
  tenantId: string;
  /** 1-based; counts claims. */
  attempt: number;
  /**
   * The claim's lease token. A write a handler makes besides its outcome is fenced by it, as the
   * outcome is: it may land only while the job's row still has `lease_token` = this (webhook.deliver).
   */
  leaseToken: string;
  maxAttempts: number;
  /** Fires when the lease is lost, the job is cancelled or timed out, or the worker shuts down. */
  signal: AbortSignal;
  /** Reports progress (0–100); writes are coalesced and fenced by the lease. */
  progress(pct: number, message?: string): void;
  log: Logger;
}

/** Runs one attempt: returning succeeds (the value is stored as the result), throwing retries. */
export type Handler<P = unknown> = (payload: P, ctx: JobContext) => unknown;

/** One handler per registered kind; `satisfies HandlerMap` makes a missing one a compile error. */
export type HandlerMap = { [K in KindName]: Handler<PayloadOf<K>> };
