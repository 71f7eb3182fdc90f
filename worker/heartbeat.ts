import { hostname } from 'node:os';
import type { Sql } from '#shared/db/connect.js';
import type { Logger } from '#shared/log.js';
import { HEARTBEAT, PREPARED } from '#shared/jobs/queue-sql.js';
import type { HeldJob } from './held-job.js';

/**
 * How long after a heartbeat (or claim) was sent the worker may still trust its lease: the lease
 * less a margin, so a handler cut off from the database stops before the reclaimer can requeue.
 */
export function leaseBudgetMs(leaseMs: number): number {
  return leaseMs - Math.min(2_000, leaseMs / 10);
}

/** Who the worker is, as recorded in `leasehold.workers`. */
export interface WorkerIdentity {
  id: string;
  queues: string[] | null;
  kinds: string[];
  concurrency: number;
}

/**
 * Extends every lease the worker holds with one statement each `intervalMs`. A running job missing
 * from the answer lost its lease (reclaimed, or finished elsewhere) and is aborted; when heartbeats
 * cannot get through, each job is presumed lost once its last extended lease has run out locally.
 */
export function startHeartbeat(opts: {
  sql: Sql;
  intervalMs: number;
  leaseMs: number;
  identity: WorkerIdentity;
  log: Logger;
  held: () => Iterable<HeldJob>;
  onCancelRequested: (held: HeldJob) => void;
  onLeaseLost: (held: HeldJob, why: string) => void;
}): { beat(): Promise<void>; stop(): Promise<void> } {
  const { sql, identity } = opts;
  let timer: NodeJS.Timeout | undefined;
  let deadlineTimer: NodeJS.Timeout | undefined;
  let inflight: Promise<void> | undefined;
  let stopped = false;

  const beat = async () => {
    const snapshot = [...opts.held()];
    const sentAt = Date.now();
    try {
      const rows = await sql.unsafe<{ id: string; cancel_requested: boolean }[]>(HEARTBEAT, [
        snapshot.map((h) => h.job.id),
        snapshot.map((h) => h.token),
        opts.leaseMs,
        identity.id,
        hostname(),
        process.pid,
        identity.queues,
        identity.kinds,
        identity.concurrency,
      ], PREPARED);
      const alive = new Map(rows.map((r) => [r.id, r.cancel_requested]));
      for (const h of snapshot) {
        const cancel = alive.get(h.job.id);
        if (cancel === undefined) {
          // A job whose outcome is being written may have been completed while this statement
          // ran: that write clears the lease, and its own fence reports a lease that was lost.
          if (h.state !== 'settling') opts.onLeaseLost(h, 'heartbeat found the lease gone');
        } else {
          h.leaseDeadline = sentAt + leaseBudgetMs(opts.leaseMs);
          if (cancel) opts.onCancelRequested(h);
        }
      }
    } catch (err) {
      opts.log.warn({ err, jobs: snapshot.length }, 'heartbeat failed; leases run out locally unless one gets through');
    }
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      inflight = beat().finally(schedule);
    }, opts.intervalMs);
  };
  // Local expiry check, several times within the margin leaseBudgetMs keeps (and at least 4× per
  // heartbeat interval): a worker cut off from the database stops its handlers before the reclaimer
  // hands their jobs to someone else. Checking only every intervalMs / 4 overshot the margin
  // (2.5 s against 2 s with the defaults), so a handler could still run after its lease expired.
  const checkEveryMs = Math.max(10, Math.min(opts.intervalMs, opts.leaseMs - leaseBudgetMs(opts.leaseMs)) / 4);
  const checkDeadlines = () => {
    const now = Date.now();
    for (const h of opts.held()) if (h.leaseDeadline <= now) opts.onLeaseLost(h, 'lease ran out without a heartbeat');
    if (!stopped) deadlineTimer = setTimeout(checkDeadlines, checkEveryMs);
  };
  inflight = beat().finally(schedule);
  checkDeadlines();

  return {
    beat: () => (inflight = beat()),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(deadlineTimer);
      await inflight;
    },
  };
}
