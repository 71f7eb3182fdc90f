import { createLogger } from '#shared/log.js';
import { JobQueue } from '#shared/jobs/queue.js';
import { Notifier } from '#shared/jobs/notifier.js';
import type { Sql } from '#shared/db/connect.js';
import { Worker } from '../../worker/worker.js';
import type { WorkerOptions } from '../../worker/worker-settings.js';

/** A quiet logger for tests (LOG_LEVEL=debug shows everything). */
export const testLog = createLogger(process.env.LOG_LEVEL ?? 'silent', 'test');

/** A producer on the given pool. */
export function queueFor(sql: Sql): JobQueue {
  return new JobQueue(sql, new Notifier(sql));
}

/** Workers started by a test, all stopped by stopAll() in afterEach so none outlives its test. */
export class WorkerPool {
  readonly workers: Worker[] = [];

  async start(opts: Omit<WorkerOptions, 'log'> & { log?: WorkerOptions['log'] }): Promise<Worker> {
    const w = new Worker({ log: testLog, ...opts });
    this.workers.push(w);
    await w.start();
    return w;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((w) => w.stop()));
  }
}

/** Reads one job row. */
export async function jobRow(sql: Sql, id: string) {
  const [row] = await sql`select * from leasehold.jobs where id = ${id}`;
  return row!;
}

/** The event types of one job, in order. */
export async function eventTypes(sql: Sql, id: string): Promise<string[]> {
  const rows = await sql<{ type: string }[]>`select type from leasehold.job_events where job_id = ${id} order by id`;
  return rows.map((r) => r.type);
}
