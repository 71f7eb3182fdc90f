import type { Tx } from '../db/connect.js';
import { AppError } from '../errors.js';
import { KINDS, isKind, isPaidKind } from '../jobs/kinds.js';
import type { Governor } from './governor.js';
import { reserveJobs } from './reserve.js';

/** What a finished job's requeue is priced from: its row as it stands. */
export interface FinishedJob {
  id: string;
  tenant_id: string;
  kind: string;
  payload: unknown;
}

/**
 * Before a failed or cancelled job goes back to its queue at a tenant's request (retry, dead-letter
 * requeue): a job of a paid kind must pass what a new job of that kind passes. It is estimated
 * afresh, checked against the margin floor (402 margin_floor), and its estimate reserved through
 * governor_reserve with the global, per-job, daily, monthly and per-kind ceilings and the credit
 * check (402 budget_exceeded naming the ceiling). The caller holds the job's row lock and requeues
 * it in the same transaction, so a refusal rolls back and leaves the job as it was; the requeue then
 * holds nothing more (retry_job_unaudited sees the open reservation). Free kinds pass untouched.
 */
export async function reserveRequeue(tx: Tx, governor: Governor, job: FinishedJob): Promise<void> {
  if (!isKind(job.kind) || !isPaidKind(job.kind)) return;
  const parsed = KINDS[job.kind].payload.safeParse(job.payload);
  // A payload its kind no longer accepts would fail at once anyway: it is not worth a reservation.
  if (!parsed.success) throw new AppError('invalid_state', `job ${job.id} has a payload that is no longer a valid ${job.kind} payload; it cannot run again`);
  const estimate = await governor.estimateJob(tx, job.tenant_id, job.kind, parsed.data);
  if (!estimate) return;
  governor.checkMargin(job.kind, estimate.micros);
  await reserveJobs(tx, job.tenant_id, job.kind, estimate.micros, [job.id]);
}
