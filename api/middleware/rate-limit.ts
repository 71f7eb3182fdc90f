import type { MiddlewareHandler } from 'hono';
import { z } from 'zod';
import type { Config } from '#shared/config.js';
import type { Sql } from '#shared/db/connect.js';
import { AppError } from '#shared/errors.js';
import type { ApiEnv } from '../context.js';

/** The route groups that each have their own bucket per tenant. */
export const ROUTE_GROUPS = ['ingest', 'write', 'read'] as const;
/** One of ROUTE_GROUPS. */
export type RouteGroup = (typeof ROUTE_GROUPS)[number];

/** A token bucket's shape: `rate` tokens per second, holding at most `burst`. */
export interface Limit {
  rate: number;
  burst: number;
}

// A tenant's overrides are read at most this often per process: a change in
// tenants.rate_limits takes effect within it.
const OVERRIDES_CACHE_MS = 5_000;
// Tokens leased from a bucket at once, and how long unspent ones stay usable.
const MAX_LEASE = 50;
const LEASE_MS = 1_000;

const overrideSchema = z.object({
  rate: z.number().positive().finite().optional(),
  burst: z.number().int().positive().optional(),
});
const overridesSchema = z.object({ ingest: overrideSchema, write: overrideSchema, read: overrideSchema }).partial();
type Overrides = z.output<typeof overridesSchema>;

/** Which bucket a request draws from: `ingest` (POST …/ingest), `write` (other writes), `read`. */
export function routeGroup(method: string, path: string): RouteGroup {
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return 'read';
  return method === 'POST' && /\/ingest\/?$/.test(path) ? 'ingest' : 'write';
}

/**
 * Refills a bucket by the time elapsed since its last update (capped at the burst) and takes
 * exactly `want` tokens, or none, atomically, in one statement: the row lock of ON CONFLICT DO
 * UPDATE serialises every API process on the same bucket. A refused request takes nothing and
 * reads the level instead. synchronous_commit is off for this transaction only: a bucket update
 * lost in a crash just hands out a few extra tokens, and it saves a WAL flush per request.
 */
export async function takeToken(
  sql: Sql,
  tenantId: string,
  group: RouteGroup,
  { rate, burst }: Limit,
  want = 1,
): Promise<{ allowed: boolean; tokens: number }> {
  const [row] = await sql<{ allowed: boolean; tokens: number }[]>`
    with async_commit as materialized (select set_config('synchronous_commit', 'off', true)),
    taken as (
      insert into leasehold.rate_limits as b (tenant_id, bucket, tokens, updated_at)
      select ${tenantId}::uuid, ${group}::text, ${burst}::float8 - ${want}::int, now()
      from async_commit where ${burst}::float8 >= ${want}::int
      on conflict (tenant_id, bucket) do update
        set tokens = least(${burst}::float8,
                           b.tokens + ${rate}::float8 * greatest(0, extract(epoch from now() - b.updated_at)::float8)) - ${want}::int,
            updated_at = greatest(b.updated_at, now())
        where least(${burst}::float8,
                    b.tokens + ${rate}::float8 * greatest(0, extract(epoch from now() - b.updated_at)::float8)) >= ${want}::int
      returning tokens
    )
    select true as allowed, tokens from taken
    union all
    select false, least(${burst}::float8,
                        b.tokens + ${rate}::float8 * greatest(0, extract(epoch from now() - b.updated_at)::float8))
    from leasehold.rate_limits b
    where b.tenant_id = ${tenantId}::uuid and b.bucket = ${group}::text and not exists (select 1 from taken)`;
  // No row: a concurrent first request inserted the bucket after this statement's snapshot.
  return row ?? { allowed: false, tokens: 0 };
}

/** `RateLimit-Policy` and `RateLimit` per draft-ietf-httpapi-ratelimit-headers (-08 on): q is the burst, w the seconds to refill it. */
export function rateLimitHeaders(group: RouteGroup, { rate, burst }: Limit, tokens: number): Record<string, string> {
  const window = Math.max(1, Math.ceil(burst / rate));
  // t: seconds until the bucket is full again, i.e. until the quota "resets" to q.
  const reset = Math.max(0, Math.ceil((burst - tokens) / rate));
  return {
    'RateLimit-Policy': `"${group}";q=${burst};w=${window}`,
    RateLimit: `"${group}";r=${Math.max(0, Math.floor(tokens))};t=${reset}`,
  };
}

/**
 * Rate-limits every authenticated request per (tenant, route group) with a token bucket kept in
 * PostgreSQL, so the limit holds across any number of API processes. Limits default to
 * RATE_LIMIT_PER_S / RATE_LIMIT_BURST and are overridden per tenant by tenants.rate_limits.
 */
export function rateLimit(deps: { sql: Sql; config: Config }): MiddlewareHandler<ApiEnv> {
  const { sql, config } = deps;
  const defaults: Limit = { rate: config.RATE_LIMIT_PER_S, burst: config.RATE_LIMIT_BURST };
  const cache = new Map<string, { overrides: Overrides; at: number }>();

  async function overridesFor(tenantId: string, log: ApiEnv['Variables']['log']): Promise<Overrides> {
    const hit = cache.get(tenantId);
    if (hit && Date.now() - hit.at < OVERRIDES_CACHE_MS) return hit.overrides;
    const [row] = await sql<{ rate_limits: unknown }[]>`select rate_limits from leasehold.tenants where id = ${tenantId}::uuid`;
    const parsed = overridesSchema.safeParse(row?.rate_limits ?? {});
    if (!parsed.success) log.warn({ tenant_id: tenantId, rate_limits: row?.rate_limits }, 'ignoring malformed tenants.rate_limits');
    const overrides = parsed.success ? parsed.data : {};
    if (cache.size > 10_000) cache.clear();
    cache.set(tenantId, { overrides, at: Date.now() });
    return overrides;
  }

  // Tokens this process has taken from a bucket but not spent yet, spendable for LEASE_MS.
  const leased = new Map<string, { tokens: number; until: number; level: number }>();

  // A lease being taken per bucket: concurrent requests that find no tokens wait for it rather
  // than each taking a lease of their own (which replaced one another and wasted the tokens).
  const pending = new Map<string, Promise<{ allowed: boolean; tokens: number }>>();

  /** One token for this request: from the local lease when it holds one, else a new lease. */
  async function take(tenantId: string, group: RouteGroup, limit: Limit): Promise<{ allowed: boolean; tokens: number }> {
    const key = `${tenantId}|${group}`;
    for (let waited = 0; ; waited++) {
      const now = Date.now();
      const lease = leased.get(key);
      if (lease && lease.until > now && lease.tokens >= 1) {
        lease.tokens--;
        return { allowed: true, tokens: lease.level + lease.tokens };
      }
      const inFlight = pending.get(key);
      // Waited once already and still nothing local: the bucket is short; ask for this request alone.
      if (inFlight && waited === 0) {
        const got = await inFlight;
        if (!got.allowed) return got;
        continue;
      }
      const leasing = lease1(tenantId, group, limit, key, now);
      if (!inFlight) pending.set(key, leasing);
      try {
        return await leasing;
      } finally {
        if (pending.get(key) === leasing) pending.delete(key);
      }
    }
  }

  /** Takes a lease of a few tokens from the bucket, spends one, and keeps the rest for LEASE_MS. */
  async function lease1(tenantId: string, group: RouteGroup, limit: Limit, key: string, now: number): Promise<{ allowed: boolean; tokens: number }> {
    // Leasing a few tokens at once spares a statement per request; a process can then hold at
    // most a twentieth of the burst that others cannot use, for at most LEASE_MS.
    const want = Math.max(1, Math.min(MAX_LEASE, Math.floor(limit.burst / 20)));
    let got = await takeToken(sql, tenantId, group, limit, want);
    let taken = want;
    if (!got.allowed && want > 1 && got.tokens >= 1) {
      taken = Math.floor(got.tokens);
      got = await takeToken(sql, tenantId, group, limit, taken);
    }
    if (!got.allowed) return got;
    if (leased.size > 10_000) leased.clear();
    // Tokens of a lease still running (taken by a request that did not wait) are kept, not lost.
    const prior = leased.get(key);
    const carried = prior && prior.until > Date.now() ? prior.tokens : 0;
    leased.set(key, { tokens: taken - 1 + carried, until: now + LEASE_MS, level: got.tokens });
    return { allowed: true, tokens: got.tokens + taken - 1 + carried };
  }

  return async (c, next) => {
    const { tenantId } = c.get('principal');
    const group = routeGroup(c.req.method, c.req.path);
    const limit = { ...defaults, ...(await overridesFor(tenantId, c.get('log')))[group] };
    const { allowed, tokens } = await take(tenantId, group, limit);
    const headers = rateLimitHeaders(group, limit, tokens);
    if (!allowed) {
      const retryAfter = Math.max(1, Math.ceil((1 - tokens) / limit.rate));
      throw new AppError(
        'rate_limited',
        `the "${group}" limit is ${limit.rate} requests per second with bursts of ${limit.burst}; retry after ${retryAfter} s`,
        { retry_after: retryAfter },
        { ...headers, 'Retry-After': String(retryAfter) },
      );
    }
    await next();
    for (const [name, value] of Object.entries(headers)) c.header(name, value);
  };
}
