import type { Sql } from '#shared/db/connect.js';
import { AppError } from '#shared/errors.js';
import { isUuid } from '#shared/jobs/uuid.js';

/**
 * Puts the job behind an open dead letter back in its queue with a fresh attempt budget, and
 * returns its id. `tenantId` scopes the lookup (another tenant's dead letter is a 404); null is
 * the operators' dashboard, which acts on every tenant. `actor` (e.g. `key:<id>`) is recorded in
 * admin_actions and in the job's `job.queued` event.
 */
export async function requeueDeadLetter(
  sql: Sql,
  id: string,
  tenantId: string | null,
  actor: string,
): Promise<{ jobId: string; kind: string; tenantId: string }> {
  const notFound = new AppError('not_found', `no dead letter ${id}`);
  if (!isUuid(id)) throw notFound;
  return sql.begin(async (tx) => {
    const [dl] = await tx<{ requeued_at: Date | null; kind: string; tenant_id: string }[]>`
      select requeued_at, kind, tenant_id from leasehold.dead_letters
      where id = ${id}::uuid and (${tenantId}::uuid is null or tenant_id = ${tenantId}::uuid) for update`;
    if (!dl) throw notFound;
    if (dl.requeued_at) throw new AppError('invalid_state', `dead letter ${id} was already requeued at ${dl.requeued_at.toISOString()}`);
    const [r] = await tx<{ job_id: string | null }[]>`select leasehold.requeue_dead_letter(${id}::uuid, ${tenantId}::uuid, ${actor}) as job_id`;
    // Open, but its job is no longer failed or cancelled (e.g. an operator changed it by hand).
    if (!r!.job_id) throw new AppError('invalid_state', `the job behind dead letter ${id} is no longer failed or cancelled`);
    return { jobId: r!.job_id, kind: dl.kind, tenantId: dl.tenant_id };
  });
}
