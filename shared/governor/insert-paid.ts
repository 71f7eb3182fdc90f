import type { Sql, Tx } from '../db/connect.js';
import { isPaidKind } from '../jobs/kinds.js';
import { insertJobs, SYSTEM_TENANT, type EnqueueResult, type InsertOptions, type NewJob } from '../jobs/queue.js';
import type { Governor } from './governor.js';
import { reserveJobs } from './reserve.js';

/**
 * insertJobs for a producer on behalf of a tenant: jobs of a paid kind are estimated, checked
 * against the margin floor (402) and inserted together with their reservation in one transaction
 * (the caller's, or one of its own), so a refusal leaves nothing behind. Free kinds go straight in.
 * `opts` bounds the queues as insertJobs does.
 */
export async function insertPaidJobs(db: Sql | Tx, governor: Governor, jobs: NewJob[], opts: InsertOptions = {}): Promise<EnqueueResult> {
  if (!jobs.some((j) => isPaidKind(j.kind))) return insertJobs(db, jobs, opts);
  const run = async (tx: Sql | Tx) => {
    const estimates = await Promise.all(jobs.map((j) => governor.estimateJob(tx, j.tenantId ?? SYSTEM_TENANT, j.kind, j.payload)));
    jobs.forEach((j, i) => estimates[i] && governor.checkMargin(j.kind, estimates[i].micros));
    const result = await insertJobs(tx, jobs, opts);
    for (const [i, j] of jobs.entries()) {
      const estimate = estimates[i];
      // A job its idempotency key found already there holds its own reservation: reserve once.
      if (estimate && result.created[i]) await reserveJobs(tx, j.tenantId ?? SYSTEM_TENANT, j.kind, estimate.micros, [result.ids[i]!]);
    }
    return result;
  };
  return 'begin' in db ? db.begin(run) as Promise<EnqueueResult> : run(db);
}
