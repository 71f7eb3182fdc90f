/**
 * The statements a dashboard snapshot runs once a second while a dashboard is open. None may scan
 * the jobs table's history: each reads a partial index's range (queued, running), a primary key
 * from its end (latest jobs, latest events) or the open dead letters' partial index.
 * api/dashboard-plan.pg.test.ts explains each one over 60,000 finished jobs.
 */

/** Queued (ready or scheduled) and running jobs per queue and kind: jobs_claim_idx and jobs_lease_expiry_idx. */
export const DEPTH = `
select queue, kind, sum(ready)::int as ready, sum(scheduled)::int as scheduled, sum(running)::int as running
from (
  select queue, kind, count(*) filter (where run_at <= now()) as ready, count(*) filter (where run_at > now()) as scheduled, 0 as running
  from leasehold.jobs where status = 'queued' group by 1, 2
  union all
  select queue, kind, 0, 0, count(*) from leasehold.jobs where status = 'running' group by 1, 2
) s group by 1, 2`;

/** The $1 newest jobs of every tenant: jobs_pkey walked backwards (ids are UUIDv7, time-ordered). */
export const RECENT_JOBS = `
select j.id, t.slug as tenant, j.queue, j.kind, j.status::text, j.attempts, j.updated_at
from leasehold.jobs j left join leasehold.tenants t on t.id = j.tenant_id
order by j.id desc limit $1::int`;

/** The $1 running leases closest to expiry: jobs_lease_expiry_idx in order. */
export const LEASES = `
select id, kind, queue, lease_owner as owner, attempts, max_attempts,
       extract(epoch from now() - heartbeat_at)::float8 as heartbeat_age,
       extract(epoch from lease_expires_at - now())::float8 as expires_in
from leasehold.jobs where status = 'running' order by lease_expires_at limit $1::int`;

/**
 * The $1 latest failed attempts among the last $2 events: job_events_pkey walked backwards over a
 * bounded range, so a quiet failure log never makes it read the whole table.
 */
export const FAILURES = `
select e.job_id, t.slug as tenant, j.kind, e.type, coalesce(e.data->>'error', j.last_error) as error, e.created_at
from leasehold.job_events e
join leasehold.jobs j on j.id = e.job_id
left join leasehold.tenants t on t.id = e.tenant_id
where e.id > (select coalesce(max(id), 0) from leasehold.job_events) - $2::bigint
  and e.type in ('job.failed', 'job.retrying')
order by e.id desc limit $1::int`;

/** The $1 newest open dead letters of every tenant. */
export const DEAD_LETTERS = `
select d.id, d.job_id, t.slug as tenant, d.queue, d.kind, d.attempts, d.max_attempts, d.last_error, d.failed_at
from leasehold.dead_letters d left join leasehold.tenants t on t.id = d.tenant_id
where d.requeued_at is null
order by d.failed_at desc, d.id desc limit $1::int`;

/** Open dead letters and live workers, each count capped at $1 + 1 so a huge backlog costs a bounded read. */
export const COUNTS = `
select (select count(*) from (select 1 from leasehold.dead_letters where requeued_at is null limit $1::int + 1) d)::int as dead_letters,
       (select count(*) from leasehold.workers
         where stopped_at is null and last_seen_at > now() - interval '1 minute')::int as workers`;

/** The newest job_events id: where the next throughput count starts. */
export const LAST_EVENT_ID = `select max(id)::text as id from leasehold.job_events`;

/**
 * Finishing events with ids in ($1, $2], per queue and kind: a primary-key range, each job looked up
 * by primary key. A plain join let the planner hash all of jobs (a Seq Scan over 60,000 rows for
 * 1,500 events); the lateral lookup with OFFSET 0 keeps it a nested loop.
 */
export const FINISHED_SINCE = `
select j.queue, j.kind, e.type, count(*)::int as count
from leasehold.job_events e
cross join lateral (select queue, kind from leasehold.jobs j where j.id = e.job_id offset 0) j
where e.id > $1::bigint and e.id <= $2::bigint
  and e.type in ('job.succeeded', 'job.failed', 'job.retrying')
group by 1, 2, 3`;

/** Every statement, for the plan test. */
export const SNAPSHOT_STATEMENTS = { DEPTH, RECENT_JOBS, LEASES, FAILURES, DEAD_LETTERS, COUNTS, LAST_EVENT_ID, FINISHED_SINCE } as const;
