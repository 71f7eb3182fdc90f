import type { Sql } from '../db/connect.js';

/** What POST /v1/uploads records about a presigned upload before handing out its URL. */
export interface UploadRecord {
  tenantId: string;
  storageKey: string;
  contentType: string;
  sizeBytes: number;
  /** `key:<api key id>` or `jwt:<subject>`. */
  createdBy: string;
  expiresAt: Date;
}

/** How much one tenant may presign per UTC day; 0 means no limit. */
export interface UploadQuota {
  uploadsPerDay: number;
  bytesPerDay: number;
}

/** What a tenant has presigned so far today, when recordUpload refused one more. */
export interface QuotaRefusal {
  quota: UploadQuota;
  usedUploads: number;
  usedBytes: number;
}

/**
 * Counts the upload against the tenant's day in `uploads_daily` and inserts its `uploads` row, in
 * one statement: both or neither, and concurrent presigns of one tenant queue on the day's row, so
 * none slips past the quota. Returns the row's id (UUIDv7, the table's default), or what was used
 * when the upload would go past either limit.
 */
export async function recordUpload(sql: Sql, u: UploadRecord, quota: UploadQuota): Promise<{ id: string } | QuotaRefusal> {
  const [row] = await sql<{ id: string }[]>`
    with day as (
      insert into leasehold.uploads_daily as d (tenant_id, day, uploads, bytes)
      select ${u.tenantId}::uuid, (now() at time zone 'utc')::date, 1, ${u.sizeBytes}::bigint
      where ${quota.bytesPerDay}::bigint = 0 or ${quota.bytesPerDay}::bigint >= ${u.sizeBytes}::bigint
      on conflict (tenant_id, day) do update set uploads = d.uploads + 1, bytes = d.bytes + excluded.bytes
      where (${quota.uploadsPerDay}::int = 0 or d.uploads + 1 <= ${quota.uploadsPerDay}::int)
        and (${quota.bytesPerDay}::bigint = 0 or d.bytes + excluded.bytes <= ${quota.bytesPerDay}::bigint)
      returning 1
    )
    insert into leasehold.uploads (tenant_id, storage_key, content_type, size_bytes, created_by, expires_at)
    select ${u.tenantId}::uuid, ${u.storageKey}, ${u.contentType}, ${u.sizeBytes}::bigint, ${u.createdBy}, ${u.expiresAt}::timestamptz
    where exists (select 1 from day)
    returning id`;
  if (row) return { id: row.id };
  const [used] = await sql<{ uploads: number; bytes: string }[]>`
    select uploads, bytes from leasehold.uploads_daily where tenant_id = ${u.tenantId}::uuid and day = (now() at time zone 'utc')::date`;
  return { quota, usedUploads: used?.uploads ?? 0, usedBytes: Number(used?.bytes ?? 0) };
}

/** When the tenant's presigned upload of `storageKey` was made and stops working, or undefined when none was recorded. */
export async function uploadOf(sql: Sql, tenantId: string, storageKey: string): Promise<{ createdAt: Date; expiresAt: Date } | undefined> {
  const [row] = await sql<{ created_at: Date; expires_at: Date }[]>`
    select created_at, expires_at from leasehold.uploads where storage_key = ${storageKey} and tenant_id = ${tenantId}::uuid`;
  return row && { createdAt: row.created_at, expiresAt: row.expires_at };
}

/**
 * Records that a job is about to name these uploads (`used_at`), so retention keeps their objects
 * for a retention window from now. Called before the objects are checked: a retention pass that
 * deleted one first holds its row until the object is gone, so the check then finds no object.
 * A row touched within the hour is left alone (retention's window is days, not minutes).
 */
export async function touchUploads(sql: Sql, tenantId: string, storageKeys: readonly string[]): Promise<void> {
  if (!storageKeys.length) return;
  await sql`
    update leasehold.uploads set used_at = now()
    where storage_key = any(${[...storageKeys]}::text[]) and tenant_id = ${tenantId}::uuid
      and (used_at is null or used_at < now() - interval '1 hour')`;
}

/**
 * Records an object a job writes (image.edit's result) as a row of `uploads`, made by `job:<id>`
 * with no URL (expires_at = now), before the bytes are stored: retention then deletes it like an
 * upload, once its job is gone and no job names it. Rows of tenants that no longer exist are skipped.
 */
export async function recordOutput(sql: Sql, o: { tenantId: string; storageKey: string; contentType: string; sizeBytes: number; jobId: string }): Promise<void> {
  await sql`
    insert into leasehold.uploads (tenant_id, storage_key, content_type, size_bytes, created_by, expires_at)
    select id, ${o.storageKey}, ${o.contentType}, ${o.sizeBytes}::bigint, ${`job:${o.jobId}`}, now()
    from leasehold.tenants where id = ${o.tenantId}::uuid`;
}

/** Marks a job's output as stored (`received_at`), once its bytes are. */
export async function outputStored(sql: Sql, storageKey: string): Promise<void> {
  await sql`update leasehold.uploads set received_at = now() where storage_key = ${storageKey}`;
}
