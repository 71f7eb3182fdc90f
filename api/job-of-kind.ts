import type { Context } from 'hono';
import { AppError } from '#shared/errors.js';
import type { Governor } from '#shared/governor/governor.js';
import { insertPaidJobs } from '#shared/governor/insert-paid.js';
import type { NewJob } from '#shared/jobs/queue.js';
import { isUuid } from '#shared/jobs/uuid.js';
import type { ObjectStore } from '#shared/storage/object-store.js';
import type { AppDeps, ApiEnv } from './context.js';
import { withIdempotency } from './middleware/idempotency.js';

// What the resource routes built on one job of a kind (galleries, edits) share.

/**
 * Enqueues one job under the request's Idempotency-Key, its estimated cost reserved when the kind is
 * paid (a 402 otherwise), and wakes its workers after commit; returns its id.
 */
export async function enqueueOne(c: Context<ApiEnv>, deps: AppDeps, governor: Governor, job: NewJob): Promise<string> {
  const r = await withIdempotency(c, deps, async (db) => {
    const { ids } = await insertPaidJobs(db, governor, [job]);
    return { status: 202 as const, body: { id: ids[0]! } };
  });
  deps.queue.wake([job]);
  return r.body.id;
}

/** The caller's job of `kind` with this id (status and result), or a 404 naming the resource. */
export async function jobOfKind<R>(deps: AppDeps, tenantId: string, id: string, kind: string, noun: string): Promise<{ status: string; result: R | null }> {
  const [row] = isUuid(id)
    ? await deps.sql<{ status: string; result: R | null }[]>`
        select status, result from leasehold.jobs where id = ${id}::uuid and tenant_id = ${tenantId}::uuid and kind = ${kind}`
    : [];
  if (!row) throw new AppError('not_found', `no ${noun} ${id}`);
  return row;
}

/** A signed download URL made absolute: the local store answers with /storage/… paths, resolved against the request's URL. */
export async function absoluteDownloadUrl(storage: ObjectStore, key: string, ttlS: number, requestUrl: string): Promise<string> {
  return new URL(await storage.signedDownloadUrl(key, ttlS), requestUrl).toString();
}
