-- A job settled more than once (retried, requeued) is charged, and counted in spend_daily, for each
-- of its calls once. Earlier settlements' overrun (owed, then collected) was charged again at the
-- next one, and every settlement that followed one charging nothing counted the job again.

-- One row per paid job that has settled: what the spend_daily roll-up has counted for it. The
-- settled_* columns count a job at its first settlement; a later one adds only the cost of the
-- calls made since. Deleted with the job (retention), which can then never settle again.
create table leasehold.job_settlements (
  job_id uuid primary key,
  -- How many times the job has settled: 1, plus one for each retry or requeue that ended again.
  settlements integer not null default 1,
  -- The job's actual cost (its cost_events) at its last settlement: what settled_actual_micros holds of it.
  actual_micros bigint not null check (actual_micros >= 0),
  settled_at timestamptz not null default now()
);

-- Paid jobs that have ended were counted once, at what their calls have cost. A job retried before
-- this migration and not ended yet has no row: it counts once more when it ends, as it did before.
-- Rows already written to spend_daily and credit_ledger are left as they are: this applies to
-- settlements from now on.
insert into leasehold.job_settlements (job_id, actual_micros)
select j.id, coalesce((select sum(c.cost_micros) from leasehold.cost_events c where c.job_id = j.id), 0)
from leasehold.jobs j
where j.estimate_micros is not null and j.status in ('succeeded', 'failed', 'cancelled');

-- As 0004, but for what an earlier settlement charged, which now includes the overrun it recorded
-- as owed (collected later with no job, by governor_reserve), and for the roll-up, counted from
-- job_settlements instead of from that charge (always 0 for a tenant not paying from credit).
create or replace function leasehold.governor_settle(p_job_ids uuid[], p_tenant_ids uuid[], p_kinds text[], p_estimates bigint[])
returns integer
language plpgsql as $$
declare
  j record;
  a leasehold.credit_accounts;
  v_open bigint;
  v_actual bigint;
  v_charged bigint;
  v_charge bigint;
  v_counted bigint;
  v_count int := 0;
begin
  for j in
    select * from unnest(p_job_ids, p_tenant_ids, p_kinds, p_estimates) as x(id, tenant_id, kind, estimate_micros)
    where estimate_micros is not null
    order by tenant_id, id
  loop
    v_actual := (select coalesce(sum(cost_micros), 0) from leasehold.cost_events where job_id = j.id);
    select * into a from leasehold.credit_accounts where tenant_id = j.tenant_id for update;
    if a.tenant_id is not null and a.enforce_credits then
      -- Charged so far: paid by earlier settlements plus what they left owing, collected or not.
      select coalesce(-sum(amount_micros) filter (where entry in ('reservation', 'refund')), 0),
             coalesce(-sum(amount_micros) filter (where entry = 'settlement'), 0)
               + coalesce(sum(owed_micros) filter (where entry = 'overrun'), 0)
      into v_open, v_charged
      from leasehold.credit_ledger where job_id = j.id;
      -- A job settled before (then retried) is charged only for calls made since.
      v_charge := greatest(v_actual - v_charged, 0);
      if v_open <> 0 then
        insert into leasehold.credit_ledger (tenant_id, entry, job_id, kind, amount_micros)
        values (j.tenant_id, 'refund', j.id, j.kind, v_open);
      end if;
      insert into leasehold.credit_ledger (tenant_id, entry, job_id, kind, amount_micros)
      values (j.tenant_id, 'settlement', j.id, j.kind, -least(v_charge, a.balance_micros + v_open));
      if v_charge > a.balance_micros + v_open then
        insert into leasehold.credit_ledger (tenant_id, entry, job_id, kind, amount_micros, owed_micros, note)
        values (j.tenant_id, 'overrun', j.id, j.kind, 0, v_charge - (a.balance_micros + v_open),
                'actual cost past what the balance covered');
      end if;
      update leasehold.credit_accounts
      set balance_micros = greatest(balance_micros + v_open - v_charge, 0),
          owed_micros = owed_micros + greatest(v_charge - (balance_micros + v_open), 0),
          updated_at = now()
      where tenant_id = j.tenant_id;
    end if;
    -- Drift counts a job and its estimate once, at its first settlement, and each call's cost once.
    -- The ending statement holds the job's row lock, so no two settlements of one job overlap.
    select actual_micros into v_counted from leasehold.job_settlements where job_id = j.id for update;
    if not found then
      insert into leasehold.job_settlements (job_id, actual_micros) values (j.id, v_actual);
      insert into leasehold.spend_daily (tenant_id, day, kind, settled_jobs, settled_estimate_micros, settled_actual_micros)
      values (j.tenant_id, leasehold.governor_today(), j.kind, 1, j.estimate_micros, v_actual)
      on conflict (tenant_id, day, kind) do update
        set settled_jobs = leasehold.spend_daily.settled_jobs + 1,
            settled_estimate_micros = leasehold.spend_daily.settled_estimate_micros + excluded.settled_estimate_micros,
            settled_actual_micros = leasehold.spend_daily.settled_actual_micros + excluded.settled_actual_micros;
    else
      update leasehold.job_settlements
      set settlements = settlements + 1, actual_micros = greatest(actual_micros, v_actual), settled_at = now()
      where job_id = j.id;
      if v_actual > v_counted then
        insert into leasehold.spend_daily (tenant_id, day, kind, settled_actual_micros)
        values (j.tenant_id, leasehold.governor_today(), j.kind, v_actual - v_counted)
        on conflict (tenant_id, day, kind) do update
          set settled_actual_micros = leasehold.spend_daily.settled_actual_micros + excluded.settled_actual_micros;
      end if;
    end if;
    v_count := v_count + 1;
  end loop;
  return v_count;
end $$;
