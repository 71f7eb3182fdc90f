import type { Sql } from '#shared/db/connect.js';
import type { Logger } from '#shared/log.js';
import { PREPARED, RECLAIM_EXPIRED } from '#shared/jobs/queue-sql.js';

/** What one reclaim pass did. */
export interface ReclaimReport {
  requeued: number;
  failed: number;
  cancelled: number;
  /** Queues that have jobs ready again. */
  queues: Set<string>;
  /** Jobs failed for good (out of attempts), by queue and kind. */
  deadLettered: Map<string, { queue: string; kind: string; n: number }>;
}

const BATCH = 500;

/**
 * Takes back every lease past its expiry, 500 rows a statement until none is left. Safe to run
 * in every worker at once: SKIP LOCKED splits the stale rows between concurrent reclaimers.
 */
export async function reclaimExpired(sql: Sql): Promise<ReclaimReport> {
  const report: ReclaimReport = { requeued: 0, failed: 0, cancelled: 0, queues: new Set(), deadLettered: new Map() };
  for (;;) {
    const rows = await sql.unsafe<{ id: string; status: string; queue: string; kind: string }[]>(RECLAIM_EXPIRED, [BATCH], PREPARED);
    for (const r of rows) {
      if (r.status === 'queued') report.requeued++, report.queues.add(r.queue);
      else if (r.status === 'failed') {
        report.failed++;
        const key = `${r.queue}\0${r.kind}`;
        const dead = report.deadLettered.get(key);
        if (dead) dead.n++;
        else report.deadLettered.set(key, { queue: r.queue, kind: r.kind, n: 1 });
      } else report.cancelled++;
    }
    if (rows.length < BATCH) return report;
  }
}

/** Runs reclaimExpired every `intervalMs` (±25 % so many workers spread out) until stopped. */
export function startReclaimer(opts: {
  sql: Sql;
  intervalMs: number;
  log: Logger;
  onReclaimed: (report: ReclaimReport) => void;
}): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(tick, opts.intervalMs * (0.75 + Math.random() * 0.5));
  };
  const tick = () => {
    running = reclaimExpired(opts.sql)
      .then((report) => {
        if (report.requeued + report.failed + report.cancelled > 0) {
          opts.log.warn(
            { requeued: report.requeued, failed: report.failed, cancelled: report.cancelled },
            'reclaimed expired leases',
          );
          opts.onReclaimed(report);
        }
      })
      .catch((err: unknown) => opts.log.warn({ err }, 'reclaim pass failed; will retry'))
      .finally(schedule);
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
