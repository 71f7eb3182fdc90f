import { createHash, timingSafeEqual } from 'node:crypto';
import { parseApiKey, verifyApiKey } from '../auth/api-keys.js';
import type { Sql } from '../db/connect.js';

// A verified key is remembered this long, as in the API's authenticate middleware: a revoked key
// stops working within it, and a scraper every few seconds does not cost a lookup each time.
const KEY_CACHE_MS = 5_000;

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Decides whether an `Authorization` header may read /metrics: `Bearer <METRICS_TOKEN>` when that
 * is configured, or `Bearer <an API key with the admin scope>`. Metrics name queues and kinds of
 * every tenant, so they are never open by default.
 */
export function scrapeAuthorizer(sql: Sql, metricsToken: string | undefined): (authorization: string | undefined) => Promise<boolean> {
  const expected = metricsToken === undefined ? undefined : digest(metricsToken);
  const cache = new Map<string, { ok: boolean; at: number }>();
  return async (authorization) => {
    const m = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(authorization ?? '');
    if (!m) return false;
    const token = m[1]!;
    // Compared as digests so that the comparison takes the same time whatever the length.
    if (expected && timingSafeEqual(digest(token), expected)) return true;
    if (!parseApiKey(token)) return false;
    const hit = cache.get(token);
    if (hit && Date.now() - hit.at < KEY_CACHE_MS) return hit.ok;
    const owner = await verifyApiKey(sql, token);
    const ok = owner?.scopes.includes('admin') ?? false;
    if (cache.size > 1_000) cache.clear();
    cache.set(token, { ok, at: Date.now() });
    return ok;
  };
}
