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

/** Inserts the `uploads` row of a presigned upload; returns its id (UUIDv7, the table's default). */
export async function recordUpload(sql: Sql, u: UploadRecord): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into leasehold.uploads (tenant_id, storage_key, content_type, size_bytes, created_by, expires_at)
    values (${u.tenantId}::uuid, ${u.storageKey}, ${u.contentType}, ${u.sizeBytes}::bigint, ${u.createdBy}, ${u.expiresAt}::timestamptz)
    returning id`;
  return row!.id;
}

/** When the tenant's presigned upload of `storageKey` was made and stops working, or undefined when none was recorded. */
export async function uploadOf(sql: Sql, tenantId: string, storageKey: string): Promise<{ createdAt: Date; expiresAt: Date } | undefined> {
  const [row] = await sql<{ created_at: Date; expires_at: Date }[]>`
    select created_at, expires_at from leasehold.uploads where storage_key = ${storageKey} and tenant_id = ${tenantId}::uuid`;
  return row && { createdAt: row.created_at, expiresAt: row.expires_at };
}
