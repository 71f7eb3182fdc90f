import { randomUUID } from 'node:crypto';
import type { Sql } from '../db/connect.js';

/** Why a PUT may not take an upload URL's bytes: they arrived already, another PUT is sending them, or the URL has no `uploads` row. */
export type ClaimRefusal = { refused: 'used'; at: Date } | { refused: 'busy'; since: Date } | { refused: 'unrecorded' };

/**
 * Takes the presigned upload of `storageKey` for one PUT: its bytes have not arrived, and no other
 * PUT is sending them, unless that PUT began more than `staleMs` ago (its process died: a live one
 * gives up sooner). Returns the claim's token, which finishUpload and releaseUpload need.
 */
export async function claimUpload(sql: Sql, storageKey: string, staleMs: number): Promise<{ token: string } | ClaimRefusal> {
  const token = randomUUID();
  const [row] = await sql<{ id: string }[]>`
    update leasehold.uploads set receiving_token = ${token}::uuid, receiving_since = now()
    where storage_key = ${storageKey} and received_at is null
      and (receiving_token is null or receiving_since < now() - make_interval(secs => ${staleMs / 1000}::float8))
    returning id`;
  if (row) return { token };
  const [u] = await sql<{ received_at: Date | null; receiving_since: Date | null }[]>`
    select received_at, receiving_since from leasehold.uploads where storage_key = ${storageKey}`;
  if (!u) return { refused: 'unrecorded' };
  if (u.received_at) return { refused: 'used', at: u.received_at };
  return { refused: 'busy', since: u.receiving_since ?? new Date() };
}

/** Marks the upload's bytes as arrived, if this claim still holds it; true when it did. The URL takes no other PUT after this. */
export async function finishUpload(sql: Sql, storageKey: string, token: string): Promise<boolean> {
  const rows = await sql`
    update leasehold.uploads set received_at = now(), receiving_token = null, receiving_since = null
    where storage_key = ${storageKey} and receiving_token = ${token}::uuid and received_at is null
    returning 1`;
  return rows.length === 1;
}

/** Gives the claim up (the PUT failed before its bytes were stored), so that the URL takes another PUT. */
export async function releaseUpload(sql: Sql, storageKey: string, token: string): Promise<void> {
  await sql`
    update leasehold.uploads set receiving_token = null, receiving_since = null
    where storage_key = ${storageKey} and receiving_token = ${token}::uuid`;
}

/** Undoes finishUpload when the bytes could not be made the object after all: the URL takes a PUT again. */
export async function unfinishUpload(sql: Sql, storageKey: string): Promise<void> {
  await sql`update leasehold.uploads set received_at = null where storage_key = ${storageKey}`;
}
