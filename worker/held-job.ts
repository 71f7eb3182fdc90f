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
  run_at: Date;
  created_at: Date;
  cancel_requested: boolean;
}

/** A job this worker holds a lease on, from claim until its outcome is written. */
export interface HeldJob {
  job: ClaimedJob;
  /** The claim's lease token: every write about this job is fenced by it. */
  token: string;
  state: 'buffered' | 'running' | 'settling';
  controller: AbortController;
  /** Local clock time after which the lease must be presumed lost (no heartbeat got through). */
  leaseDeadline: number;
}

/** How an attempt ended, as the completer writes it. */
export type Outcome =
  | { type: 'success'; result: unknown }
  | { type: 'retry'; message: string; code: string; retryAt: Date; stack?: string }
  | { type: 'permanent'; message: string; code: string; stack?: string }
  | { type: 'cancelled'; message: string }
  | { type: 'handback' }
  /** The lease is gone: nothing may be written. */
  | { type: 'drop' };
