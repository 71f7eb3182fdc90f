import { connect, type Sql } from '#shared/db/connect.js';
import { migrate } from '#shared/db/migrator.js';
import { Notifier } from '#shared/jobs/notifier.js';
import { JobQueue, type NewJob } from '#shared/jobs/queue.js';
import type { Logger } from '#shared/log.js';
import { Worker } from '../../worker/worker.js';
import { idleLatency, timeDrain, type QueueSystem } from './system.js';

/** `n` no-op jobs, as every leasehold bench enqueues them. */
export const noops = (n: number): NewJob[] => Array.from({ length: n }, () => ({ kind: 'system.noop', payload: {} }));

/** True once no job is queued or running: every outcome is written. */
export const drained = (sql: Sql): Promise<boolean> =>
  sql`select not exists(select 1 from leasehold.jobs where status in ('queued', 'running')) as idle`.then(([r]) => r!.idle as boolean);

/** Enqueue→handler-start latencies (ms) of `samples` no-op jobs on an idle worker of its own (bench:queue and bench:compare). */
export function workerLatency(workerSql: Sql, log: Logger, queue: JobQueue, samples: number): Promise<number[]> {
  return idleLatency(
    samples,
    (started) => startWorker(workerSql, log, { concurrency: 10, pollMs: 60_000 }, started),
    () => queue.enqueue({ kind: 'system.noop', payload: {} }),
  );
}

/** A started Worker whose system.noop handler calls `ran` (bench:drain starts its own through this too). */
export async function startWorker(sql: Sql, log: Logger, settings: { concurrency: number; pollMs?: number }, ran: () => void): Promise<Worker> {
  const worker = new Worker({ sql, log, settings, handlers: { 'system.noop': () => (ran(), null) } });
  await worker.start();
  return worker;
}

/**
 * Leasehold as it ships: JobQueue.enqueueMany (COPY from 2,000 rows) and a Worker with its own
 * pool of 10 and default settings (as `leasehold worker` with its defaults: outcomes wait for the
 * WAL flush, WORKER_SYNCHRONOUS_COMMIT=true; claims do not, WORKER_ASYNC_CLAIMS=true, and a crash
 * may undo the last few ms of them); a `job_events` row for every transition.
 */
export function leaseholdSystem(url: string, log: Logger): QueueSystem {
  const sql: Sql = connect(url, { max: 4, application: 'bench-producer' });
  const workerSql: Sql = connect(url, { max: 10, application: 'bench-worker', worker: true });
  const queue = new JobQueue(sql, new Notifier(sql));
  return {
    name: 'leasehold',
    async setup() {
      await migrate(sql);
    },
    async reset() {
      await sql`truncate leasehold.jobs, leasehold.job_events, leasehold.dead_letters, leasehold.workers`;
      await sql`vacuum analyze leasehold.jobs`;
      await sql`vacuum analyze leasehold.job_events`;
    },
    async bulk(n) {
      await queue.enqueueMany(noops(n));
    },
    async fill(n) {
      await this.bulk(n);
      await sql`analyze leasehold.jobs`;
    },
    drain(n, concurrency) {
      // Counted once every outcome is written, not when the last handler returns.
      return timeDrain(n, (ran) => startWorker(workerSql, log, { concurrency }, ran), () => drained(sql));
    },
    latency(samples) {
      return workerLatency(workerSql, log, queue, samples);
    },
    async close() {
      await Promise.all([sql.end(), workerSql.end()]);
    },
  };
}
