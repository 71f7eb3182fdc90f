import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Sql } from '../db/connect.js';
import { uuidv7 } from '../jobs/uuid.js';

/** What a credential may do. */
export const SCOPES = ['jobs:write', 'jobs:read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** An API key as listed: never its secret. */
export interface ApiKeyInfo {
  id: string;
  tenant_id: string;
  name: string;
  prefix: string;
  scopes: Scope[];
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

/** Who a verified key belongs to. */
export interface KeyOwner {
  keyId: string;
  tenantId: string;
  scopes: Scope[];
}

const KEY = /^lh_([a-z0-9]{10})_([A-Za-z0-9_-]{43})$/;

/**
 * What else may be a key: a text an operator chose (LEASEHOLD_API_KEY=demo-key-123), 1 to 512
 * visible ASCII characters, the alphabet of a Bearer token, so that every such key can be sent.
 */
export const OPERATOR_KEY = /^[\x21-\x7e]{1,512}$/;

const sha256 = (text: string) => createHash('sha256').update(text).digest();

/** Splits `lh_<prefix>_<secret>`; undefined when the text is not shaped like a generated key. */
export function parseApiKey(key: string): { prefix: string; secret: string } | undefined {
  const m = KEY.exec(key);
  return m ? { prefix: m[1]!, secret: m[2]! } : undefined;
}

/**
 * Where a key's row is found (the unique, indexed `prefix`) and the hash that row holds; undefined
 * for a text that can be no key. A generated key's prefix is its public `lh_<prefix>_` part and
 * the hash covers its secret. Any other key holds no public part, so its prefix is `op-` and 16
 * hex digits of a hash of the whole key (64 bits: two chosen keys share one with odds near 2^-64),
 * which a generated key's `[a-z0-9]{10}` can never be, and the hash covers the whole key.
 */
export function keyLookup(key: string): { prefix: string; hash: Buffer } | undefined {
  const parsed = parseApiKey(key);
  if (parsed) return { prefix: parsed.prefix, hash: sha256(parsed.secret) };
  if (!OPERATOR_KEY.test(key)) return undefined;
  // Another hash than the stored one, so the prefix shown by `keys ls` is not a piece of it.
  return { prefix: `op-${sha256(`leasehold key prefix\n${key}`).toString('hex').slice(0, 16)}`, hash: sha256(key) };
}

/**
 * Makes a new key for a tenant; the plaintext is returned once and stored only as a hash. `key`
 * stores a given text (see keyLookup) instead of a new `lh_` key.
 */
export async function createApiKey(
  sql: Sql,
  opts: { tenantId: string; name: string; scopes: Scope[]; key?: string },
): Promise<{ key: string; info: ApiKeyInfo }> {
  const key =
    opts.key ?? `lh_${randomBytes(8).toString('hex').slice(0, 10)}_${randomBytes(32).toString('base64url')}`;
  const lookup = keyLookup(key);
  if (!lookup) throw new RangeError('an API key must be 1 to 512 visible ASCII characters (no spaces)');
  const [info] = await sql<ApiKeyInfo[]>`
    insert into leasehold.api_keys (id, tenant_id, name, prefix, secret_sha256, scopes)
    values (${uuidv7()}, ${opts.tenantId}, ${opts.name}, ${lookup.prefix}, ${lookup.hash}, ${opts.scopes}::text[])
    returning id, tenant_id, name, prefix, scopes, created_at, last_used_at, revoked_at`;
  return { key, info: info! };
}

/** A tenant's keys (all tenants' with no tenant given), newest first. */
export function listApiKeys(sql: Sql, tenantId?: string): Promise<ApiKeyInfo[]> {
  return sql<ApiKeyInfo[]>`
    select id, tenant_id, name, prefix, scopes, created_at, last_used_at, revoked_at
    from leasehold.api_keys
    where ${tenantId ?? null}::uuid is null or tenant_id = ${tenantId ?? null}
    order by created_at desc`;
}

/** Revokes a key by id or prefix; false when no active key matched. */
export async function revokeApiKey(sql: Sql, idOrPrefix: string): Promise<boolean> {
  const isId = /^[0-9a-f-]{36}$/i.test(idOrPrefix);
  const rows = await sql`
    update leasehold.api_keys set revoked_at = now()
    where revoked_at is null and ${isId ? sql`id = ${idOrPrefix}::uuid` : sql`prefix = ${idOrPrefix}`}
    returning id`;
  return rows.length > 0;
}

/**
 * Checks a presented key: the prefix finds the row, the hash is compared in constant time.
 * Revoked keys, unknown keys and texts that can be no key are undefined alike.
 */
export async function verifyApiKey(sql: Sql, key: string): Promise<KeyOwner | undefined> {
  const lookup = keyLookup(key);
  if (!lookup) return undefined;
  const [row] = await sql<{ id: string; tenant_id: string; scopes: Scope[]; secret_sha256: Buffer }[]>`
    select id, tenant_id, scopes, secret_sha256 from leasehold.api_keys
    where prefix = ${lookup.prefix} and revoked_at is null`;
  if (!row || !timingSafeEqual(row.secret_sha256, lookup.hash)) return undefined;
  return { keyId: row.id, tenantId: row.tenant_id, scopes: row.scopes };
}

/**
 * How long a verified key is remembered by cachedKeyCheck: a revoked key stops working within it,
 * and a busy client (or a scraper every few seconds) does not pay a key lookup per request.
 */
export const KEY_CACHE_MS = 5_000;

/**
 * verifyApiKey with a short memory, for request paths: each key's result is derived once by
 * `derive` and reused for KEY_CACHE_MS. The answer says whether this key had no entry at all
 * before (`firstSeen`), for work worth doing once per key per process.
 */
export function cachedKeyCheck<T>(
  sql: Sql,
  derive: (owner: KeyOwner) => T,
  maxEntries: number,
): (key: string) => Promise<{ value: T | undefined; owner?: KeyOwner; firstSeen: boolean }> {
  const cache = new Map<string, { value: T | undefined; at: number }>();
  return async (key) => {
    const hit = cache.get(key);
    if (hit && Date.now() - hit.at < KEY_CACHE_MS) return { value: hit.value, firstSeen: false };
    const owner = await verifyApiKey(sql, key);
    const value = owner && derive(owner);
    if (cache.size > maxEntries) cache.clear();
    cache.set(key, { value, at: Date.now() });
    return { value, ...(owner && { owner }), firstSeen: !hit };
  };
}
