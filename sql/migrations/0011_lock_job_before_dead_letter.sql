-- One lock order for a job and its dead letters: the job row first, as every transition takes it
-- (retry_job, cancel_job, FAIL_JOBS, the reclaimer). requeue_dead_letter(s) locked the dead letter
-- first, so a requeue and a retry of the same job could deadlock (SQLSTATE 40P01).

-- Unchanged but for the locks: the dead letter is read unlocked to find its job, the job is locked,
-- and only then the dead letter, whose requeued_at is checked again under its lock.
create or replace function leasehold.requeue_dead_letter(p_dead_letter_id uuid, p_tenant_id uuid default null,
                                                         p_actor text default current_user)
returns uuid
language plpgsql as $$
declare
  v_job_id uuid;
begin
  select job_id into v_job_id from leasehold.dead_letters
  where id = p_dead_letter_id and requeued_at is null
    and (p_tenant_id is null or tenant_id = p_tenant_id);
  if v_job_id is null then
    return null;
  end if;
  perform 1 from leasehold.jobs where id = v_job_id for update;
  perform 1 from leasehold.dead_letters where id = p_dead_letter_id and requeued_at is null for update;
  if not found or not leasehold.requeue_finished_job(v_job_id, p_tenant_id,
       jsonb_build_object('reason', 'requeue', 'by', p_actor, 'dead_letter_id', p_dead_letter_id)) then
    return null;
  end if;
  insert into leasehold.admin_actions (actor, action, target, result)
  values (p_actor, 'requeue_dead_letter', p_dead_letter_id::text, jsonb_build_object('job_id', v_job_id));
  return v_job_id;
end $$;

-- Each match's job is locked before its dead letter, both with SKIP LOCKED: a row another
-- transaction holds is being acted on already, and a bulk requeue that never waits can never be one
-- side of a deadlock. `p_limit` still counts the dead letters taken, not those skipped.
create or replace function leasehold.requeue_dead_letters(
  p_kind text default null, p_queue text default null, p_tenant_id uuid default null,
  p_since timestamptz default null, p_error_pattern text default null,
  p_actor text default current_user, p_limit integer default 10000)
returns integer
language plpgsql as $$
declare
  r record;
  taken integer := 0;
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
  loop
    exit when taken >= p_limit;
    perform 1 from leasehold.jobs where id = r.job_id for update skip locked;
    continue when not found;
    perform 1 from leasehold.dead_letters where id = r.id and requeued_at is null for update skip locked;
    continue when not found;
    taken := taken + 1;
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
