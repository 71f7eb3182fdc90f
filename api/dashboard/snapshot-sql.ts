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

/**
 * Spend against ceilings: today's global spend (spend_daily_day_idx, one day's rows) against
 * governor_settings, then the $1 metered tenants nearest their ceilings, each tenant's month read
 * from spend_daily's primary key (tenant_id, day, kind). Every metered tenant gets a daily row (its
 * spend today, with or without a ceiling) and a monthly row when it has a monthly ceiling. Drift is
 * the cost of jobs settled in the period against their estimates.
 */
export const GOVERNOR_PANEL = `
select * from (
  select null::text as tenant, 'global daily' as scope, g.global_daily_micros::float8 as ceiling,
         coalesce(s.spent, 0)::float8 as spent, s.est::float8 as estimated, s.act::float8 as actual
  from (select 1) one
  left join leasehold.governor_settings g on true
  cross join lateral (
    select sum(spent_micros) as spent, sum(settled_estimate_micros) as est, sum(settled_actual_micros) as act
    from leasehold.spend_daily where day = leasehold.governor_today()) s
) global
union all
select * from (
  select t.slug, p.scope, p.ceiling::float8, p.spent::float8, p.est::float8, p.act::float8
  from leasehold.credit_accounts a
  join leasehold.tenants t on t.id = a.tenant_id
  cross join lateral (
    select coalesce(sum(spent_micros) filter (where day = leasehold.governor_today()), 0) as today,
           coalesce(sum(spent_micros), 0) as month,
           sum(settled_estimate_micros) filter (where day = leasehold.governor_today()) as est_today,
           sum(settled_actual_micros) filter (where day = leasehold.governor_today()) as act_today,
           sum(settled_estimate_micros) as est_month, sum(settled_actual_micros) as act_month
    from leasehold.spend_daily s
    where s.tenant_id = a.tenant_id and s.day >= date_trunc('month', leasehold.governor_today())::date) m
  cross join lateral (values ('daily', a.daily_max_micros, m.today, m.est_today, m.act_today),
                             ('monthly', a.monthly_max_micros, m.month, m.est_month, m.act_month)) p(scope, ceiling, spent, est, act)
  where p.scope = 'daily' or p.ceiling is not null
  order by coalesce(p.spent::float8 / p.ceiling, 0) desc, p.spent desc, t.slug, p.scope
  limit $1::int
) tenants`;

/**
 * Webhook health per subscription: deliveries of the last hour (a primary-key range: ids are
 * UUIDv7), deliveries waiting for an attempt (their webhook.deliver jobs, through the queued and
 * running partial indexes, each delivery by primary key), and subscriptions failing or disabled
 * (the webhooks table: a row per subscription). The last error is the newest among the
 * subscription's last day of deliveries (webhook_deliveries_webhook_idx). Deliveries to a job's own
 * callback URL count under a null webhook_id. The $1 most troubled first.
 */
export const WEBHOOKS_PANEL = `
with activity as (
  select webhook_id, count(*) filter (where status = 'delivered') as delivered,
         count(*) filter (where status = 'failed' or (status = 'pending' and attempts > 0)) as failed, 0 as pending
  from leasehold.webhook_deliveries
  where id >= leasehold.uuid_v7_floor(now() - interval '1 hour')
  group by webhook_id
  union all
  select d.webhook_id, 0, 0, count(*)
  from (select id, payload from leasehold.jobs where status = 'queued' and queue = 'webhooks' and kind = 'webhook.deliver'
        union all
        select id, payload from leasehold.jobs where status = 'running' and queue = 'webhooks' and kind = 'webhook.deliver') j
  join leasehold.webhook_deliveries d on d.id = (j.payload->>'delivery_id')::uuid and d.deliver_job_id = j.id and d.status = 'pending'
  group by d.webhook_id
  union all
  select id, 0, 0, 0 from leasehold.webhooks where disabled_at is not null or failing_since is not null
), per as (
  select webhook_id, sum(delivered)::int as delivered, sum(failed)::int as failed, sum(pending)::int as pending
  from activity group by webhook_id
)
select p.webhook_id::text, w.url, t.slug as tenant, p.delivered, p.failed, p.pending,
       w.failing_since, w.disabled_at, w.disabled_reason, e.last_error
from per p
left join leasehold.webhooks w on w.id = p.webhook_id
left join leasehold.tenants t on t.id = w.tenant_id
left join lateral (
  select d.last_error from leasehold.webhook_deliveries d
  where d.webhook_id = p.webhook_id and d.id >= leasehold.uuid_v7_floor(now() - interval '1 day') and d.last_error is not null
  order by d.id desc limit 1) e on true
order by (w.disabled_at is not null) desc, (w.failing_since is not null) desc, p.failed desc, p.pending desc, p.delivered desc
limit $1::int`;

/** Every statement, for the plan test. */
export const SNAPSHOT_STATEMENTS = {
  DEPTH, RECENT_JOBS, LEASES, FAILURES, DEAD_LETTERS, COUNTS, LAST_EVENT_ID, FINISHED_SINCE, GOVERNOR_PANEL, WEBHOOKS_PANEL,
} as const;
