import type { JobAborted } from '#shared/jobs/job-errors.js';

/** A row returned by CLAIM_JOBS. */
export interface ClaimedJob {
  id: string;
  tenant_id: string;
  kind: string;
  queue: string;
  payload: unknown;
  priority: number;
  attempts: number;
  max_attempts: number;
  /** Milliseconds from the job's run_at to the claim (negative never: only due jobs are claimed). */
  waited_ms: number;
  cancel_requested: boolean;
}

/** A job this worker holds a lease on, from claim until its outcome is written. */
export interface HeldJob {
  job: ClaimedJob;
  /** The claim's lease token: every write about this job is fenced by it. */
  token: string;
  /** buffered (claimed, waiting for a slot) → running → settling (outcome being written) → done. */
  state: 'buffered' | 'running' | 'settling' | 'done';
  /** Made on first use of `ctx.signal` only: most no-op-fast handlers never look at it. */
  controller?: AbortController;
  /** Set once, by the first reason to stop this attempt. */
  aborted?: JobAborted;
  /** Called when `aborted` is set while the handler runs (starts its grace period). */
  onAbort?: () => void;
  /** Local clock time after which the timeout sweep aborts the handler. */
  timeoutAt?: number;
  /** Local clock time after which the lease must be presumed lost (no heartbeat got through). */
  leaseDeadline: number;
}

/** How an attempt ended, as the completer writes it. */
export type Outcome =
  /** `json`: the result's JSON text, when succeeded() made it checking that it has one. */
  | { type: 'success'; result: unknown; json?: string }
  | { type: 'retry'; message: string; code: string; retryAt: Date; stack?: string }
  | { type: 'permanent'; message: string; code: string; stack?: string }
  | { type: 'cancelled'; message: string }
  | { type: 'handback' }
  /** The lease is gone: nothing may be written. */
  | { type: 'drop' };

/**
 * Adds a claim's jobs (sorted by priority) to the jobs waiting for a slot, lowest priority value
 * first, ties in arrival order. Two claims in flight run side by side in PostgreSQL: the one sent
 * later may lock the better job first, and reach the buffer just after the earlier one handed out
 * its worse ones. Appends when the claim sorts after everything waiting (the usual case).
 */
export function mergeByPriority(waiting: HeldJob[], fresh: HeldJob[]): HeldJob[] {
  const last = waiting[waiting.length - 1];
  if (!last || !fresh.length || fresh[0]!.job.priority >= last.job.priority) {
    for (const h of fresh) waiting.push(h);
    return waiting;
  }
  const merged: HeldJob[] = [];
  let i = 0;
  let j = 0;
  while (i < waiting.length && j < fresh.length) merged.push(fresh[j]!.job.priority < waiting[i]!.job.priority ? fresh[j++]! : waiting[i++]!);
  while (i < waiting.length) merged.push(waiting[i++]!);
  while (j < fresh.length) merged.push(fresh[j++]!);
  return merged;
}
