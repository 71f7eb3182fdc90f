import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { createApiKey, revokeApiKey, type Scope } from '#shared/auth/api-keys.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { requireScope } from './middleware/authenticate.js';

/** A response body as JSON, loosely typed for assertions. */
const json = (res: Response): Promise<any> => res.json();

let db: TestDatabase;
let jwks: Server;
let jwksUrl: string;
const keys = {} as Record<'rsa' | 'ec' | 'otherRsa', { privateKey: CryptoKey; publicKey: CryptoKey }>;
const HS_SECRET = 'a-test-secret-of-at-least-thirty-two-bytes!';
const ISSUER = 'https://issuer.example';
const AUDIENCE = 'leasehold-api';

beforeAll(async () => {
  db = await createTestDatabase();
  keys.rsa = await generateKeyPair('RS256');
  keys.ec = await generateKeyPair('ES256');
  keys.otherRsa = await generateKeyPair('RS256');
  const body = JSON.stringify({
    keys: [
      { ...(await exportJWK(keys.rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(keys.ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
    ],
  });
  // A real JWKS endpoint: jose fetches it over HTTP like it would from an identity provider.
  jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;
});
afterAll(async () => {
  await new Promise((resolve) => jwks?.close(resolve));
  await db?.drop();
});
afterEach(() => vi.useRealTimers());

/** The test app plus probe routes that echo the caller: any scope, jobs:write, admin, and an event stream path. */
function probeApi(env: Record<string, string> = {}, sql = db.sql): TestApi {
  const api = createTestApi(sql, env);
  const whoami = (c: { get(k: 'principal'): { tenantId: string; scopes: ReadonlySet<Scope>; subject: string } }) => {
    const p = c.get('principal');
    return { tenant_id: p.tenantId, scopes: [...p.scopes].sort(), subject: p.subject };
  };
  api.app.get('/v1/probe', (c) => c.json(whoami(c)));
  api.app.get('/v1/probe/events', (c) => c.json(whoami(c)));
  api.app.post('/v1/probe', requireScope('jobs:write'), (c) => c.json(whoami(c)));
  api.app.post('/v1/probe/admin', requireScope('admin'), (c) => c.json(whoami(c)));
  return api;
}

/** Asserts an RFC 9457 problem with the given status and code, carrying the request id. */
async function expectProblem(res: Response, status: number, code: string, detail?: RegExp): Promise<void> {
  const body = await json(res);
  expect({ status: res.status, type: res.headers.get('content-type') }, JSON.stringify(body)).toEqual({
    status,
    type: 'application/problem+json',
  });
  expect(body).toMatchObject({ status, code, type: `/problems/${code}` });
  expect(body.request_id).toMatch(/^[\w-]{8,}$/);
  if (detail) expect(body.detail).toMatch(detail);
  if (status === 401) expect(res.headers.get('www-authenticate')).toBe('Bearer realm="leasehold"');
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** Signs a JWT; `claims` may override iat/exp/nbf (seconds) and the header's alg/kid. */
function sign(key: CryptoKey | Uint8Array, alg: string, claims: JWTPayload, kid?: string): Promise<string> {
  return new SignJWT({ iat: now(), exp: now() + 300, ...claims }).setProtectedHeader({ alg, ...(kid ? { kid } : {}) }).sign(key);
}
const hs = (claims: JWTPayload, secret = HS_SECRET) => sign(new TextEncoder().encode(secret), 'HS256', claims);
const rs = (claims: JWTPayload) => sign(keys.rsa.privateKey, 'RS256', { iss: ISSUER, aud: AUDIENCE, ...claims }, 'rsa-1');
const es = (claims: JWTPayload) => sign(keys.ec.privateKey, 'ES256', { iss: ISSUER, aud: AUDIENCE, ...claims }, 'ec-1');

describe('API keys', () => {
  test('a valid key reaches the route as its tenant with its scopes; an unknown /v1 route is then a 404, not a 401', async () => {
    const api = probeApi();
    const { tenantId, key } = await api.tenant('keys-valid');
    const res = await api.request(key, 'GET', '/v1/probe');
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ tenant_id: tenantId, scopes: ['jobs:read', 'jobs:write'], subject: expect.stringMatching(/^key:/) });
    await expectProblem(await api.request(key, 'GET', '/v1/no-such-route'), 404, 'not_found');
    await expectProblem(await api.request(undefined, 'GET', '/v1/no-such-route'), 401, 'unauthorized', /missing Authorization/);
    expect((await api.request(undefined, 'GET', '/health')).status).toBe(200);
  });

  test('malformed Authorization headers are 401 problems', async () => {
    const api = probeApi();
    const { key } = await api.tenant('keys-malformed');
    for (const header of [`Basic ${key}`, 'Bearer', 'Bearer ', `Bearer ${key} extra`, `bearer${key}`, `Bearer ${'x'.repeat(5000)}`]) {
      const res = await api.app.request('/v1/probe', { headers: { authorization: header } });
      await expectProblem(res, 401, 'unauthorized');
    }
  });

  test('the scheme is case-insensitive and may be followed by more than one space (RFC 9110)', async () => {
    const api = probeApi();
    const { key } = await api.tenant('keys-scheme');
    for (const header of [`bearer ${key}`, `BEARER ${key}`, `Bearer  ${key}`]) {
      const res = await api.app.request('/v1/probe', { headers: { authorization: header } });
      expect(res.status, header).toBe(200);
    }
  });

  test('an unknown prefix, a wrong secret and a non-key token (with no JWT configured) are 401', async () => {
    const api = probeApi();
    const { key } = await api.tenant('keys-wrong');
    const [, prefix, secret] = key.split('_', 3) as [string, string, string];
    const rest = key.slice(`lh_${prefix}_`.length);
    expect(rest.startsWith(secret)).toBe(true);
    const flipped = (rest[0] === 'A' ? 'B' : 'A') + rest.slice(1);
    await expectProblem(await api.request(`lh_zzzzzzzzzz_${rest}`, 'GET', '/v1/probe'), 401, 'unauthorized', /unknown or revoked/);
    await expectProblem(await api.request(`lh_${prefix}_${flipped}`, 'GET', '/v1/probe'), 401, 'unauthorized', /unknown or revoked/);
    await expectProblem(await api.request('eyJhbGciOiJIUzI1NiJ9.e30.sig', 'GET', '/v1/probe'), 401, 'unauthorized', /accepts no JWTs/);
  });

  test('a key an operator chose (any visible ASCII text) authenticates everywhere; only its hash and an op- prefix are stored', async () => {
    const api = probeApi();
    const tenant = await ensureTenant(db.sql, 'keys-chosen');
    const chosen = ['test-key', `p@ss:w0rd/$"'!`, 'eyJhbGciOiJIUzI1NiJ9.e30.sig', 'lh_short_key'];
    for (const key of chosen) {
      await createApiKey(db.sql, { tenantId: tenant.id, name: 'chosen', scopes: ['admin'], key });
      const res = await api.request(key, 'GET', '/v1/probe');
      expect(res.status, key).toBe(200);
      expect(await json(res)).toMatchObject({ tenant_id: tenant.id, subject: expect.stringMatching(/^key:/) });
      expect((await api.request(undefined, 'GET', `/v1/probe/events?access_token=${encodeURIComponent(key)}`)).status).toBe(200);
    }
    const rows = await db.sql<{ prefix: string; secret_sha256: Buffer }[]>`
      select prefix, secret_sha256 from leasehold.api_keys where tenant_id = ${tenant.id} order by created_at`;
    expect(rows.map((r) => r.secret_sha256.toString('hex'))).toEqual(chosen.map((k) => createHash('sha256').update(k).digest('hex')));
    for (const row of rows) expect(row.prefix).toMatch(/^op-[0-9a-f]{16}$/);
    for (const key of chosen) expect(JSON.stringify(await db.sql`select * from leasehold.api_keys where tenant_id = ${tenant.id}`)).not.toContain(key);
    // The admin-only doors outside /v1 take it too.
    expect((await api.app.request('/metrics', { headers: { authorization: 'Bearer test-key' } })).status).toBe(200);
    const login = await api.app.request('/dashboard/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ key: 'test-key' }).toString(),
    });
    expect(login.status).toBe(303);
    // A near miss is refused, and revoking by the listed prefix works as for any key.
    await expectProblem(await api.request('test-kez', 'GET', '/v1/probe'), 401, 'unauthorized', /unknown or revoked/);
    expect(await revokeApiKey(db.sql, rows[0]!.prefix)).toBe(true);
    await expectProblem(await probeApi().request('test-key', 'GET', '/v1/probe'), 401, 'unauthorized', /unknown or revoked/);
  });

  test('with JWTs accepted, a chosen key and a JWT both authenticate, and any other token is an invalid JWT', async () => {
    const api = probeApi({ JWT_SECRET: HS_SECRET });
    const tenant = await ensureTenant(db.sql, 'keys-chosen-jwt');
    await createApiKey(db.sql, { tenantId: tenant.id, name: 'chosen', scopes: ['jobs:read'], key: 'jwt-era-key' });
    expect(await json(await api.request('jwt-era-key', 'GET', '/v1/probe'))).toMatchObject({ tenant_id: tenant.id, subject: expect.stringMatching(/^key:/) });
    expect(await json(await api.request(await hs({ sub: 'chosen-jwt-org' }), 'GET', '/v1/probe'))).toMatchObject({ subject: 'jwt:chosen-jwt-org' });
    await expectProblem(await api.request('jwt-era-kez', 'GET', '/v1/probe'), 401, 'unauthorized', /invalid token/);
  });

  test('a revoked key is refused by a fresh app at once and by a running one after its 5 s cache', async () => {
    const api = probeApi();
    const { key } = await api.tenant('keys-revoked');
    expect((await api.request(key, 'GET', '/v1/probe')).status).toBe(200);
    expect(await revokeApiKey(db.sql, key.split('_')[1]!)).toBe(true);
    await expectProblem(await probeApi().request(key, 'GET', '/v1/probe'), 401, 'unauthorized', /unknown or revoked/);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 5_100);
    await expectProblem(await api.request(key, 'GET', '/v1/probe'), 401, 'unauthorized', /unknown or revoked/);
  });

  test('scopes: jobs:read cannot write (403), jobs:write is not admin, admin holds every scope', async () => {
    const api = probeApi();
    const reader = await api.tenant('scopes', ['jobs:read']);
    const writer = await api.tenant('scopes', ['jobs:write']);
    const admin = await api.tenant('scopes', ['admin']);
    expect((await api.request(reader.key, 'GET', '/v1/probe')).status).toBe(200);
    await expectProblem(await api.request(reader.key, 'POST', '/v1/probe'), 403, 'forbidden', /"jobs:write" scope/);
    expect((await api.request(writer.key, 'POST', '/v1/probe')).status).toBe(200);
    await expectProblem(await api.request(writer.key, 'POST', '/v1/probe/admin'), 403, 'forbidden', /"admin" scope/);
    for (const path of ['/v1/probe', '/v1/probe/admin']) expect((await api.request(admin.key, 'POST', path)).status).toBe(200);
  });

  test('?access_token= is accepted only on paths ending in /events', async () => {
    const api = probeApi({ JWT_SECRET: HS_SECRET });
    const { tenantId, key } = await api.tenant('query-token');
    const events = await api.request(undefined, 'GET', `/v1/probe/events?access_token=${key}`);
    expect(events.status).toBe(200);
    expect((await json(events)).tenant_id).toBe(tenantId);
    const jwt = await hs({ sub: 'query-token-org' });
    expect((await api.request(undefined, 'GET', `/v1/probe/events?access_token=${jwt}`)).status).toBe(200);
    await expectProblem(await api.request(undefined, 'GET', `/v1/probe?access_token=${key}`), 401, 'unauthorized', /missing Authorization/);
    await expectProblem(await api.request(undefined, 'POST', `/v1/probe?access_token=${key}`), 401, 'unauthorized');
  });
});

describe('JWTs with HS256 (JWT_SECRET)', () => {
  test('a valid token is accepted with the default scopes; wrong secret, RS256 and alg "none" are refused', async () => {
    const api = probeApi({ JWT_SECRET: HS_SECRET });
    const ok = await api.request(await hs({ sub: 'hs-org' }), 'GET', '/v1/probe');
    expect(ok.status).toBe(200);
    expect(await json(ok)).toMatchObject({ scopes: ['jobs:read', 'jobs:write'], subject: 'jwt:hs-org' });
    await expectProblem(await api.request(await hs({ sub: 'hs-org' }, 'another-secret-of-at-least-thirty-two-b'), 'GET', '/v1/probe'), 401, 'unauthorized', /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/);
    await expectProblem(await api.request(await rs({ sub: 'hs-org' }), 'GET', '/v1/probe'), 401, 'unauthorized', /ERR_JOSE_ALG_NOT_ALLOWED/);
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'hs-org', exp: now() + 300 })}.`;
    await expectProblem(await api.request(none, 'GET', '/v1/probe'), 401, 'unauthorized', /invalid token/);
  });

  test('a scope claim narrows what the token may do', async () => {
    const api = probeApi({ JWT_SECRET: HS_SECRET });
    const reader = await hs({ sub: 'hs-scoped', scope: 'jobs:read bogus' });
    const res = await api.request(reader, 'GET', '/v1/probe');
    expect((await json(res)).scopes).toEqual(['jobs:read']);
    await expectProblem(await api.request(reader, 'POST', '/v1/probe'), 403, 'forbidden');
    await expectProblem(await api.request(await hs({ sub: 'hs-scoped' }), 'POST', '/v1/probe/admin'), 403, 'forbidden');
  });

  test('a JWT never holds admin: a scope claim naming it is ignored, and the operator routes refuse the token', async () => {
    const api = probeApi({ JWT_SECRET: HS_SECRET });
    const scopesOf = async (claims: JWTPayload) => (await json(await api.request(await hs({ sub: 'hs-admin-claim', ...claims }), 'GET', '/v1/probe'))).scopes;
    expect(await scopesOf({ scope: 'admin' })).toEqual([]);
    expect(await scopesOf({ scope: 'jobs:read admin' })).toEqual(['jobs:read']);
    expect(await scopesOf({ scopes: ['admin', 'jobs:write'] })).toEqual(['jobs:write']);
    const admin = await hs({ sub: 'hs-admin-claim', scope: 'admin jobs:read jobs:write' });
    await expectProblem(await api.request(admin, 'POST', '/v1/probe/admin'), 403, 'forbidden', /never from a JWT/);
    // The operator routes act on any tenant: one the token does not belong to, here.
    await ensureTenant(db.sql, 'jwt-admin-victim');
    await expectProblem(await api.request(admin, 'POST', '/v1/admin/credits', { tenant: 'jwt-admin-victim', credits: 1_000_000 }), 403, 'forbidden');
    await expectProblem(await api.request(admin, 'GET', '/v1/admin/tenants/jwt-admin-victim/budget'), 403, 'forbidden');
    await expectProblem(await api.request(admin, 'PUT', '/v1/admin/tenants/jwt-admin-victim/budget', { daily_usd: null }), 403, 'forbidden');
    const [granted] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from leasehold.credit_ledger l join leasehold.tenants t on t.id = l.tenant_id where t.slug = 'jwt-admin-victim'`;
    expect(granted!.n).toBe(0);
    // Its tenant's own work is untouched by the ignored claim.
    expect((await api.request(admin, 'POST', '/v1/probe')).status).toBe(200);
  });

  test('a token without exp is refused: it would never expire', async () => {
    const api = probeApi({ JWT_SECRET: HS_SECRET });
    await expectProblem(await api.request(await hs({ sub: 'hs-no-exp', exp: undefined }), 'GET', '/v1/probe'), 401, 'unauthorized', /ERR_JWT_CLAIM_VALIDATION_FAILED/);
    expect((await api.request(await hs({ sub: 'hs-no-exp' }), 'GET', '/v1/probe')).status).toBe(200);
  });
});

describe('JWTs from a JWKS (RS256, ES256)', () => {
  const env = () => ({ JWT_JWKS_URL: jwksUrl, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE });

  test('RS256 and ES256 tokens signed by keys in the JWKS are accepted', async () => {
    const api = probeApi(env());
    for (const token of [await rs({ sub: 'jwks-org' }), await es({ sub: 'jwks-org' })]) {
      const res = await api.request(token, 'GET', '/v1/probe');
      expect(res.status).toBe(200);
      expect((await json(res)).subject).toBe('jwt:jwks-org');
    }
  });

  test.each([
    ['that has expired', () => rs({ sub: 'x', exp: now() - 60 }), /ERR_JWT_EXPIRED/],
    ['that is not yet valid (nbf)', () => rs({ sub: 'x', nbf: now() + 60 }), /ERR_JWT_CLAIM_VALIDATION_FAILED/],
    ['with alg "none"', async () => `${b64({ alg: 'none' })}.${b64({ sub: 'x', iss: ISSUER, aud: AUDIENCE, exp: now() + 60 })}.`, /invalid token/],
    ['signed by another key under a known kid', () => sign(keys.otherRsa.privateKey, 'RS256', { sub: 'x', iss: ISSUER, aud: AUDIENCE }, 'rsa-1'), /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/],
    ['signed by a key not in the JWKS', () => sign(keys.otherRsa.privateKey, 'RS256', { sub: 'x', iss: ISSUER, aud: AUDIENCE }, 'rsa-9'), /ERR_JWKS_NO_MATCHING_KEY/],
    ['signed with HS256 (not allowed with a JWKS)', () => hs({ sub: 'x', iss: ISSUER, aud: AUDIENCE }), /ERR_JOSE_ALG_NOT_ALLOWED/],
    ['made of three garbage parts', async () => 'abc.def.ghi', /invalid token/],
    ['made of one part', async () => 'not-a-jwt', /invalid token/],
    ['whose payload is not JSON', async () => `${b64({ alg: 'RS256', kid: 'rsa-1' })}.${Buffer.from('{nope').toString('base64url')}.c2ln`, /invalid token/],
    ['from another issuer', () => rs({ sub: 'x', iss: 'https://evil.example' }), /ERR_JWT_CLAIM_VALIDATION_FAILED/],
    ['with no issuer', () => rs({ sub: 'x', iss: undefined }), /ERR_JWT_CLAIM_VALIDATION_FAILED/],
    ['for another audience', () => es({ sub: 'x', aud: 'someone-else' }), /ERR_JWT_CLAIM_VALIDATION_FAILED/],
    ['with no audience', () => es({ sub: 'x', aud: undefined }), /ERR_JWT_CLAIM_VALIDATION_FAILED/],
    ['without exp (it would never expire)', () => rs({ sub: 'x', exp: undefined }), /ERR_JWT_CLAIM_VALIDATION_FAILED/],
    ['without the tenant claim', () => rs({}), /no usable "sub" claim/],
    ['with an empty tenant claim', () => rs({ sub: '' }), /no usable "sub" claim/],
  ])('refuses a token %s with a 401 problem', async (_name, make, detail) => {
    await expectProblem(await probeApi(env()).request(await make(), 'GET', '/v1/probe'), 401, 'unauthorized', detail);
  });


  test('the tenant is created on first sight and the same claim maps to the same tenant afterwards', async () => {
    const tenantOf = async (api: TestApi, token: string) => (await json(await api.request(token, 'GET', '/v1/probe'))).tenant_id;
    const first = await tenantOf(probeApi(env()), await rs({ sub: 'org-first-sight' }));
    const rows = await db.sql`select id, name from leasehold.tenants where external_id = ${'org-first-sight'}`;
    expect(rows).toEqual([{ id: first, name: 'org-first-sight' }]);
    // A fresh app (no cache) and the other algorithm: still the same tenant, still one row.
    expect(await tenantOf(probeApi(env()), await es({ sub: 'org-first-sight' }))).toBe(first);
    expect(await tenantOf(probeApi(env()), await es({ sub: 'org-other' }))).not.toBe(first);
    const [count] = await db.sql<{ n: number }[]>`select count(*)::int as n from leasehold.tenants where external_id = ${'org-first-sight'}`;
    expect(count!.n).toBe(1);
  });

  test('concurrent first requests for a new claim, from separate processes, all get the one tenant', async () => {
    // Eight "API processes" (one connection each): ON CONFLICT makes all but one wait for the
    // winner's commit, which their statement's snapshot cannot see.
    const apps = Array.from({ length: 8 }, () => probeApi(env(), db.connect({ max: 1 })));
    for (let round = 0; round < 10; round++) {
      const token = await rs({ sub: `org-race-${round}` });
      const answers = await Promise.all(apps.map((api) => api.request(token, 'GET', '/v1/probe')));
      expect(answers.map((r) => r.status)).toEqual(apps.map(() => 200));
      const ids = new Set(await Promise.all(answers.map(async (r) => (await json(r)).tenant_id)));
      expect(ids.size).toBe(1);
    }
  });

  test('JWT_TENANT_CLAIM names the claim that picks the tenant', async () => {
    const api = probeApi({ ...env(), JWT_TENANT_CLAIM: 'org_id' });
    const res = await api.request(await rs({ sub: 'user-1', org_id: 'acme-org' }), 'GET', '/v1/probe');
    expect(res.status).toBe(200);
    const { tenant_id, subject } = await json(res);
    expect(subject).toBe('jwt:acme-org');
    const [row] = await db.sql`select external_id from leasehold.tenants where id = ${tenant_id}`;
    expect(row!.external_id).toBe('acme-org');
    await expectProblem(await api.request(await rs({ sub: 'user-1' }), 'GET', '/v1/probe'), 401, 'unauthorized', /"org_id" claim/);
  });
});
