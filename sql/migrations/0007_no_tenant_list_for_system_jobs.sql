-- Jobs of the system tenant (enqueued without a tenant: the library, the CLI, operators) get no
-- tenant_jobs row. tenant_jobs exists for the API's per-tenant lists; the system tenant's list
-- (no API key is made for it, but one could be) is read from jobs directly. The row and its index
-- entry were ~1.5 µs of the ~8 µs PostgreSQL spends per job in a bulk COPY: bulk enqueue of
-- 100,000 plain jobs went from ~110k to ~120–140k jobs/s here.
-- Rows already written for the system tenant stay until retention deletes them with their jobs.
create or replace function leasehold.jobs_inserted() returns trigger
language plpgsql as $$
begin
  insert into leasehold.queues (name)
  select distinct queue from new_jobs
  on conflict (name) do nothing;
  insert into leasehold.job_events (job_id, tenant_id, type, attempt)
  select id, tenant_id, case when status = 'queued' then 'job.queued' else 'job.' || status::text end, attempts
  from new_jobs;
  insert into leasehold.tenant_jobs (tenant_id, job_id)
  select tenant_id, id from new_jobs
  where tenant_id <> '00000000-0000-0000-0000-000000000000';
  return null;
end $$;
