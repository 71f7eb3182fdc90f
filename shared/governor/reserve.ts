import type { Sql, Tx } from '../db/connect.js';
import { PREPARED, RESERVE_JOBS } from '../jobs/queue-sql.js';
import { refusalError, type Refusal } from './governor.js';

/**
 * Reserves the estimate of each of the just-inserted jobs `ids` and records it on them, in the
 * caller's transaction; throws the 402 problem (which rolls the jobs back) when a ceiling refuses.
 */
export async function reserveJobs(db: Sql | Tx, tenantId: string, kind: string, estimateMicros: number, ids: string[]): Promise<void> {
  const [row] = await db.unsafe<{ refusal: Refusal | null }[]>(RESERVE_JOBS, [tenantId, kind, estimateMicros, ids], PREPARED);
  if (row!.refusal) throw refusalError(row!.refusal);
}
