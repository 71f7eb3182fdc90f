import type { Sql } from '#shared/db/connect.js';
import type { Logger } from '#shared/log.js';
import { storableJson } from '#shared/db/storable-json.js';
import { PREPARED, REPORT_PROGRESS } from '#shared/jobs/queue-sql.js';
import type { HeldJob } from './held-job.js';

/**
 * Coalesces `ctx.progress()` calls: the latest value of each job is written at most every 100 ms,
 * all jobs in one fenced statement with one `job.progress` event each. Progress is advisory, so a
 * failed write is logged and dropped rather than retried.
 */
export class ProgressReporter {
  #pending = new Map<string, { held: HeldJob; pct: number; message: string | null }>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sql: Sql,
    private readonly log: Logger,
    private readonly onWritten: () => void,
  ) {}

  report(held: HeldJob, pct: number, message?: string): void {
    this.#pending.set(held.job.id, { held, pct: Math.max(0, Math.min(100, pct)), message: message ?? null });
    this.#timer ??= setTimeout(() => this.flush(), 100);
  }

  /** Drops what is pending for a job that no longer holds its lease. */
  forget(jobId: string): void {
    this.#pending.delete(jobId);
  }

  /** Writes what is pending now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.size === 0) return;
    const rows = [...this.#pending.values()].map((p) => ({
      id: p.held.job.id,
      lease_token: p.held.token,
      progress: p.pct,
      message: p.message,
    }));
    this.#pending.clear();
    this.sql
      // A message PostgreSQL cannot store (U+0000, an unpaired surrogate) would lose every job's
      // progress of the batch: such characters become U+FFFD.
      .unsafe(REPORT_PROGRESS, [storableJson(rows).text], PREPARED)
      .then(this.onWritten)
      .catch((err: unknown) => this.log.debug({ err }, 'progress not recorded'));
  }
}
