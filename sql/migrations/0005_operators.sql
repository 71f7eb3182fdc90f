-- The operators' surface: views that answer "what is wrong and why is my job not running?" without
-- scanning the whole jobs table, audited admin functions, and recurring jobs (schedules).
-- No index is added to jobs or job_events: every transition would pay for it (see 0002).

-- ---- helpers ---------------------------------------------------------------------------------

-- The smallest UUIDv7 of a moment: every id the application made at or after `p_at` sorts at or
-- above it, so "created before p_at" is a primary-key range (retention walks jobs this way).
create function leasehold.uuid_v7_floor(p_at timestamptz) returns uuid
language sql immutable parallel safe as $$
  select (lpad(to_hex(floor(extract(epoch from p_at) * 1000)::bigint), 12, '0') || '00000000000000000000')::uuid
$$;

-- The first job_events id written at or after `p_at`, found by a binary search over the primary
-- key (~40 index probes) instead of an index on created_at that every transition would maintain.
-- Ids grow with time, but created_at is its transaction's start: an event of a transaction that
-- ran for a while sits among later ones. Callers search a few minutes early and filter on
-- created_at, so only transactions longer than that margin can make the answer approximate.
create function leasehold.job_event_id_at(p_at timestamptz) returns bigint
language plpgsql stable as $$
declare
  lo bigint;
  hi bigint;
  mid bigint;
  t timestamptz;
begin
  select min(id), max(id) + 1 into lo, hi from leasehold.job_events;
  if lo is null then
    return 1;
  end if;
  while lo < hi loop
    mid := lo + (hi - lo) / 2;
    select created_at into t from leasehold.job_events where id >= mid order by id limit 1;
    if t >= p_at then hi := mid; else lo := mid + 1; end if;
  end loop;
  return lo;
end $$;

-- Workers seen in the last minute and not stopped, with the leases each holds now. A worker
-- claims ahead of what it runs (prefetch), so `holding` may exceed `concurrency`.
create view leasehold.live_workers as
select w.id, w.host, w.pid, w.queues, w.kinds, w.concurrency, w.started_at, w.last_seen_at,
       coalesce(h.holding, 0)::int as holding,
       greatest(w.concurrency - coalesce(h.holding, 0), 0)::int as free_slots
from leasehold.workers w
left join (
  select lease_owner, count(*) as holding from leasehold.jobs where status = 'running' group by lease_owner
) h on h.lease_owner = w.id
where w.stopped_at is null and w.last_seen_at > now() - interval '1 minute';

-- Why the governor holds a kind back for a tenant (its runtime brake, 0004); null when it does not.
-- job_diagnosis reads it through this one function, so a different policy is one `create or replace`.
create function leasehold.diagnosis_governor_reason(p_kind text, p_tenant_id uuid) returns text
language sql stable as $$
  select leasehold.governor_block_reason(p_kind, p_tenant_id)
$$;

-- ---- views -----------------------------------------------------------------------------------

-- Per queue and kind: live depth (queued rows through jobs_claim_idx, running ones through
-- jobs_lease_expiry_idx), the oldest ready job's wait, and outcomes of the last minute and hour
-- from job_events (an id range found by job_event_id_at with a 5-minute margin, each event's job
-- by primary key).
create view leasehold.queue_summary as
with live as (
  -- Queue by queue (every queue that ever held a job has a row in queues): each lateral is an
  -- index range of jobs_claim_idx, which the planner cannot trade for a scan of the whole table.
  select qs.name as queue, x.kind, x.ready, x.scheduled, 0::bigint as running, x.oldest_ready_at
  from leasehold.queues qs
  cross join lateral (
    select kind,
           count(*) filter (where run_at <= now()) as ready,
           count(*) filter (where run_at > now()) as scheduled,
           min(run_at) filter (where run_at <= now()) as oldest_ready_at
    from leasehold.jobs where status = 'queued' and queue = qs.name
    group by kind
  ) x
  union all
  select queue, kind, 0 as ready, 0 as scheduled, count(*) as running, null::timestamptz as oldest_ready_at
  from leasehold.jobs where status = 'running'
  group by queue, kind
), recent as (
  select j.queue, j.kind,
         count(*) filter (where e.type = 'job.succeeded') as succeeded_1h,
         count(*) filter (where e.type = 'job.failed') as failed_1h,
         count(*) filter (where e.type = 'job.retrying') as retried_1h,
         count(*) filter (where e.type = 'job.cancelled') as cancelled_1h,
         count(*) filter (where e.type = 'job.succeeded' and e.created_at >= now() - interval '1 minute') as succeeded_1m,
         count(*) filter (where e.type = 'job.failed' and e.created_at >= now() - interval '1 minute') as failed_1m
  from leasehold.job_events e
  join leasehold.jobs j on j.id = e.job_id
  where e.id >= (select leasehold.job_event_id_at(now() - interval '65 minutes'))
    and e.created_at >= now() - interval '1 hour'
    and e.type in ('job.succeeded', 'job.failed', 'job.retrying', 'job.cancelled')
  group by j.queue, j.kind
), keys as (
  select queue, kind from live union select queue, kind from recent
)
select k.queue, k.kind,
       coalesce(q.paused_at is not null, false) as paused,
       coalesce(l.ready, 0)::int as ready,
       coalesce(l.scheduled, 0)::int as scheduled,
       coalesce(l.running, 0)::int as running,
       now() - l.oldest_ready_at as oldest_ready_age,
       coalesce(r.succeeded_1m, 0)::int as succeeded_1m,
       coalesce(r.failed_1m, 0)::int as failed_1m,
       coalesce(r.succeeded_1h, 0)::int as succeeded_1h,
       coalesce(r.failed_1h, 0)::int as failed_1h,
       coalesce(r.retried_1h, 0)::int as retried_1h,
       coalesce(r.cancelled_1h, 0)::int as cancelled_1h,
       round(coalesce(r.succeeded_1m + r.failed_1m, 0) / 60.0, 2) as per_s_1m,
       round(coalesce(r.succeeded_1h + r.failed_1h, 0) / 3600.0, 2) as per_s_1h,
       round(r.failed_1h::numeric / nullif(r.succeeded_1h + r.failed_1h, 0), 4) as failure_rate_1h
from keys k
left join (
  select queue, kind, sum(ready) as ready, sum(scheduled) as scheduled, sum(running) as running,
         min(oldest_ready_at) as oldest_ready_at
  from live group by queue, kind
) l on l.queue = k.queue and l.kind = k.kind
left join recent r on r.queue = k.queue and r.kind = k.kind
left join leasehold.queues q on q.name = k.queue;

-- Every running job's lease: who holds it, since when this attempt was claimed (its last
-- job.running event, through job_events_job_idx), the last heartbeat and when it expires.
create view leasehold.active_leases as
select j.id as job_id, j.tenant_id, j.kind, j.queue, j.lease_owner as worker,
       w.host as worker_host, w.pid as worker_pid,
       coalesce(w.stopped_at is null and w.last_seen_at > now() - interval '1 minute', false) as worker_live,
       j.attempts as attempt, j.max_attempts,
       c.claimed_at, now() - c.claimed_at as lease_age,
       j.heartbeat_at as last_heartbeat, now() - j.heartbeat_at as since_heartbeat,
       j.lease_expires_at, j.lease_expires_at - now() as expires_in,
       j.progress, j.progress_message, j.cancel_requested_at is not null as cancel_requested
from leasehold.jobs j
left join leasehold.workers w on w.id = j.lease_owner
left join lateral (
  select e.created_at as claimed_at from leasehold.job_events e
  where e.job_id = j.id and e.type = 'job.running'
  order by e.id desc limit 1
) c on true
where j.status = 'running';

-- For each queued job, the first reason it is not running (in this order): not due yet (retry
-- backoff, or run_at in the future), its queue paused, no live worker serving the queue or the
-- kind, the governor, every serving worker busy; otherwise it is ready and should be claimed soon.
-- Live workers are read once per query (a materialised CTE), not once per job.
create view leasehold.job_diagnosis as
with w as materialized (
  select queues, kinds, concurrency, free_slots from leasehold.live_workers
)
select j.id as job_id, j.tenant_id, j.kind, j.queue, j.priority, j.run_at, j.attempts, j.max_attempts,
       now() - j.run_at as waiting_for, r.reason, d.detail
from leasehold.queues q
-- Queue by queue, in claim order: a subquery with ORDER BY is not flattened, so each is an index
-- range of jobs_claim_idx, and a filter on job_id is still pushed down into it (jobs_pkey).
cross join lateral (
  select * from leasehold.jobs j
  where j.status = 'queued' and j.queue = q.name
  order by j.priority, j.run_at, j.id
) j
cross join lateral (
  select count(*) filter (where w.queues is null or j.queue = any (w.queues)) as serving_queue,
         count(*) filter (where (w.queues is null or j.queue = any (w.queues)) and j.kind = any (w.kinds)) as serving_kind,
         coalesce(sum(w.concurrency) filter (where (w.queues is null or j.queue = any (w.queues)) and j.kind = any (w.kinds)), 0) as slots,
         coalesce(sum(w.free_slots) filter (where (w.queues is null or j.queue = any (w.queues)) and j.kind = any (w.kinds)), 0) as free_slots,
         (select count(*) from w) as live
  from w
) s
cross join lateral (
  select case when j.run_at > now() or q.paused_at is not null or s.serving_kind = 0 then null
              else leasehold.diagnosis_governor_reason(j.kind, j.tenant_id) end as governor
) g
cross join lateral (
  select case
           when j.run_at > now() and j.attempts > 0 then 'retry_backoff'
           when j.run_at > now() then 'scheduled'
           when q.paused_at is not null then 'queue_paused'
           when s.serving_queue = 0 then 'no_worker'
           when s.serving_kind = 0 then 'no_worker_for_kind'
           when g.governor is not null then 'governor'
           when s.free_slots = 0 then 'concurrency_full'
           else 'ready'
         end as reason
) r
cross join lateral (
  select case r.reason
    when 'retry_backoff' then format('attempt %s of %s failed (%s); waiting for the retry backoff: the next attempt is due in %s, at %s',
                                     j.attempts, j.max_attempts, coalesce(j.last_error, 'no message'),
                                     date_trunc('second', j.run_at - now()), j.run_at)
    when 'scheduled' then format('run_at is in the future: due in %s, at %s', date_trunc('second', j.run_at - now()), j.run_at)
    when 'queue_paused' then format('queue %s was paused at %s; resume it with: select leasehold.resume_queue(%L)',
                                    j.queue, q.paused_at, j.queue)
    when 'no_worker' then format('no live worker serves queue %s (%s live worker(s) in all); start one with WORKER_QUEUES including %s, or all',
                                 j.queue, s.live, j.queue)
    when 'no_worker_for_kind' then format('%s live worker(s) serve queue %s, but none handles kind %s (no handler registered for it)',
                                          s.serving_queue, j.queue, j.kind)
    when 'governor' then format('the governor holds it back: %s', g.governor)
    when 'concurrency_full' then format('concurrency limit full: the %s live worker(s) that serve queue %s and kind %s have all %s slots busy; it runs when one frees up',
                                        s.serving_kind, j.queue, j.kind, s.slots)
    else format('ready for %s; nothing blocks it: %s live worker(s) with %s free slot(s) serve it, so it should be claimed soon',
                date_trunc('second', greatest(now() - j.run_at, interval '0')), s.serving_kind, s.free_slots)
  end as detail
) d;

-- What needs a human: leases past expiry that no reclaimer has taken back (no worker running?),
-- and jobs queued longer than `leasehold.stuck_after` (default 5 minutes; `set leasehold.stuck_after
-- = '1 minute'` in a session to change it) past their run_at, each with its diagnosis.
create view leasehold.stuck_jobs as
select j.id as job_id, j.tenant_id, j.kind, j.queue, j.status, 'lease_expired'::text as problem,
       now() - j.lease_expires_at as stuck_for, j.lease_owner, j.attempts, j.max_attempts,
       format('the lease held by %s expired %s ago and no reclaimer has taken it back: is any worker running?',
              j.lease_owner, date_trunc('second', now() - j.lease_expires_at)) as detail
from leasehold.jobs j
where j.status = 'running' and j.lease_expires_at < now()
union all
select d.job_id, d.tenant_id, d.kind, d.queue, 'queued'::leasehold.job_status, 'overdue',
       d.waiting_for, null, d.attempts, d.max_attempts, d.reason || ': ' || d.detail
from leasehold.job_diagnosis d
where d.run_at < now() - coalesce(nullif(current_setting('leasehold.stuck_after', true), '')::interval, interval '5 minutes');

-- Open dead letters grouped by what failed: the 3 a.m. view of "what is breaking".
create view leasehold.dead_letter_summary as
select queue, kind, last_error, count(*)::int as open, min(failed_at) as first_failed_at,
       max(failed_at) as last_failed_at
from leasehold.dead_letters
where requeued_at is null
group by queue, kind, last_error;

-- ---- admin functions, audited ----------------------------------------------------------------

-- One row per admin call, whoever made it (psql, the CLI as `cli:<os user>`, the API as
-- `key:<id>`). Job transitions an action causes are also in job_events with `{"by": actor}` in
-- data; pausing and resuming a queue concern no single job, so they are recorded here only.
create table leasehold.admin_actions (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  actor text not null,
  action text not null,
  target text,
  args jsonb not null default '{}',
  result jsonb
);

-- `job.lease_extended`: an operator extended a running job's lease (extend_lease).
alter table leasehold.job_events drop constraint job_events_type_check;
alter table leasehold.job_events add constraint job_events_type_check
  check (type in ('job.queued', 'job.running', 'job.progress', 'job.retrying', 'job.succeeded', 'job.failed',
                  'job.cancelled', 'job.lease_extended')) not valid;
alter table leasehold.job_events validate constraint job_events_type_check;

-- The actor is added without touching what cancel_job and retry_job do (other migrations may have
-- redefined them, e.g. to settle or reserve credit): they keep their bodies under a new name, and
-- the functions of the old names call them, then stamp the events they wrote with `{"by": actor}`.
-- An added defaulted argument beside the old signatures would make every call ambiguous.
alter function leasehold.cancel_job(uuid, uuid) rename to cancel_job_unaudited;
alter function leasehold.retry_job(uuid, uuid) rename to retry_job_unaudited;
drop function leasehold.requeue_dead_letter(uuid, uuid);
drop function leasehold.pause_queue(text);
drop function leasehold.resume_queue(text);

-- Puts a failed or cancelled job back in its queue with a fresh attempt budget (retry_job's work,
-- open dead letters marked requeued included) and merges `p_data` into the `job.queued` event it
-- wrote. False when the job is not failed or cancelled (or not the tenant's).
create function leasehold.requeue_finished_job(p_job_id uuid, p_tenant_id uuid, p_data jsonb)
returns boolean
language plpgsql as $$
declare
  v_before bigint;
begin
  select coalesce(max(id), 0) into v_before from leasehold.job_events where job_id = p_job_id;
  if not leasehold.retry_job_unaudited(p_job_id, p_tenant_id) then
    return false;
  end if;
  update leasehold.job_events set data = coalesce(data, '{}') || p_data
  where job_id = p_job_id and id > v_before and type = 'job.queued';
  return true;
end $$;

-- Cancels a job: a queued one at once; a running one is asked to stop (its worker hears the
-- NOTIFY, aborts the handler and records `cancelled`). Returns the status after the call.
create function leasehold.cancel_job(p_job_id uuid, p_tenant_id uuid default null, p_actor text default current_user)
returns leasehold.job_status
language plpgsql as $$
declare
  v_was leasehold.job_status;
  v_now leasehold.job_status;
  v_before bigint;
begin
  select status into v_was from leasehold.jobs
  where id = p_job_id and (p_tenant_id is null or tenant_id = p_tenant_id)
  for update;
  if not found then
    return null;
  end if;
  select coalesce(max(id), 0) into v_before from leasehold.job_events where job_id = p_job_id;
  v_now := leasehold.cancel_job_unaudited(p_job_id, p_tenant_id);
  update leasehold.job_events set data = coalesce(data, '{}') || jsonb_build_object('reason', 'cancel', 'by', p_actor)
  where job_id = p_job_id and id > v_before and type = 'job.cancelled';
  insert into leasehold.admin_actions (actor, action, target, result)
  values (p_actor, 'cancel_job', p_job_id::text, jsonb_build_object('was', v_was, 'now', v_now));
  return v_now;
end $$;

-- Puts a failed or cancelled job back in its queue (see requeue_finished_job). False otherwise.
create function leasehold.retry_job(p_job_id uuid, p_tenant_id uuid default null, p_actor text default current_user)
returns boolean
language plpgsql as $$
begin
  if not leasehold.requeue_finished_job(p_job_id, p_tenant_id, jsonb_build_object('reason', 'retry', 'by', p_actor)) then
    return false;
  end if;
  insert into leasehold.admin_actions (actor, action, target) values (p_actor, 'retry_job', p_job_id::text);
  return true;
end $$;

-- Requeues the job behind one open dead letter. Returns the job id, or null.
create function leasehold.requeue_dead_letter(p_dead_letter_id uuid, p_tenant_id uuid default null,
                                              p_actor text default current_user)
returns uuid
language plpgsql as $$
declare
  v_job_id uuid;
begin
  select job_id into v_job_id from leasehold.dead_letters
  where id = p_dead_letter_id and requeued_at is null
    and (p_tenant_id is null or tenant_id = p_tenant_id)
  for update;
  if v_job_id is null or not leasehold.requeue_finished_job(v_job_id, p_tenant_id,
       jsonb_build_object('reason', 'requeue', 'by', p_actor, 'dead_letter_id', p_dead_letter_id)) then
    return null;
  end if;
  insert into leasehold.admin_actions (actor, action, target, result)
  values (p_actor, 'requeue_dead_letter', p_dead_letter_id::text, jsonb_build_object('job_id', v_job_id));
  return v_job_id;
end $$;

-- Requeues every open dead letter that matches all the filters given (null: any): kind, queue,
-- tenant, failed at or after `p_since`, last error matching the case-insensitive regular
-- expression `p_error_pattern`; oldest first, at most `p_limit`. Returns how many were requeued.
create function leasehold.requeue_dead_letters(
  p_kind text default null, p_queue text default null, p_tenant_id uuid default null,
  p_since timestamptz default null, p_error_pattern text default null,
  p_actor text default current_user, p_limit integer default 10000)
returns integer
language plpgsql as $$
declare
  r record;
  n integer := 0;
begin
  if p_limit is null or p_limit < 1 then
    raise exception 'p_limit must be at least 1' using errcode = '22023';
  end if;
  for r in
    select id, job_id from leasehold.dead_letters
    where requeued_at is null
      and (p_kind is null or kind = p_kind)
      and (p_queue is null or queue = p_queue)
      and (p_tenant_id is null or tenant_id = p_tenant_id)
      and (p_since is null or failed_at >= p_since)
      and (p_error_pattern is null or coalesce(last_error, '') ~* p_error_pattern)
    order by failed_at, id
    limit p_limit
    for update skip locked
  loop
    if leasehold.requeue_finished_job(r.job_id, null,
         jsonb_build_object('reason', 'requeue', 'by', p_actor, 'dead_letter_id', r.id)) then
      n := n + 1;
    end if;
  end loop;
  insert into leasehold.admin_actions (actor, action, args, result)
  values (p_actor, 'requeue_dead_letters',
          jsonb_strip_nulls(jsonb_build_object('kind', p_kind, 'queue', p_queue, 'tenant_id', p_tenant_id,
                                               'since', p_since, 'error_pattern', p_error_pattern, 'limit', p_limit)),
          jsonb_build_object('requeued', n));
  return n;
end $$;

-- Extends a running job's lease by `p_by` (from its expiry, or from now if it has passed), so the
-- reclaimer leaves it alone that much longer; heartbeats never shorten it. Only running jobs;
-- 1 second to 1 day. Returns the new expiry, or null when the job is not running.
create function leasehold.extend_lease(p_job_id uuid, p_by interval, p_tenant_id uuid default null,
                                       p_actor text default current_user)
returns timestamptz
language plpgsql as $$
declare
  j leasehold.jobs;
begin
  if p_by is null or p_by < interval '1 second' or p_by > interval '1 day' then
    raise exception 'a lease can be extended by 1 second to 1 day, not %', p_by using errcode = '22023';
  end if;
  update leasehold.jobs
  set lease_expires_at = greatest(lease_expires_at, now()) + p_by, updated_at = now()
  where id = p_job_id and (p_tenant_id is null or tenant_id = p_tenant_id) and status = 'running'
  returning * into j;
  if not found then
    return null;
  end if;
  insert into leasehold.job_events (job_id, tenant_id, type, attempt, data)
  values (j.id, j.tenant_id, 'job.lease_extended', j.attempts,
          jsonb_build_object('reason', 'extend_lease', 'by', p_actor, 'extended_by_s', extract(epoch from p_by),
                             'lease_expires_at', j.lease_expires_at, 'worker', j.lease_owner));
  insert into leasehold.admin_actions (actor, action, target, args, result)
  values (p_actor, 'extend_lease', j.id::text, jsonb_build_object('by', p_by::text),
          jsonb_build_object('lease_expires_at', j.lease_expires_at));
  perform pg_notify('leasehold_events', '');
  return j.lease_expires_at;
end $$;

-- Pauses a queue: every claim checks, so no worker takes another job from it; jobs already
-- claimed run on. Creates the queue's row if no job has used it yet. False when already paused.
create function leasehold.pause_queue(p_queue text, p_actor text default current_user) returns boolean
language plpgsql as $$
declare
  v_was timestamptz;
begin
  insert into leasehold.queues (name) values (p_queue) on conflict (name) do nothing;
  select paused_at into v_was from leasehold.queues where name = p_queue for update;
  if v_was is not null then
    return false;
  end if;
  update leasehold.queues set paused_at = now() where name = p_queue;
  insert into leasehold.admin_actions (actor, action, target) values (p_actor, 'pause_queue', p_queue);
  return true;
end $$;

-- Resumes a paused queue and wakes the workers that serve it. False when it was not paused.
create function leasehold.resume_queue(p_queue text, p_actor text default current_user) returns boolean
language plpgsql as $$
begin
  update leasehold.queues set paused_at = null where name = p_queue and paused_at is not null;
  if not found then
    return false;
  end if;
  insert into leasehold.admin_actions (actor, action, target) values (p_actor, 'resume_queue', p_queue);
  perform pg_notify('leasehold_jobs', p_queue);
  return true;
end $$;

-- ---- recurring jobs --------------------------------------------------------------------------

-- A job enqueued at every tick of a cron expression (5 fields, or 6 with seconds) in a time zone.
-- Schedulers in every worker compute due ticks; schedule_ticks makes each tick enqueue once.
create table leasehold.schedules (
  id uuid primary key default leasehold.uuid_v7(),
  name text not null unique check (length(name) between 1 and 200),
  cron text not null,
  timezone text not null default 'UTC',
  kind text not null check (kind <> ''),
  payload jsonb not null default '{}',
  queue text not null default 'default' check (queue <> ''),
  priority integer not null default 100,
  max_attempts integer not null default 3 check (max_attempts between 1 and 1000),
  tenant_id uuid not null default '00000000-0000-0000-0000-000000000000' references leasehold.tenants (id) on delete cascade,
  enabled boolean not null default true,
  -- Ticks at or before this are never enqueued: creation, and every resume (missed ticks of a
  -- pause are skipped).
  ticks_from timestamptz not null default now(),
  last_tick_at timestamptz,
  last_job_id uuid,
  -- Why the scheduler could not use this schedule (a bad cron expression or time zone), if so.
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- One row per enqueued tick: the primary key is what makes a tick enqueue exactly once.
create table leasehold.schedule_ticks (
  schedule_id uuid not null references leasehold.schedules (id) on delete cascade,
  tick_at timestamptz not null,
  job_id uuid not null,
  created_at timestamptz not null default now(),
  primary key (schedule_id, tick_at)
);
