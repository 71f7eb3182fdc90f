-- Paid jobs that did not come through the API went uncharged. A schedule's tick of a paid kind now
-- reserves through the governor and, when refused, is recorded without a job; a paid job enqueued
-- around the governor (library code, plain SQL) is still charged what its calls cost when it ends.

-- A refused tick counts as handled (the next tick asks again) but has no job; `refusal` says why,
-- and the schedule's last_error repeats it for `leasehold schedules ls`.
alter table leasehold.schedule_ticks alter column job_id drop not null;
alter table leasehold.schedule_ticks add column refusal text;

-- Unchanged (0004) but for the update: settlement passes over a job without an estimate (a free
-- kind, it reads), so a paid job that reserved nothing is given an estimate of 0 at its first
-- call: it then settles like any other, its (zero) reservation refunded and its calls charged,
-- past the balance as owed. A job with an estimate is not written (its row does not match). The
-- job row is locked before the spend_daily row, the order settlement locks them in.
create or replace function leasehold.record_cost(
  p_job_id uuid, p_tenant_id uuid, p_kind text, p_attempt int, p_provider text, p_model text,
  p_priced_as text, p_prices_date date, p_input bigint, p_cached bigint, p_image bigint, p_output bigint,
  p_input_price bigint, p_cached_price bigint, p_image_price bigint, p_output_price bigint, p_cost bigint)
returns bigint
language plpgsql as $$
declare
  v_id bigint;
begin
  update leasehold.jobs set estimate_micros = 0 where id = p_job_id and estimate_micros is null;
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
