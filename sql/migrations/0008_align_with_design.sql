-- Four places where the schema departed from DESIGN.md: the `uploads` table it lists, exactly the
-- seven job event types it names, callbacks to a job's own webhook_url for job.succeeded and
-- job.failed only, and a default id for jobs inserted by plain SQL.

-- One row per presigned upload (POST /v1/uploads), written before the URL is handed out: who
-- asked, for which key, type and size, and until when the URL works. Ingest still checks the
-- object itself (an upload made before this table has no row). Retention deletes rows
-- RETENTION_JOBS_DAYS after they were made; the objects in storage are not touched.
create table leasehold.uploads (
  id uuid primary key default leasehold.uuid_v7(),
  tenant_id uuid not null references leasehold.tenants (id) on delete cascade,
  -- `uploads/<tenant id>/<uuid>/<name>`, the key newUploadKey() makes.
  storage_key text not null unique,
  content_type text not null,
  -- As declared: the local store's URL accepts exactly this many bytes; S3 signs the type only.
  size_bytes bigint not null check (size_bytes > 0),
  -- `key:<api key id>` or `jwt:<subject>`, as in the API's logs.
  created_by text not null,
  created_at timestamptz not null default now(),
  -- When the presigned URL stops working, as the response said.
  expires_at timestamptz not null,
  constraint uploads_key_under_tenant check (starts_with(storage_key, 'uploads/' || tenant_id::text || '/'))
);
create index uploads_tenant_idx on leasehold.uploads (tenant_id, id);

-- Extending a lease is not a transition: extend_lease records it in admin_actions only, now with
-- the worker that held the lease, and no longer writes a `job.lease_extended` event (which SSE
-- clients received as a type DESIGN.md does not list) nor wakes the event streams for one.
create or replace function leasehold.extend_lease(p_job_id uuid, p_by interval, p_tenant_id uuid default null,
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
  insert into leasehold.admin_actions (actor, action, target, args, result)
  values (p_actor, 'extend_lease', j.id::text, jsonb_build_object('by', p_by::text),
          jsonb_build_object('lease_expires_at', j.lease_expires_at, 'worker', j.lease_owner));
  return j.lease_expires_at;
end $$;

-- The `job.lease_extended` events already written go: each call also wrote an `extend_lease` row
-- of admin_actions (actor, job, interval, new expiry), which holds the same facts once it carries
-- the event's worker too. No index has the type: these two statements and the check's validation
-- each read the whole of job_events once.
update leasehold.admin_actions a
set result = a.result || jsonb_build_object('worker', e.data -> 'worker')
from leasehold.job_events e
where e.type = 'job.lease_extended' and a.action = 'extend_lease' and a.target = e.job_id::text
  and a.result -> 'lease_expires_at' = e.data -> 'lease_expires_at';
delete from leasehold.job_events where type = 'job.lease_extended';

alter table leasehold.job_events drop constraint job_events_type_check;
alter table leasehold.job_events add constraint job_events_type_check
  check (type in ('job.queued', 'job.running', 'job.progress', 'job.retrying', 'job.succeeded', 'job.failed',
                  'job.cancelled')) not valid;
alter table leasehold.job_events validate constraint job_events_type_check;

-- A job's own webhook_url gets job.succeeded and job.failed, what DESIGN.md says webhooks carry;
-- job.cancelled stays for subscriptions that ask for it. Only that branch changes: COMPLETE_JOBS
-- still calls this only when a row qualifies, and a cancellation's trigger call writes no URL row.
create or replace function leasehold.webhook_outbox(p_event text, p_job_ids uuid[], p_tenant_ids uuid[], p_urls text[], p_errors text[])
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
    where j.url is not null and p_event in ('job.succeeded', 'job.failed')
    returning 1
  )
  select count(*)::int from ins
$$;

-- Plain SQL inserts (`insert into leasehold.jobs (kind) values (…)`) get a time-ordered id, as
-- retention's primary-key walk expects. The application keeps making its own: its inserts and its
-- COPY always name the id column, so they never evaluate this default.
alter table leasehold.jobs alter column id set default leasehold.uuid_v7();
