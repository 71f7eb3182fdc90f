import type { Sql } from '#shared/db/connect.js';
import { AppError } from '#shared/errors.js';
import type { Governor } from '#shared/governor/governor.js';
import { reserveRequeue } from '#shared/governor/reserve-requeue.js';
import { isUuid } from '#shared/jobs/uuid.js';

/**
 * Puts the job behind an open dead letter back in its queue with a fresh attempt budget, and
 * returns its id. `tenantId` scopes the lookup (another tenant's dead letter is a 404); null is
 * the operators' dashboard, which acts on every tenant. `actor` (e.g. `key:<id>`) is recorded in
 * admin_actions and in the job's `job.queued` event. A job of a paid kind must pass the governor
 * as a new job would (402, and the dead letter stays open): both callers are reached with an API
 * key, and leasehold.requeue_dead_letter alone is the operators' override (docs/operators.md).
 */
export async function requeueDeadLetter(
  sql: Sql,
  governor: Governor,
  id: string,
  tenantId: string | null,
  actor: string,
): Promise<{ jobId: string; kind: string; tenantId: string }> {
  const notFound = new AppError('not_found', `no dead letter ${id}`);
  if (!isUuid(id)) throw notFound;
  return sql.begin(async (tx) => {
    const [dl] = await tx<{ requeued_at: Date | null; job_id: string; kind: string; tenant_id: string }[]>`
      select requeued_at, job_id, kind, tenant_id from leasehold.dead_letters
      where id = ${id}::uuid and (${tenantId}::uuid is null or tenant_id = ${tenantId}::uuid)`;
    if (!dl) throw notFound;
    const alreadyRequeued = (at: Date) => new AppError('invalid_state', `dead letter ${id} was already requeued at ${at.toISOString()}`);
    if (dl.requeued_at) throw alreadyRequeued(dl.requeued_at);
    // The job first, then its dead letter: the order of every transition (POST /v1/jobs/:id/retry,
    // FAIL_JOBS, the reclaimer, requeue_dead_letter). Taking the dead letter first deadlocked
    // (40P01) against a retry of the same job.
    const [job] = await tx<{ id: string; tenant_id: string; kind: string; payload: unknown; status: string }[]>`
      select id, tenant_id, kind, payload, status from leasehold.jobs where id = ${dl.job_id}::uuid for update`;
    const [open] = await tx<{ requeued_at: Date | null }[]>`
      select requeued_at from leasehold.dead_letters where id = ${id}::uuid for update`;
    if (!open) throw notFound;
    // Requeued (or its job retried) while this waited for the job.
    if (open.requeued_at) throw alreadyRequeued(open.requeued_at);
    if (job && (job.status === 'failed' || job.status === 'cancelled')) await reserveRequeue(tx, governor, job);
    const [r] = await tx<{ job_id: string | null }[]>`select leasehold.requeue_dead_letter(${id}::uuid, ${tenantId}::uuid, ${actor}) as job_id`;
    // Open, but its job is no longer failed or cancelled (e.g. an operator changed it by hand).
    if (!r!.job_id) throw new AppError('invalid_state', `the job behind dead letter ${id} is no longer failed or cancelled`);
    return { jobId: r!.job_id, kind: dl.kind, tenantId: dl.tenant_id };
  });
}
