-- The governor: every model call's cost on record, estimates held against ceilings at enqueue, and
-- a prepaid credit ledger per metered tenant. Money is integer micro-dollars (1 USD = 1,000,000).

-- A job's estimated cost, set at enqueue for paid kinds only (null for free kinds). Open paid jobs
-- are indexed by it: the reservations the ceilings count. Paid jobs move at model speed, so the
-- index costs the queue's fast path (free kinds, never in it) nothing.
alter table leasehold.jobs add column estimate_micros bigint check (estimate_micros >= 0);
create index jobs_open_estimate_idx on leasehold.jobs (tenant_id, kind) include (estimate_micros)
  where estimate_micros is not null and status in ('queued', 'running');

-- Installation-wide settings each API and worker process writes from its environment at start;
-- an operator may change them live with UPDATE (they hold until the next process start).
create table leasehold.governor_settings (
  id boolean primary key default true check (id),
  -- GOVERNOR_GLOBAL_DAILY_USD in micro-dollars; null means no global ceiling.
  global_daily_micros bigint check (global_daily_micros > 0),
  -- Kinds that cost money (the registry's paid kinds): the runtime brake holds these only.
  paid_kinds text[] not null default '{}',
  updated_at timestamptz not null default now(),
  -- Open reservations of all tenants as last summed (open_reserved_at), plus every reservation
  -- made since: see governor_open_reserved.
  open_reserved_micros bigint not null default 0,
  open_reserved_at timestamptz
);
insert into leasehold.governor_settings (id, paid_kinds) values (true, '{manifest.extract,gallery.group,image.edit}');

-- One row per metered tenant: its ceilings, and its balance cached from credit_ledger (kept equal
-- to the ledger's sums by the functions below, in the same transaction). A tenant without a row is
-- unmetered. The row is also the lock that serialises the tenant's reservations.
create table leasehold.credit_accounts (
  tenant_id uuid primary key references leasehold.tenants (id) on delete cascade,
  -- False: ceilings apply but credits are not required (a tenant billed afterwards).
  enforce_credits boolean not null default true,
  per_job_max_micros bigint check (per_job_max_micros > 0),
  daily_max_micros bigint check (daily_max_micros > 0),
  monthly_max_micros bigint check (monthly_max_micros > 0),
  -- {"<kind>": micros}: per-kind daily ceilings.
  kind_daily_max jsonb not null default '{}',
  balance_micros bigint not null default 0 check (balance_micros >= 0),
  -- The tenant's open reservations as last summed, plus those made since (governor_open_reserved).
  open_reserved_micros bigint not null default 0,
  open_reserved_at timestamptz,
  -- Spend past what the balance covered (an overrun); taken from the next reservation.
  owed_micros bigint not null default 0 check (owed_micros >= 0),
  updated_at timestamptz not null default now()
);

-- Append-only. amount_micros moves the balance, owed_micros the debt:
--   grant +X · reservation −estimate · refund +the job's open reservation (at its end) ·
--   settlement −actual cost (at its end) · overrun: debt recorded (owed +) or collected (amount −, owed −).
create table leasehold.credit_ledger (
  id bigint generated always as identity primary key,
  tenant_id uuid not null,
  entry text not null check (entry in ('grant', 'reservation', 'refund', 'settlement', 'overrun')),
  job_id uuid,
  kind text,
  amount_micros bigint not null,
  owed_micros bigint not null default 0,
  note text,
  created_at timestamptz not null default now()
);
create index credit_ledger_tenant_idx on leasehold.credit_ledger (tenant_id, id);
create index credit_ledger_job_idx on leasehold.credit_ledger (job_id) where job_id is not null;

-- One row per billable model call, written when the call returns (whatever the job does next),
-- with the tokens and the unit prices it was priced at, so every micro-dollar can be recomputed.
create table leasehold.cost_events (
  id bigint generated always as identity primary key,
  job_id uuid not null,
  tenant_id uuid not null,
  kind text not null,
  attempt integer not null,
  provider text not null,
  model text not null,
  -- The price-table entry the model was priced as, and the date of those prices.
  priced_as text not null,
  prices_date date not null,
  input_tokens bigint not null default 0,
  cached_input_tokens bigint not null default 0,
  image_input_tokens bigint not null default 0,
  output_tokens bigint not null default 0,
  -- Micro-dollars per million tokens.
  input_price bigint not null,
  cached_input_price bigint not null,
  image_input_price bigint not null,
  output_price bigint not null,
  -- Rounded up to the micro-dollar.
  cost_micros bigint not null check (cost_micros >= 0),
  created_at timestamptz not null default now()
);
create index cost_events_job_idx on leasehold.cost_events (job_id);
create index cost_events_created_idx on leasehold.cost_events (created_at);

-- Daily roll-up per tenant and kind (UTC days): what ceilings, /v1/usage and drift read instead of
-- summing cost_events. spent: every call's cost on its day; the settled_* columns: jobs that ended
-- that day, their estimates and their actual costs (for drift).
create table leasehold.spend_daily (
  tenant_id uuid not null,
  day date not null,
  kind text not null,
  spent_micros bigint not null default 0,
  calls integer not null default 0,
  settled_jobs integer not null default 0,
  settled_estimate_micros bigint not null default 0,
  settled_actual_micros bigint not null default 0,
  primary key (tenant_id, day, kind)
);
create index spend_daily_day_idx on leasehold.spend_daily (day);

-- The current UTC day.
create function leasehold.governor_today() returns date
language sql stable as $$ select (now() at time zone 'UTC')::date $$;

-- Records one billable call: its cost event and the day's roll-up.
create function leasehold.record_cost(
  p_job_id uuid, p_tenant_id uuid, p_kind text, p_attempt int, p_provider text, p_model text,
  p_priced_as text, p_prices_date date, p_input bigint, p_cached bigint, p_image bigint, p_output bigint,
  p_input_price bigint, p_cached_price bigint, p_image_price bigint, p_output_price bigint, p_cost bigint)
returns bigint
language plpgsql as $$
declare
  v_id bigint;
begin
  insert into leasehold.cost_events (job_id, tenant_id, kind, attempt, provider, model, priced_as, prices_date,
    input_tokens, cached_input_tokens, image_input_tokens, output_tokens,
    input_price, cached_input_price, image_input_price, output_price, cost_micros)
  values (p_job_id, p_tenant_id, p_kind, p_attempt, p_provider, p_model, p_priced_as, p_prices_date,
    p_input, p_cached, p_image, p_output, p_input_price, p_cached_price, p_image_price, p_output_price, p_cost)
  returning id into v_id;
  insert into leasehold.spend_daily (tenant_id, day, kind, spent_micros, calls)
  values (p_tenant_id, leasehold.governor_today(), p_kind, p_cost, 1)
  on conflict (tenant_id, day, kind) do update
    set spent_micros = leasehold.spend_daily.spent_micros + excluded.spent_micros,
        calls = leasehold.spend_daily.calls + 1;
  return v_id;
end $$;

-- A refusal as the API reports it (a 402 problem's extension members).
create function leasehold.governor_refusal(p_ceiling text, p_limit bigint, p_used bigint, p_requested bigint)
returns jsonb
language sql immutable as $$
  select jsonb_build_object('code', 'budget_exceeded', 'ceiling', p_ceiling, 'limit_micros', p_limit,
                            'used_micros', p_used, 'requested_micros', p_requested,
                            'exceeded_by_micros', p_used + p_requested - p_limit)
$$;

-- Open reservations (estimates of queued and running paid jobs) of a tenant, or of everyone for a
-- null tenant, given the cached figure and when it was summed. Summing reads one index entry per
-- open job (27-32 ms per ingest at 50,000 open jobs when done every time), so the sum is redone
-- at most once a second; in between, reservations are added to the cache as they are made and
-- settlements are not taken off: the figure errs high, never low, for at most a second.
create function leasehold.governor_open_reserved(p_tenant_id uuid, p_cached bigint, p_at timestamptz,
                                                 out micros bigint, out at timestamptz)
language plpgsql as $$
begin
  if p_at is not null and p_at > clock_timestamp() - interval '1 second' then
    micros := p_cached;
    at := p_at;
    return;
  end if;
  at := clock_timestamp();
  micros := (select coalesce(sum(estimate_micros), 0) from leasehold.jobs
             where estimate_micros is not null and status in ('queued', 'running')
               and (p_tenant_id is null or tenant_id = p_tenant_id));
end $$;

-- Reserves `p_estimate` for each job in `p_job_ids` (of kind `p_kind`) before they are inserted, or
-- refuses them all. Returns null when reserved, else the refusal. Serialised per metered tenant by
-- its account row, and installation-wide by an advisory lock only while a global ceiling is set.
-- Every ceiling counts what is already spent today (or this month) plus what open jobs reserved.
create function leasehold.governor_reserve(p_tenant_id uuid, p_kind text, p_estimate bigint, p_job_ids uuid[])
returns jsonb
language plpgsql as $$
declare
  a leasehold.credit_accounts;
  g leasehold.governor_settings;
  v_global_open record;
  v_n int := cardinality(p_job_ids);
  v_total bigint := p_estimate * cardinality(p_job_ids);
  v_used bigint;
  v_refusal jsonb;
begin
  select * into g from leasehold.governor_settings;
  select * into a from leasehold.credit_accounts where tenant_id = p_tenant_id for update;
  if g.global_daily_micros is not null then
    perform pg_advisory_xact_lock(hashtext('leasehold.governor.global'));
    -- Re-read under the lock: the reserver before us has committed its addition.
    select * into g from leasehold.governor_settings;
    select * into v_global_open from leasehold.governor_open_reserved(null, g.open_reserved_micros, g.open_reserved_at);
    select coalesce(sum(spent_micros), 0) into v_used from leasehold.spend_daily where day = leasehold.governor_today();
    v_used := v_used + v_global_open.micros;
    if v_used + v_total > g.global_daily_micros then
      return leasehold.governor_refusal('global_daily', g.global_daily_micros, v_used, v_total);
    end if;
  end if;
  if a.tenant_id is not null and v_n > 0 then
    v_refusal := leasehold.governor_check_tenant(p_tenant_id, p_kind, p_estimate, p_job_ids, v_total);
    if v_refusal is not null then
      return v_refusal;
    end if;
  end if;
  -- Accepted: the caches learn of these reservations.
  if g.global_daily_micros is not null then
    update leasehold.governor_settings
    set open_reserved_micros = v_global_open.micros + v_total, open_reserved_at = v_global_open.at;
  end if;
  return null;
end $$;

-- governor_reserve's checks of a metered tenant (whose account row it has locked), and when they pass its
-- reservations: the ledger rows (when credits are required) and the account's caches.
create function leasehold.governor_check_tenant(p_tenant_id uuid, p_kind text, p_estimate bigint,
                                                p_job_ids uuid[], p_total bigint)
returns jsonb
language plpgsql as $$
declare
  a leasehold.credit_accounts;
  v_total bigint := p_total;
  v_open record;
  v_used bigint;
  v_today bigint;
  v_month bigint;
  v_kind_max bigint;
  v_collect bigint;
begin
  -- Locked by the caller.
  select * into a from leasehold.credit_accounts where tenant_id = p_tenant_id;
  if a.per_job_max_micros is not null and p_estimate > a.per_job_max_micros then
    return leasehold.governor_refusal('per_job', a.per_job_max_micros, 0, p_estimate);
  end if;
  select * into v_open from leasehold.governor_open_reserved(p_tenant_id, a.open_reserved_micros, a.open_reserved_at);
  if a.daily_max_micros is not null or a.monthly_max_micros is not null then
    -- Open reservations count against today and this month alike.
    select coalesce(sum(spent_micros) filter (where day = leasehold.governor_today()), 0), coalesce(sum(spent_micros), 0)
    into v_today, v_month
    from leasehold.spend_daily
    where tenant_id = p_tenant_id and day >= date_trunc('month', leasehold.governor_today())::date;
    if a.daily_max_micros is not null and v_open.micros + v_today + v_total > a.daily_max_micros then
      return leasehold.governor_refusal('tenant_daily', a.daily_max_micros, v_open.micros + v_today, v_total);
    end if;
    if a.monthly_max_micros is not null and v_open.micros + v_month + v_total > a.monthly_max_micros then
      return leasehold.governor_refusal('tenant_monthly', a.monthly_max_micros, v_open.micros + v_month, v_total);
    end if;
  end if;
  if a.kind_daily_max ? p_kind then
    v_kind_max := (a.kind_daily_max ->> p_kind)::bigint;
    v_used := (select coalesce(sum(estimate_micros), 0) from leasehold.jobs
               where tenant_id = p_tenant_id and kind = p_kind and estimate_micros is not null
                 and status in ('queued', 'running'))
            + (select coalesce(sum(spent_micros), 0) from leasehold.spend_daily
               where tenant_id = p_tenant_id and day = leasehold.governor_today() and kind = p_kind);
    if v_used + v_total > v_kind_max then
      return leasehold.governor_refusal('kind_daily:' || p_kind, v_kind_max, v_used, v_total);
    end if;
  end if;
  if a.enforce_credits then
    -- What an overrun left owing is taken first: the balance must cover it and the new estimate.
    if a.balance_micros < v_total + a.owed_micros then
      return leasehold.governor_refusal('credit_balance', a.balance_micros, a.owed_micros, v_total);
    end if;
    v_collect := a.owed_micros;
    if v_collect > 0 then
      insert into leasehold.credit_ledger (tenant_id, entry, amount_micros, owed_micros, note)
      values (p_tenant_id, 'overrun', -v_collect, -v_collect, 'overrun collected');
    end if;
    insert into leasehold.credit_ledger (tenant_id, entry, job_id, kind, amount_micros)
    select p_tenant_id, 'reservation', id, p_kind, -p_estimate from unnest(p_job_ids) as id;
  end if;
  update leasehold.credit_accounts
  set balance_micros = balance_micros - case when a.enforce_credits then v_total + v_collect else 0 end,
      owed_micros = owed_micros - coalesce(v_collect, 0),
      open_reserved_micros = v_open.micros + v_total, open_reserved_at = v_open.at, updated_at = now()
  where tenant_id = p_tenant_id;
  return null;
end $$;

-- Settles paid jobs that reached a terminal state (given by the statement that ended them, as
-- parallel arrays, since it cannot read its own changes back): records each job's estimate and actual cost in
-- the day's roll-up and, for metered tenants, refunds its open reservation and charges what its
-- calls actually cost (every attempt's calls; a failed job pays for calls that were made). Spend
-- the balance cannot cover is recorded as owed. Tenants are locked in id order (no deadlocks).
create function leasehold.governor_settle(p_job_ids uuid[], p_tenant_ids uuid[], p_kinds text[], p_estimates bigint[])
returns integer
language plpgsql as $$
declare
  j record;
  a leasehold.credit_accounts;
  v_open bigint;
  v_actual bigint;
  v_charged bigint;
  v_charge bigint;
  v_count int := 0;
begin
  for j in
    select * from unnest(p_job_ids, p_tenant_ids, p_kinds, p_estimates) as x(id, tenant_id, kind, estimate_micros)
    where estimate_micros is not null
    order by tenant_id, id
  loop
    v_actual := (select coalesce(sum(cost_micros), 0) from leasehold.cost_events where job_id = j.id);
    select * into a from leasehold.credit_accounts where tenant_id = j.tenant_id for update;
    v_charged := 0;
    if a.tenant_id is not null and a.enforce_credits then
      select coalesce(-sum(amount_micros) filter (where entry in ('reservation', 'refund')), 0),
             coalesce(-sum(amount_micros) filter (where entry = 'settlement'), 0)
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
    -- Drift counts a job once, at its first settlement.
    if v_charged = 0 then
      insert into leasehold.spend_daily (tenant_id, day, kind, settled_jobs, settled_estimate_micros, settled_actual_micros)
      values (j.tenant_id, leasehold.governor_today(), j.kind, 1, j.estimate_micros, v_actual)
      on conflict (tenant_id, day, kind) do update
        set settled_jobs = leasehold.spend_daily.settled_jobs + 1,
            settled_estimate_micros = leasehold.spend_daily.settled_estimate_micros + excluded.settled_estimate_micros,
            settled_actual_micros = leasehold.spend_daily.settled_actual_micros + excluded.settled_actual_micros;
    end if;
    v_count := v_count + 1;
  end loop;
  return v_count;
end $$;

-- Adds credit to a tenant (creating its account, which makes it metered). Returns the new balance.
create function leasehold.grant_credit(p_tenant_id uuid, p_micros bigint, p_note text default null)
returns bigint
language plpgsql as $$
declare
  v_balance bigint;
begin
  if p_micros <= 0 then
    raise exception 'a grant must be positive' using errcode = '22023';
  end if;
  insert into leasehold.credit_accounts (tenant_id) values (p_tenant_id) on conflict (tenant_id) do nothing;
  perform 1 from leasehold.credit_accounts where tenant_id = p_tenant_id for update;
  insert into leasehold.credit_ledger (tenant_id, entry, amount_micros, note)
  values (p_tenant_id, 'grant', p_micros, p_note);
  update leasehold.credit_accounts set balance_micros = balance_micros + p_micros, updated_at = now()
  where tenant_id = p_tenant_id
  returning balance_micros into v_balance;
  return v_balance;
end $$;

-- Global spend today (actual calls, UTC day) and the ceiling; what the brake and /ready read.
create function leasehold.governor_brake_reason() returns text
language sql stable as $$
  select format('global daily spend ceiling reached: %s of %s micro-USD spent today (UTC)', spent, s.global_daily_micros)
  from leasehold.governor_settings s,
       lateral (select coalesce(sum(spent_micros), 0) as spent from leasehold.spend_daily
                where day = leasehold.governor_today()) d
  where s.global_daily_micros is not null and d.spent >= s.global_daily_micros
$$;

-- Why the governor keeps a job of this kind from being claimed now (null: it does not). For
-- job_diagnosis; the tenant is accepted for per-tenant reasons, none of which holds claims today.
create function leasehold.governor_block_reason(p_kind text, p_tenant_id uuid) returns text
language sql stable as $$
  select leasehold.governor_brake_reason()
  from leasehold.governor_settings s
  where p_kind = any (s.paid_kinds)
$$;

-- Cancelling a queued paid job settles it (releases its reservation) in the same transaction.
create or replace function leasehold.cancel_job(p_job_id uuid, p_tenant_id uuid default null)
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
    if j.estimate_micros is not null then
      perform leasehold.governor_settle(array[j.id], array[j.tenant_id], array[j.kind], array[j.estimate_micros]);
    end if;
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

-- Retrying a settled paid job of a metered tenant reserves its estimate again (as much of it as
-- the balance holds; the settlement charges actual cost either way).
create or replace function leasehold.retry_job(p_job_id uuid, p_tenant_id uuid default null)
returns boolean
language plpgsql as $$
declare
  j leasehold.jobs;
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
  update leasehold.dead_letters set requeued_at = now() where job_id = j.id and requeued_at is null;
  insert into leasehold.job_events (job_id, tenant_id, type, attempt, data)
  values (j.id, j.tenant_id, 'job.queued', 0, '{"reason":"retry"}');
  perform pg_notify('leasehold_jobs', j.queue);
  perform pg_notify('leasehold_events', '');
  return true;
end $$;
