-- The queue engine: jobs held by leases, the events of every transition, dead letters, the
-- queues and workers an operator can see, and the few functions operators call by hand.
create schema if not exists leasehold;

create type leasehold.job_status as enum ('queued', 'running', 'succeeded', 'failed', 'cancelled');

-- Time-ordered ids for rows created inside SQL (dead letters); the application makes its own.
create function leasehold.uuid_v7() returns uuid
language sql volatile parallel safe as $$
  select encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
        placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
        from 1 for 6),
      52, 1), 53, 1), 'hex')::uuid
$$;

create table leasehold.tenants (
  id uuid primary key,
  slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  name text not null,
  created_at timestamptz not null default now()
);
-- Owner of jobs enqueued by the system itself (benchmarks, internal kinds).
insert into leasehold.tenants (id, slug, name)
values ('00000000-0000-0000-0000-000000000000', 'system', 'System');

create table leasehold.jobs (
  id uuid primary key,
  tenant_id uuid not null default '00000000-0000-0000-0000-000000000000',
  kind text not null check (kind <> ''),
  queue text not null default 'default' check (queue <> ''),
  payload jsonb not null default '{}',
  status leasehold.job_status not null default 'queued',
  priority integer not null default 100,
  run_at timestamptz not null default now(),
  -- Counts claims; a reclaimed lease does not cost a second attempt, a handed-back one costs none.
  attempts integer not null default 0 check (attempts >= 0),
  max_attempts integer not null default 3 check (max_attempts between 1 and 1000),
  -- The lease: who holds the job, the per-claim token that fences every write, and until when.
  lease_owner text,
  lease_token uuid,
  lease_expires_at timestamptz,
  heartbeat_at timestamptz,
  progress real check (progress between 0 and 100),
  progress_message text,
  result jsonb,
  last_error text,
  -- One object per failed attempt: {attempt, at, message, code?, worker?}.
  errors jsonb not null default '[]',
  -- How many times the reclaimer took this job back from a worker that stopped heartbeating.
  rescues integer not null default 0,
  cancel_requested_at timestamptz,
  idempotency_key text,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint jobs_lease_only_while_running check ((status = 'running') = (lease_token is not null))
) with (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- The claim: one index range per queue, already in claim order, holding queued rows only.
create index jobs_claim_idx on leasehold.jobs (queue, priority, run_at, id) where status = 'queued';
-- The reclaimer: running rows by lease expiry.
create index jobs_lease_expiry_idx on leasehold.jobs (lease_expires_at) where status = 'running';
create unique index jobs_idempotency_key_idx on leasehold.jobs (tenant_id, idempotency_key)
  where idempotency_key is not null;

create table leasehold.job_events (
  id bigint generated always as identity primary key,
  job_id uuid not null,
  tenant_id uuid not null,
  type text not null check (type in ('job.queued', 'job.running', 'job.progress', 'job.retrying',
                                     'job.succeeded', 'job.failed', 'job.cancelled')),
  attempt integer,
  data jsonb,
  -- Ids are handed out before commit, so a reader must not pass an id whose transaction may still
  -- be open: it reads up to the oldest running xid (pg_snapshot_xmin) and never skips a late one.
  xid xid8 not null default pg_current_xact_id(),
  created_at timestamptz not null default now()
);
create index job_events_job_idx on leasehold.job_events (job_id, id);

create table leasehold.dead_letters (
  id uuid primary key default leasehold.uuid_v7(),
  job_id uuid not null,
  tenant_id uuid not null,
  kind text not null,
  queue text not null,
  payload jsonb not null,
  priority integer not null,
  attempts integer not null,
  max_attempts integer not null,
  last_error text,
  errors jsonb not null,
  job_created_at timestamptz not null,
  failed_at timestamptz not null default now(),
  requeued_at timestamptz
);
create index dead_letters_job_idx on leasehold.dead_letters (job_id);
create index dead_letters_open_idx on leasehold.dead_letters (tenant_id, failed_at desc) where requeued_at is null;

-- Every queue that has ever held a job; workers that serve "all" read it, operators pause here.
create table leasehold.queues (
  name text primary key,
  paused_at timestamptz,
  created_at timestamptz not null default now()
);

-- Every insert path (the application's INSERT and COPY, raw SQL) gets the same bookkeeping in
-- one statement-level pass over the inserted rows: new queue names are registered, and each job
-- gets the event of the state it was inserted in (`job.queued`, or e.g. `job.failed` for a row an
-- operator restores). A bulk insert pays once, not per row.
create function leasehold.jobs_inserted() returns trigger
language plpgsql as $$
begin
  insert into leasehold.queues (name)
  select distinct queue from new_jobs
  on conflict (name) do nothing;
  insert into leasehold.job_events (job_id, tenant_id, type, attempt)
  select id, tenant_id, 'job.' || status::text, attempts from new_jobs;
  return null;
end $$;
create trigger jobs_inserted after insert on leasehold.jobs
  referencing new table as new_jobs for each statement execute function leasehold.jobs_inserted();

-- Workers say they are alive with every heartbeat; "no worker serves this queue" is read here.
create table leasehold.workers (
  id text primary key,
  host text not null,
  pid integer not null,
  queues text[],
  kinds text[] not null,
  concurrency integer not null,
  started_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  stopped_at timestamptz
);

-- Cancels a job: a queued one at once; a running one is asked to stop (its worker hears the
-- NOTIFY, aborts the handler and records `cancelled`). Returns the status after the call.
create function leasehold.cancel_job(p_job_id uuid, p_tenant_id uuid default null)
returns leasehold.job_status
language plpgsql as $$
declare
  j leasehold.jobs;
begin
  select * into j from leasehold.jobs
  where id = p_job_id and (p_tenant_id is null or tenant_id = p_tenant_id)
  for update;
  if not found then
    return null;
  end if;
  if j.status = 'queued' then
    update leasehold.jobs
    set status = 'cancelled', finished_at = now(), updated_at = now(), cancel_requested_at = now()
    where id = j.id;
    insert into leasehold.job_events (job_id, tenant_id, type, attempt)
    values (j.id, j.tenant_id, 'job.cancelled', j.attempts);
    perform pg_notify('leasehold_events', '');
    return 'cancelled';
  elsif j.status = 'running' then
    if j.cancel_requested_at is null then
      update leasehold.jobs set cancel_requested_at = now(), updated_at = now() where id = j.id;
      perform pg_notify('leasehold_cancel', j.id::text);
    end if;
    return 'running';
  end if;
  return j.status;
end $$;

-- Puts a failed or cancelled job back in its queue with a fresh attempt budget; open dead
-- letters of that job are marked requeued. Returns false when the job is not in such a state.
create function leasehold.retry_job(p_job_id uuid, p_tenant_id uuid default null)
returns boolean
language plpgsql as $$
declare
  j leasehold.jobs;
begin
  update leasehold.jobs
  set status = 'queued', attempts = 0, run_at = now(), finished_at = null, result = null,
      cancel_requested_at = null, progress = null, progress_message = null, updated_at = now()
  where id = p_job_id and (p_tenant_id is null or tenant_id = p_tenant_id)
    and status in ('failed', 'cancelled')
  returning * into j;
  if not found then
    return false;
  end if;
  update leasehold.dead_letters set requeued_at = now() where job_id = j.id and requeued_at is null;
  insert into leasehold.job_events (job_id, tenant_id, type, attempt, data)
  values (j.id, j.tenant_id, 'job.queued', 0, '{"reason":"retry"}');
  perform pg_notify('leasehold_jobs', j.queue);
  perform pg_notify('leasehold_events', '');
  return true;
end $$;

-- Pauses a queue: every claim checks, so no worker takes another job from it; jobs already
-- claimed run on. Creates the queue's row if no job has used it yet.
create function leasehold.pause_queue(p_queue text) returns void
language sql as $$
  insert into leasehold.queues (name, paused_at) values (p_queue, now())
  on conflict (name) do update set paused_at = coalesce(leasehold.queues.paused_at, now())
$$;

-- Resumes a paused queue and wakes the workers that serve it. False when it was not paused.
create function leasehold.resume_queue(p_queue text) returns boolean
language plpgsql as $$
begin
  update leasehold.queues set paused_at = null where name = p_queue and paused_at is not null;
  if not found then
    return false;
  end if;
  perform pg_notify('leasehold_jobs', p_queue);
  return true;
end $$;

-- Requeues the job behind a dead letter (see retry_job). Returns the job id, or null.
create function leasehold.requeue_dead_letter(p_dead_letter_id uuid, p_tenant_id uuid default null)
returns uuid
language plpgsql as $$
declare
  v_job_id uuid;
begin
  select job_id into v_job_id from leasehold.dead_letters
  where id = p_dead_letter_id and requeued_at is null
    and (p_tenant_id is null or tenant_id = p_tenant_id);
  if v_job_id is null or not leasehold.retry_job(v_job_id, p_tenant_id) then
    return null;
  end if;
  return v_job_id;
end $$;
