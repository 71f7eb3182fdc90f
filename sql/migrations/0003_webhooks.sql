-- Signed webhook callbacks: per-tenant subscriptions and signing secrets, and a transactional
-- outbox. A delivery row, with the webhook.deliver job that sends it, commits in the same
-- transaction as the job's terminal transition, so a crash in between cannot lose a callback.

-- Secrets are stored so the server can sign (HMAC needs the key itself): `v1:<iv>:<tag>:<data>`
-- (AES-256-GCM under WEBHOOK_SECRET_KEY) or `plain:whsec_…` when no key is configured.
create table leasehold.webhooks (
  id uuid primary key,
  tenant_id uuid not null references leasehold.tenants (id) on delete cascade,
  url text not null,
  events text[] not null check (events <@ array['job.succeeded', 'job.failed', 'job.cancelled'] and cardinality(events) > 0),
  description text,
  secret text not null,
  -- After a rotation the previous secret still signs (a second `v1,` signature) until it expires.
  previous_secret text,
  previous_secret_expires_at timestamptz,
  -- Set by the first failed attempt after a success; a subscription failing for too long is disabled.
  failing_since timestamptz,
  disabled_at timestamptz,
  disabled_reason text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index webhooks_tenant_idx on leasehold.webhooks (tenant_id, id);

-- A tenant's default secret: signs the callbacks of a job's own `webhook_url`.
create table leasehold.webhook_signing_secrets (
  tenant_id uuid primary key references leasehold.tenants (id) on delete cascade,
  secret text not null,
  previous_secret text,
  previous_secret_expires_at timestamptz,
  created_at timestamptz not null default now(),
  rotated_at timestamptz
);

-- One callback about one job event to one target; its id is the `webhook-id` of every attempt.
create table leasehold.webhook_deliveries (
  id uuid primary key,
  tenant_id uuid not null,
  -- A subscription (its current URL and secret are used), or null for a job's own webhook_url.
  webhook_id uuid references leasehold.webhooks (id) on delete cascade,
  url text,
  job_id uuid not null,
  event text not null,
  -- The job's error at the event (failed, cancelled); a succeeded job's result never changes.
  error text,
  occurred_at timestamptz not null default now(),
  status text not null default 'pending' check (status in ('pending', 'delivered', 'failed', 'skipped')),
  -- The webhook.deliver job sending it now (a redelivery makes a new one).
  deliver_job_id uuid not null,
  attempts integer not null default 0,
  last_attempt_at timestamptz,
  last_status_code integer,
  last_error text,
  next_retry_at timestamptz,
  delivered_at timestamptz,
  constraint webhook_deliveries_one_target check ((webhook_id is null) <> (url is null))
);
create index webhook_deliveries_webhook_idx on leasehold.webhook_deliveries (webhook_id, id);
create index webhook_deliveries_job_idx on leasehold.webhook_deliveries (job_id);

-- Every attempt of a delivery, as GET /v1/webhooks/:id/deliveries shows it.
create table leasehold.webhook_delivery_attempts (
  id bigint generated always as identity primary key,
  delivery_id uuid not null references leasehold.webhook_deliveries (id) on delete cascade,
  attempt integer not null,
  deliver_job_id uuid not null,
  worker text,
  started_at timestamptz not null,
  latency_ms integer not null,
  status_code integer,
  error text,
  next_retry_at timestamptz
);
create index webhook_delivery_attempts_delivery_idx on leasehold.webhook_delivery_attempts (delivery_id, id);

-- Whoever inserts a delivery gets its webhook.deliver job in the same statement: the outbox rows
-- and the queue rows cannot part. A row trigger fires only for rows that exist, so the worker's
-- completion statement pays nothing for it when no callback is due.
create function leasehold.webhook_delivery_inserted() returns trigger
language plpgsql as $$
begin
  new.deliver_job_id := coalesce(new.deliver_job_id, leasehold.uuid_v7());
  -- max_attempts is only a cap: the handler follows WEBHOOK_RETRY_SCHEDULE and gives up itself.
  insert into leasehold.jobs (id, tenant_id, kind, queue, payload, max_attempts)
  values (new.deliver_job_id, new.tenant_id, 'webhook.deliver', 'webhooks',
          jsonb_build_object('delivery_id', new.id), 50);
  return new;
end $$;
create trigger webhook_delivery_inserted before insert on leasehold.webhook_deliveries
  for each row execute function leasehold.webhook_delivery_inserted();

-- Writes the deliveries of one event for a set of jobs: one per enabled subscription of the job's
-- tenant to that event, and one for the job's own webhook_url. Returns how many. Called by the
-- worker's COMPLETE_JOBS (only when a row qualifies) and by the trigger below.
create function leasehold.webhook_outbox(p_event text, p_job_ids uuid[], p_tenant_ids uuid[], p_urls text[], p_errors text[])
returns integer
language sql as $$
  with ins as (
    insert into leasehold.webhook_deliveries (id, tenant_id, webhook_id, url, job_id, event, error)
    select leasehold.uuid_v7(), j.tenant_id, w.id, null, j.job_id, p_event, j.error
    from unnest(p_job_ids, p_tenant_ids, p_errors) as j(job_id, tenant_id, error)
    join leasehold.webhooks w on w.tenant_id = j.tenant_id
    where w.disabled_at is null and p_event = any (w.events)
    union all
    select leasehold.uuid_v7(), j.tenant_id, null, j.url, j.job_id, p_event, j.error
    from unnest(p_job_ids, p_tenant_ids, p_urls, p_errors) as j(job_id, tenant_id, url, error)
    where j.url is not null
    returning 1
  )
  select count(*)::int from ins
$$;

-- Failed and cancelled jobs, whatever ended them (a worker, the reclaimer, cancel_job(), raw SQL):
-- their terminal event's row trigger writes the deliveries. Successes, the hot path, are written by
-- COMPLETE_JOBS itself; the WHEN clause keeps this trigger from running for any other event.
create function leasehold.job_ended_webhooks() returns trigger
language plpgsql as $$
declare
  j record;
begin
  select id, tenant_id, kind, last_error, payload ->> 'webhook_url' as url into j
  from leasehold.jobs where id = new.job_id;
  if not found or j.kind = 'webhook.deliver' then
    return null;
  end if;
  if leasehold.webhook_outbox(new.type, array[j.id], array[j.tenant_id], array[j.url], array[j.last_error]) > 0 then
    perform pg_notify('leasehold_jobs', 'webhooks');
  end if;
  return null;
end $$;
create trigger job_ended_webhooks after insert on leasehold.job_events
  for each row when (new.type in ('job.failed', 'job.cancelled'))
  execute function leasehold.job_ended_webhooks();
