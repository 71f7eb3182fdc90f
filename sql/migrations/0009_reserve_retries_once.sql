-- The API now reserves a retried or requeued paid job through the governor, as it reserves a new one
-- (governor_reserve, with every ceiling and the credit check), before it calls retry_job or
-- requeue_dead_letter: those must not hold the job's estimate a second time.

-- Unchanged (0004) but for the first test: a job that already holds an open reservation is not
-- held again. Called with none (an operator's retry_job, requeue_dead_letter(s), or the CLI), it
-- still holds what the balance covers, past every ceiling; the settlement charges actual cost.
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
