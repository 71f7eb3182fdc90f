import { z } from '@hono/zod-openapi';
import type postgres from 'postgres';
import type { Sql, Tx } from '#shared/db/connect.js';
import { SYSTEM_TENANT } from '#shared/jobs/queue.js';

/** Every status a job can be in, as the API shows and filters by it. */
export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;

const time = z.iso.datetime({ offset: true });

/** A job as the API shows it. */
export const JobView = z
  .object({
    id: z.uuid(),
    kind: z.string(),
    queue: z.string(),
    status: z.enum(JOB_STATUSES),
    priority: z.number().int().openapi({ description: 'Lower runs first.' }),
    attempts: z.number().int().openapi({ description: 'Claims so far.' }),
    max_attempts: z.number().int(),
    run_at: time.openapi({ description: 'Not before this time (the next attempt, while queued).' }),
    progress: z.number().nullable().openapi({ description: '0–100, as last reported by the handler.' }),
    progress_message: z.string().nullable(),
    result: z.unknown().openapi({ description: "The handler's output once succeeded, else null." }),
    last_error: z.string().nullable(),
    error_count: z.number().int().openapi({ description: 'Failed attempts recorded so far.' }),
    pattern_id: z.uuid().nullable(),
    pattern_version: z.number().int().nullable(),
    created_at: time,
    started_at: time.nullable(),
    finished_at: time.nullable(),
    cancel_requested_at: time.nullable(),
    latency_ms: z.number().nullable().openapi({ description: 'finished_at − created_at, once finished.' }),
    rescues: z.number().int().openapi({ description: 'Times its lease was reclaimed from a worker that stopped heartbeating.' }),
  })
  .openapi('Job');

type JobRow = Omit<z.output<typeof JobView>, 'run_at' | 'created_at' | 'started_at' | 'finished_at' | 'cancel_requested_at'> & {
  run_at: Date;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  cancel_requested_at: Date | null;
};

/** The public view's columns of `jobs j`. */
const COLUMNS = (db: Sql | Tx) => db`
  j.id, j.kind, j.queue, j.status, j.priority, j.attempts, j.max_attempts, j.run_at, j.progress, j.progress_message,
  j.result, j.last_error, jsonb_array_length(j.errors) as error_count, j.pattern_id, j.pattern_version, j.created_at,
  j.started_at, j.finished_at, j.cancel_requested_at,
  round(extract(epoch from j.finished_at - j.created_at) * 1000)::float8 as latency_ms, j.rescues`;

/** The caller's jobs matching `rest` (more conditions on `j`), as rows for jobView. */
export function selectJobs(db: Sql | Tx, tenantId: string, rest: postgres.Fragment): Promise<JobRow[]> {
  return db<JobRow[]>`select ${COLUMNS(db)} from leasehold.jobs j where j.tenant_id = ${tenantId}::uuid ${rest}`;
}

/** A row of selectJobs as the API shows it. */
export function jobView(row: JobRow): z.output<typeof JobView> {
  const iso = (d: Date | null) => d && d.toISOString();
  return {
    ...row,
    result: row.result ?? null,
    run_at: row.run_at.toISOString(),
    created_at: row.created_at.toISOString(),
    started_at: iso(row.started_at),
    finished_at: iso(row.finished_at),
    cancel_requested_at: iso(row.cancel_requested_at),
  };
}

/** What GET /v1/jobs filters on. */
export interface JobFilters {
  status?: string;
  kind?: string;
  queue?: string;
  pattern_id?: string;
  created_after?: string;
  created_before?: string;
  cursor?: string;
}

/**
 * One page of a tenant's jobs, newest first, `limit` + 1 rows (the extra one says a next page
 * exists). Walks tenant_jobs backwards by job id and joins each job by primary key; a pattern
 * filter walks jobs_pattern_idx instead, and the system tenant (no tenant_jobs rows) jobs_pkey.
 */
export function listJobs(db: Sql | Tx, tenantId: string, f: JobFilters, limit: number): Promise<JobRow[]> {
  const filters = db`${f.status ? db`and j.status = ${f.status}` : db``}
      ${f.kind ? db`and j.kind = ${f.kind}` : db``}
      ${f.queue ? db`and j.queue = ${f.queue}` : db``}
      ${f.created_after ? db`and j.created_at > ${f.created_after}::timestamptz` : db``}
      ${f.created_before ? db`and j.created_at < ${f.created_before}::timestamptz` : db``}`;
  // A pattern's jobs walk jobs_pattern_idx; the system tenant's, which have no tenant_jobs rows
  // (migration 0007), walk jobs_pkey newest first.
  const source = f.pattern_id || tenantId === SYSTEM_TENANT
    ? db`leasehold.jobs j where j.tenant_id = ${tenantId}::uuid ${f.pattern_id ? db`and j.pattern_id = ${f.pattern_id}::uuid` : db``}
         ${f.cursor ? db`and j.id < ${f.cursor}::uuid` : db``} ${filters} order by j.id desc`
    : // LATERAL … offset 0 keeps the join a nested loop by primary key: joined plainly, the planner
      // chose a merge join that walks jobs_pkey from the newest job, reading every other tenant's
      // newer jobs before reaching an older tenant's.
      db`leasehold.tenant_jobs t
         cross join lateral (select * from leasehold.jobs j where j.id = t.job_id ${filters} offset 0) j
         where t.tenant_id = ${tenantId}::uuid ${f.cursor ? db`and t.job_id < ${f.cursor}::uuid` : db``}
         order by t.job_id desc`;
  return db<JobRow[]>`
    select ${COLUMNS(db)}
    from ${source}
    limit ${limit + 1}`;
}
