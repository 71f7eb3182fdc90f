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
      where id = ${id}::uuid and (${tenantId}::uuid is null or tenant_id = ${tenantId}::uuid) for update`;
    if (!dl) throw notFound;
    if (dl.requeued_at) throw new AppError('invalid_state', `dead letter ${id} was already requeued at ${dl.requeued_at.toISOString()}`);
    // Locked in the order requeue_dead_letter takes them: the dead letter, then its job.
    const [job] = await tx<{ id: string; tenant_id: string; kind: string; payload: unknown }[]>`
      select id, tenant_id, kind, payload from leasehold.jobs
      where id = ${dl.job_id}::uuid and status in ('failed', 'cancelled') for update`;
    if (job) await reserveRequeue(tx, governor, job);
    const [r] = await tx<{ job_id: string | null }[]>`select leasehold.requeue_dead_letter(${id}::uuid, ${tenantId}::uuid, ${actor}) as job_id`;
    // Open, but its job is no longer failed or cancelled (e.g. an operator changed it by hand).
    if (!r!.job_id) throw new AppError('invalid_state', `the job behind dead letter ${id} is no longer failed or cancelled`);
    return { jobId: r!.job_id, kind: dl.kind, tenantId: dl.tenant_id };
  });
}
