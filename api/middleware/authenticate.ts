import type { MiddlewareHandler } from 'hono';
import { createRemoteJWKSet, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Config } from '#shared/config.js';
import type { Sql } from '#shared/db/connect.js';
import { AppError } from '#shared/errors.js';
import { cachedKeyCheck, parseApiKey, type Scope } from '#shared/auth/api-keys.js';
import { tenantForExternalId } from '#shared/auth/tenants.js';
import type { ApiEnv, Principal } from '../context.js';

// JWTs come from an identity provider whose users are tenants' people, so a JWT acts within its
// own tenant only: these are all the scopes one can hold. `admin` acts across every tenant
// (/v1/admin/*, the dashboard, /metrics) and comes only from an API key an operator made with
// `leasehold keys create`; a scope claim naming it is ignored like any scope Leasehold does not know,
// rather than refusing the token, because providers share one scope namespace between applications.
const JWT_SCOPES: readonly Scope[] = ['jobs:read', 'jobs:write'];

const unauthorized = (detail: string) =>
  new AppError('unauthorized', detail, {}, { 'www-authenticate': 'Bearer realm="leasehold"' });

/**
 * Authenticates every request under /v1: `Authorization: Bearer <API key or JWT>`, or
 * `?access_token=` on event streams (browsers' EventSource cannot set headers).
 */
export function authenticate(deps: { sql: Sql; config: Config }): MiddlewareHandler<ApiEnv> {
  const { sql, config } = deps;
  const checkKey = cachedKeyCheck(sql, (owner): Principal => ({ tenantId: owner.tenantId, scopes: new Set(owner.scopes), subject: `key:${owner.keyId}` }), 10_000);
  const tenants = new Map<string, string>();
  let jwtKey: Uint8Array | JWTVerifyGetKey | undefined;
  if (config.JWT_SECRET) jwtKey = new TextEncoder().encode(config.JWT_SECRET);
  else if (config.JWT_JWKS_URL) jwtKey = createRemoteJWKSet(new URL(config.JWT_JWKS_URL));
  const algorithms = config.JWT_SECRET ? ['HS256'] : ['RS256', 'ES256'];

  /** The key's principal; undefined for an unknown or revoked key, or a token that is none. */
  async function fromApiKey(token: string): Promise<Principal | undefined> {
    const { value: principal, owner, firstSeen } = await checkKey(token);
    if (principal && firstSeen) void sql`update leasehold.api_keys set last_used_at = now() where id = ${owner!.keyId}`.catch(() => {});
    return principal;
  }

  async function fromJwt(token: string): Promise<Principal> {
    if (!jwtKey) throw unauthorized('unknown or revoked API key, and this server accepts no JWTs');
    let payload: JWTPayload;
    try {
      // jose refuses `alg: none` and any algorithm not listed, expired and not-yet-valid tokens;
      // `exp` is required, or a token without one would be valid forever.
      ({ payload } = await jwtVerify(token, jwtKey as Uint8Array, {
        algorithms,
        requiredClaims: ['exp'],
        ...(config.JWT_ISSUER ? { issuer: config.JWT_ISSUER } : {}),
        ...(config.JWT_AUDIENCE ? { audience: config.JWT_AUDIENCE } : {}),
        clockTolerance: 5,
      }));
    } catch (err) {
      throw unauthorized(`invalid token: ${(err as { code?: string }).code ?? 'malformed'}`);
    }
    const claim = payload[config.JWT_TENANT_CLAIM];
    if (typeof claim !== 'string' || claim === '' || claim.length > 200) {
      throw unauthorized(`token has no usable "${config.JWT_TENANT_CLAIM}" claim to name its tenant`);
    }
    let tenantId = tenants.get(claim);
    if (!tenantId) {
      tenantId = await tenantForExternalId(sql, claim);
      if (tenants.size > 10_000) tenants.clear();
      tenants.set(claim, tenantId);
    }
    const raw = typeof payload.scope === 'string' ? payload.scope.split(' ') : Array.isArray(payload.scopes) ? payload.scopes : undefined;
    const scopes = raw ? raw.filter((s): s is Scope => (JWT_SCOPES as readonly unknown[]).includes(s)) : JWT_SCOPES;
    return { tenantId, scopes: new Set(scopes), subject: `jwt:${claim}` };
  }

  return async (c, next) => {
    const header = c.req.header('authorization');
    let token: string | undefined;
    if (header !== undefined) {
      const m = /^bearer +([\x21-\x7e]{1,4096})$/i.exec(header);
      if (!m) throw unauthorized('Authorization must be "Bearer <API key or JWT>"');
      token = m[1];
    } else if (c.req.path.endsWith('/events')) {
      token = c.req.query('access_token');
    }
    if (!token) throw unauthorized('missing Authorization: Bearer <API key or JWT>');
    // An `lh_` token can only be a key. Any other may be a key an operator chose
    // (LEASEHOLD_API_KEY=demo-key) or a JWT, which only the database tells apart: the key lookup
    // (one index probe, remembered KEY_CACHE_MS per token; none for tokens past 512 characters)
    // answers first, so a chosen key works whatever its shape.
    const principal = (await fromApiKey(token)) ?? (parseApiKey(token) ? undefined : await fromJwt(token));
    if (!principal) throw unauthorized('unknown or revoked API key');
    c.set('principal', principal);
    c.set('log', c.get('log').child({ tenant_id: principal.tenantId, subject: principal.subject }));
    await next();
  };
}

/**
 * Refuses the request unless the caller holds `scope`. An admin key holds every scope (within its
 * own tenant on tenant routes); `admin` itself is the operators' scope, which no JWT carries.
 */
export function requireScope(scope: Scope): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const { scopes, subject } = c.get('principal');
    if (!scopes.has(scope) && !scopes.has('admin')) {
      const why = scope === 'admin' && subject.startsWith('jwt:')
        ? ': admin acts on every tenant and comes only from an operator\'s API key (leasehold keys create), never from a JWT'
        : '';
      throw new AppError('forbidden', `this credential lacks the "${scope}" scope${why}`);
    }
    await next();
  };
}
