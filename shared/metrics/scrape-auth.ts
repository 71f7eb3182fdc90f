import { createHash, timingSafeEqual } from 'node:crypto';
import { cachedKeyCheck } from '../auth/api-keys.js';
import type { Sql } from '../db/connect.js';

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Decides whether an `Authorization` header may read /metrics: `Bearer <METRICS_TOKEN>` when that
 * is configured, or `Bearer <an API key with the admin scope>`. Metrics name queues and kinds of
 * every tenant, so they are never open by default.
 */
export function scrapeAuthorizer(sql: Sql, metricsToken: string | undefined): (authorization: string | undefined) => Promise<boolean> {
  const expected = metricsToken === undefined ? undefined : digest(metricsToken);
  const isAdmin = cachedKeyCheck(sql, (owner) => owner.scopes.includes('admin'), 1_000);
  return async (authorization) => {
    const m = /^bearer +([\x21-\x7e]{1,4096})$/i.exec(authorization ?? '');
    if (!m) return false;
    const token = m[1]!;
    // Compared as digests so that the comparison takes the same time whatever the length.
    if (expected && timingSafeEqual(digest(token), expected)) return true;
    return (await isAdmin(token)).value ?? false;
  };
}
