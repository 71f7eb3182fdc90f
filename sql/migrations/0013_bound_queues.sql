-- Queue names are bounded and pruned: the API admits a tenant's new queue only while fewer than
-- MAX_QUEUES exist (admit_queues), and retention deletes queues idle past a grace period
-- (idle_since). Every path that puts a finished job back in its queue registers the queue again.

-- When retention last found the queue without a queued or running job (null: it had one, or has
-- not been looked at yet). Set and cleared by retention only, never on the insert path.
alter table leasehold.queues add column idle_since timestamptz;

-- Registers the queues of a tenant's jobs and says whether all of them are registered now: a name
-- already registered costs one primary-key probe and takes no lock; new names are added only while
-- the total stays within p_max, else none is and the answer is false. New names are admitted one
-- transaction at a time (an advisory lock, 'leasehqa', held to commit), so two cannot both take the
-- last place. The library, SQL and the CLI do not call it: their queues count, but are never refused.
create function leasehold.admit_queues(p_names text[], p_max int) returns boolean
language plpgsql as $$
declare
  v_name text;
  v_new text[] := '{}';
begin
  -- A probe per name by primary key: one statement over unnest(p_names) cost ~100 µs a call on a
  -- busy 2-core machine, this loop ~20 µs.
  foreach v_name in array coalesce(p_names, '{}') loop
    if not exists (select 1 from leasehold.queues where name = v_name) then
      v_new := v_new || v_name;
    end if;
  end loop;
  if cardinality(v_new) = 0 then
    return true;
  end if;
  perform pg_advisory_xact_lock(7810756276994470241);
  -- Statements after the lock see the admissions committed while it was awaited.
  v_new := array(select distinct n from unnest(v_new) as n
                 where not exists (select 1 from leasehold.queues q where q.name = n));
  -- Counting stops at p_max rows: refusals stay cheap however many queues operators made.
  if (select count(*) from (select 1 from leasehold.queues limit p_max) q) + cardinality(v_new) > p_max then
    return false;
  end if;
  insert into leasehold.queues (name) select unnest(v_new) on conflict (name) do nothing;
  return true;
end $$;

-- Unchanged (0009) but for the queue's registration: retention may have deleted the queue of a
-- finished job, and a worker serving all queues claims only from registered ones. The insert takes
-- the lock on queues that retention's delete waits for, as the jobs insert trigger's does.
create or replace function leasehold.retry_job_unaudited(p_job_id uuid, p_tenant_id uuid default null)
returns boolean
language plpgsql as $$
declare
  j leasehold.jobs;
  v_held bigint;
  v_hold bigint;
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
  insert into leasehold.queues (name) values (j.queue) on conflict (name) do nothing;
  if j.estimate_micros is not null then
    -- Every earlier reservation of the job was refunded when it settled: what is left open was
    -- reserved just now, in this transaction, by the caller.
    select coalesce(-sum(amount_micros), 0) into v_held from leasehold.credit_ledger
    where job_id = j.id and entry in ('reservation', 'refund');
    if v_held = 0 then
      select least(balance_micros, j.estimate_micros) into v_hold from leasehold.credit_accounts
      where tenant_id = j.tenant_id and enforce_credits
      for update;
      if v_hold > 0 then
        update leasehold.credit_accounts set balance_micros = balance_micros - v_hold, updated_at = now()
        where tenant_id = j.tenant_id;
        insert into leasehold.credit_ledger (tenant_id, entry, job_id, kind, amount_micros, note)
        values (j.tenant_id, 'reservation', j.id, j.kind, -v_hold, 'retry');
      end if;
    end if;
  end if;
  update leasehold.dead_letters set requeued_at = now() where job_id = j.id and requeued_at is null;
  insert into leasehold.job_events (job_id, tenant_id, type, attempt, data)
  values (j.id, j.tenant_id, 'job.queued', 0, '{"reason":"retry"}');
  perform pg_notify('leasehold_jobs', j.queue);
  perform pg_notify('leasehold_events', '');
  return true;
end $$;
