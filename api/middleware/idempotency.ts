import { createHash } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type postgres from 'postgres';
import type { Config } from '#shared/config.js';
import type { Sql, Tx } from '#shared/db/connect.js';
import { AppError } from '#shared/errors.js';
import type { ApiEnv } from '../context.js';

/** What a route's work answers with; with a key, this is what replays return. */
export interface RouteResponse<S extends number, B> {
  status: S;
  body: B;
}

// A duplicate waits this long for the first request's transaction before it is told 409: the
// draft's answer to "a request with this key is still being processed".
const WAIT_FOR_FIRST = '10s';
// SQLSTATE 55P03 lock_not_available: lock_timeout expired while waiting on the first request.
const LOCK_NOT_AVAILABLE = '55P03';
const PRINTABLE_ASCII = /^[\x20-\x7e]{1,255}$/;
// The draft's form is a Structured Field string ("…", with \" and \\ escapes).
const SF_STRING = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$/;

/** The `Idempotency-Key` request header as the OpenAPI document describes it. */
export function idempotencyHeaders(config: Pick<Config, 'IDEMPOTENCY_TTL_HOURS'>) {
  const ttl = config.IDEMPOTENCY_TTL_HOURS;
  return z.object({
    'idempotency-key': z
      .string()
      .optional()
      .openapi({
        example: '"8e03978e-40d5-43e8-bc93-6894a57f9324"',
        description:
          'draft-ietf-httpapi-idempotency-key-header, per tenant: 1–255 printable ASCII characters, bare or as a ' +
          'Structured Field string ("…"); anything else is a 400. A repeat with the same key, method, path and ' +
          `JSON body within ${ttl} hours creates nothing and returns the first response again, with ` +
          '`Idempotent-Replayed: true`. The same key with a different request is a 422 `idempotency_key_reused`. ' +
          'A repeat sent while the first is still in progress waits for it (up to 10 s, then 409 ' +
          '`idempotency_in_progress`). Only successful responses are remembered: a request that failed can be ' +
          `sent again with the same key. Keys expire ${ttl} hours after first use; an expired key counts as new.`,
      }),
  });
}

/** The response header a replay carries, for the OpenAPI document. */
export const replayedHeader = z.object({
  'Idempotent-Replayed': z
    .literal('true')
    .optional()
    .openapi({ description: 'Present when this is the stored response of an earlier request with the same Idempotency-Key.' }),
});

/** Reads the Idempotency-Key header: undefined when absent, a 400 when malformed. */
export function parseIdempotencyKey(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const sf = SF_STRING.exec(raw);
  const key = sf ? sf[1]!.replace(/\\(["\\])/g, '$1') : raw;
  // A value that opens a quote must be a whole Structured Field string.
  if (!PRINTABLE_ASCII.test(key) || (!sf && raw.startsWith('"'))) {
    throw new AppError('bad_request', 'Idempotency-Key must be 1–255 printable ASCII characters (optionally as a "quoted" string)');
  }
  return key;
}

/** JSON with object keys sorted at every level, so key order does not change a fingerprint. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const members = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`);
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Runs a route's writes in one transaction, honouring `Idempotency-Key`: the key's row is
 * inserted in that same transaction, so a concurrent duplicate blocks on the primary key until the
 * first commits and then replays its stored response (N identical requests make one set of jobs),
 * and a failure rolls the key back with everything else. Expired rows are taken over as new.
 */
export async function withIdempotency<S extends number, B>(
  c: Context<ApiEnv>,
  deps: { sql: Sql; config: Pick<Config, 'IDEMPOTENCY_TTL_HOURS'> },
  run: (db: Sql | Tx) => Promise<RouteResponse<S, B>>,
): Promise<RouteResponse<S, B>> {
  const key = parseIdempotencyKey(c.req.header('idempotency-key'));
  // Without a key there is nothing to commit alongside: the route's own statements (one INSERT
  // for its jobs) are atomic by themselves, and skipping BEGIN/COMMIT saves two round trips.
  if (key === undefined) return run(deps.sql);
  const tenantId = c.get('principal').tenantId;
  const { method } = c.req;
  // Percent-encoded as sent: c.req.path is decoded, and text columns cannot hold a decoded %00.
  const path = new URL(c.req.url).pathname;
  const body: unknown = await c.req.json().catch(() => null);
  let canonical: string;
  try {
    canonical = canonicalJson(body);
  } catch {
    throw new AppError('bad_request', 'the JSON body is nested too deeply to fingerprint for Idempotency-Key');
  }
  const fingerprint = createHash('sha256').update(`${method} ${path}\n${canonical}`).digest();

  // A row that vanishes between our insert and our read (a cleanup deleting it) means: try again.
  for (let tries = 0; tries < 3; tries++) {
    let outcome: (RouteResponse<S, B> & { replayed: boolean }) | undefined;
    try {
      outcome = (await deps.sql.begin(async (tx) => {
        await tx`select set_config('lock_timeout', ${WAIT_FOR_FIRST}, true)`;
        const [claimed] = await tx`
          insert into leasehold.idempotency_keys (tenant_id, key, method, path, request_sha256, status, response, expires_at)
          values (${tenantId}::uuid, ${key}, ${method}, ${path}, ${fingerprint}, 0, 'null'::jsonb,
                  now() + ${deps.config.IDEMPOTENCY_TTL_HOURS}::float8 * interval '1 hour')
          on conflict (tenant_id, key) do update
            set method = excluded.method, path = excluded.path, request_sha256 = excluded.request_sha256,
                status = 0, response = 'null'::jsonb, created_at = now(), expires_at = excluded.expires_at
            where leasehold.idempotency_keys.expires_at <= now()
          returning 1`;
        if (claimed) {
          const result = await run(tx);
          // Stored first and answered from what jsonb gives back, so the first response and every
          // replay are byte for byte the same (jsonb reorders object keys).
          const [row] = await tx<{ response: B }[]>`
            update leasehold.idempotency_keys set status = ${result.status}, response = ${tx.json(result.body as postgres.JSONValue)}
            where tenant_id = ${tenantId}::uuid and key = ${key}
            returning response`;
          return { status: result.status, body: row!.response, replayed: false };
        }
        const [stored] = await tx<{ request_sha256: Buffer; status: S; response: B }[]>`
          select request_sha256, status, response from leasehold.idempotency_keys
          where tenant_id = ${tenantId}::uuid and key = ${key}`;
        if (!stored) return undefined;
        if (!stored.request_sha256.equals(fingerprint)) {
          throw new AppError(
            'idempotency_key_reused',
            'this Idempotency-Key was already used with a different request (method, path or body); use a new key',
          );
        }
        return { status: stored.status, body: stored.response, replayed: true };
      })) as (RouteResponse<S, B> & { replayed: boolean }) | undefined;
    } catch (err) {
      if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) {
        throw new AppError('idempotency_in_progress', 'a request with this Idempotency-Key is still being processed; retry shortly');
      }
      throw err;
    }
    if (outcome) {
      if (outcome.replayed) c.header('Idempotent-Replayed', 'true');
      return { status: outcome.status, body: outcome.body };
    }
  }
  throw new AppError('idempotency_in_progress', 'the record of this Idempotency-Key changed while it was read; retry shortly');
}
