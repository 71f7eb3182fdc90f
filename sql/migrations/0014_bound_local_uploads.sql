-- Bounds on uploads: a local store URL takes its bytes once, a tenant presigns at most a daily
-- quota, and retention deletes objects (rows of `uploads`, now also the outputs jobs write) that
-- no job has named for a retention window.

-- When the bytes arrived through the local store's URL, which then refuses every other PUT (null
-- until then, and on S3, whose URLs do not report back); for a job's output, when it was stored.
alter table leasehold.uploads add column received_at timestamptz;
-- The PUT sending the bytes now (local store): one at a time per URL. A claim older than the
-- longest a PUT may take belongs to a process that died, and another PUT may take it over.
alter table leasehold.uploads add column receiving_token uuid;
alter table leasehold.uploads add column receiving_since timestamptz;
-- When a job last named the object (the API marks it before checking the object, at most hourly).
-- Retention keeps the object for RETENTION_JOBS_DAYS plus a day after the later of this and
-- created_at, and longer while a job still in `jobs` or a schedule names it.
alter table leasehold.uploads add column used_at timestamptz;

comment on table leasehold.uploads is
  'One row per presigned upload (created_by key:… or jwt:…) and per object a job wrote (created_by job:<id>, expires_at = created_at: no URL).';

-- Presigned uploads per tenant and UTC day, counted by POST /v1/uploads in the statement that
-- inserts the `uploads` row: UPLOADS_PER_TENANT_DAILY and UPLOAD_BYTES_PER_TENANT_DAILY refuse
-- past them. One small row per tenant and day, kept like spend_daily as a record of use.
create table leasehold.uploads_daily (
  tenant_id uuid not null references leasehold.tenants (id) on delete cascade,
  day date not null,
  uploads integer not null default 0 check (uploads >= 0),
  -- Declared sizes: a local store URL accepts exactly that many bytes, an S3 one signs the length.
  bytes bigint not null default 0 check (bytes >= 0),
  primary key (tenant_id, day)
);
