import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { waitFor } from '../test/helpers/wait.js';
import { routeGroup, takeToken } from './middleware/rate-limit.js';

/** A response body as JSON, loosely typed for assertions. */
const json = (res: Response): Promise<any> => res.json();

let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(async () => db?.drop());

/** The test app with limits from `env` and a probe route per group: GET and POST /v1/rl, POST /v1/rl/ingest. */
function probeApi(env: Record<string, string>, sql: Sql = db.sql): TestApi {
  const api = createTestApi(sql, env);
  api.app.get('/v1/rl', (c) => c.json({ ok: true }));
  api.app.post('/v1/rl', (c) => c.json({ ok: true }));
  api.app.post('/v1/rl/ingest', (c) => c.json({ ok: true }));
  return api;
}

const get = (api: TestApi, key: string) => api.request(key, 'GET', '/v1/rl');
const rateLimitOf = (res: Response) => [res.headers.get('ratelimit-policy'), res.headers.get('ratelimit')];

/** Asserts a 429 problem and returns its Retry-After in seconds. */
async function expect429(res: Response): Promise<number> {
  const body = await json(res);
  expect(res.status, JSON.stringify(body)).toBe(429);
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  expect(body).toMatchObject({ code: 'rate_limited', status: 429, type: '/problems/rate_limited' });
  expect(body.request_id).toBeTruthy();
  const retryAfter = res.headers.get('retry-after');
  expect(retryAfter).toMatch(/^[1-9]\d*$/);
  expect(body.retry_after).toBe(Number(retryAfter));
  return Number(retryAfter);
}

test('route groups: POST …/ingest is ingest, other writes are write, reads are read', () => {
  expect(routeGroup('POST', '/v1/patterns/0190-x/ingest')).toBe('ingest');
  expect(['POST', 'PATCH', 'DELETE', 'PUT'].map((m) => routeGroup(m, '/v1/patterns/1'))).toEqual(['write', 'write', 'write', 'write']);
  expect(routeGroup('GET', '/v1/patterns/1/ingest')).toBe('read');
  expect(routeGroup('POST', '/v1/jobs/1/ingested')).toBe('write');
});

describe('the token bucket', () => {
  test('a burst passes with RateLimit headers counting down, then 429 with Retry-After', async () => {
    const api = probeApi({ RATE_LIMIT_PER_S: '0.5', RATE_LIMIT_BURST: '3' });
    const { key } = await api.tenant('burst');
    const passed = [];
    // The last one goes to an unknown route: it draws from the bucket too, and its 404 says so.
    for (const path of ['/v1/rl', '/v1/rl', '/v1/no-such-route']) {
      const res = await api.request(key, 'GET', path);
      expect(res.status).toBe(path === '/v1/rl' ? 200 : 404);
      passed.push(rateLimitOf(res));
    }
    // q = burst, w = seconds to refill it (3 / 0.5); t = seconds until full again.
    expect(passed).toEqual([
      ['"read";q=3;w=6', '"read";r=2;t=2'],
      ['"read";q=3;w=6', '"read";r=1;t=4'],
      ['"read";q=3;w=6', '"read";r=0;t=6'],
    ]);
    const refused = await get(api, key);
    expect(rateLimitOf(refused)).toEqual(['"read";q=3;w=6', '"read";r=0;t=6']);
    // One token takes 2 s at 0.5/s; a few ms have refilled a sliver of it.
    expect(await expect429(refused)).toBe(2);
  });

  test('tokens refill over time at the configured rate', async () => {
    const api = probeApi({ RATE_LIMIT_PER_S: '5', RATE_LIMIT_BURST: '2' });
    const { key } = await api.tenant('refill');
    for (let i = 0; i < 2; i++) expect((await get(api, key)).status).toBe(200);
    const refusedAt = performance.now();
    expect(await expect429(await get(api, key))).toBe(1);
    const ok = await waitFor(async () => ((await get(api, key)).status === 200 ? performance.now() : 0), 'a refilled token', 3_000);
    // One token every 200 ms: well after the refusal, well before a second.
    expect(ok - refusedAt).toBeGreaterThan(120);
    expect(ok - refusedAt).toBeLessThan(1_000);
    expect((await get(api, key)).status).toBe(429);
  });

  test('tenants.rate_limits overrides the defaults per group; a malformed override falls back to them', async () => {
    const api = probeApi({ RATE_LIMIT_PER_S: '0.5', RATE_LIMIT_BURST: '5' });
    const custom = await api.tenant('override');
    const broken = await api.tenant('override-broken');
    await db.sql`update leasehold.tenants set rate_limits = ${db.sql.json({ read: { rate: 0.01, burst: 2 }, write: { burst: 1 } })}
                 where id = ${custom.tenantId}`;
    await db.sql`update leasehold.tenants set rate_limits = ${db.sql.json({ read: { rate: 'fast' } })} where id = ${broken.tenantId}`;
    for (let i = 0; i < 2; i++) expect((await get(api, custom.key)).status).toBe(200);
    const refused = await get(api, custom.key);
    expect(rateLimitOf(refused)[0]).toBe('"read";q=2;w=200');
    expect(await expect429(refused)).toBe(100);
    // Only the burst was overridden for writes: the default rate still applies.
    const write = await api.request(custom.key, 'POST', '/v1/rl');
    expect(rateLimitOf(write)).toEqual(['"write";q=1;w=2', '"write";r=0;t=2']);
    await expect429(await api.request(custom.key, 'POST', '/v1/rl'));
    for (let i = 0; i < 5; i++) expect((await get(api, broken.key)).status).toBe(200);
    await expect429(await get(api, broken.key));
  });

  test('two API processes (two apps, two pools) share one bucket, atomically', async () => {
    const env = { RATE_LIMIT_PER_S: '0.01', RATE_LIMIT_BURST: '4' };
    const [a, b] = [probeApi(env, db.connect({ max: 3 })), probeApi(env, db.connect({ max: 3 }))];
    const { key } = await a.tenant('shared');
    const remaining = [];
    for (const api of [a, b, a, b]) {
      const res = await get(api, key);
      expect(res.status).toBe(200);
      remaining.push(res.headers.get('ratelimit'));
    }
    expect(remaining).toEqual(['"read";r=3;t=100', '"read";r=2;t=200', '"read";r=1;t=300', '"read";r=0;t=400']);
    await expect429(await get(a, key));
    await expect429(await get(b, key));
    // Concurrent requests through both processes: exactly `burst` of them pass.
    const writes = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).request(key, 'POST', '/v1/rl')));
    expect(writes.filter((r) => r.status === 200)).toHaveLength(4);
    expect(writes.filter((r) => r.status === 429)).toHaveLength(16);
  });

  test('a process leases tokens ten at a time from a large bucket, and spends them without a statement', async () => {
    const api = probeApi({ RATE_LIMIT_PER_S: '0.001', RATE_LIMIT_BURST: '200' });
    const { key, tenantId } = await api.tenant('leases');
    const level = async () =>
      Math.round((await db.sql<{ tokens: number }[]>`select tokens from leasehold.rate_limits where tenant_id = ${tenantId}::uuid`)[0]!.tokens);
    expect((await get(api, key)).status).toBe(200);
    expect(await level()).toBe(190);
    for (let i = 0; i < 9; i++) expect((await get(api, key)).status).toBe(200);
    expect(await level()).toBe(190); // nine requests served from the lease
    const eleventh = await get(api, key);
    expect(eleventh.status).toBe(200);
    expect(await level()).toBe(180);
    // The header counts the bucket plus what this process still holds: 200 − 11.
    expect(rateLimitOf(eleventh)[1]).toBe('"read";r=189;t=11000');
  });

  test('tenants and route groups do not share buckets', async () => {
    const api = probeApi({ RATE_LIMIT_PER_S: '0.01', RATE_LIMIT_BURST: '1' });
    const one = await api.tenant('separate-1');
    const two = await api.tenant('separate-2');
    expect((await get(api, one.key)).status).toBe(200);
    await expect429(await get(api, one.key));
    expect((await get(api, two.key)).status).toBe(200);
    const write = await api.request(one.key, 'POST', '/v1/rl');
    const ingest = await api.request(one.key, 'POST', '/v1/rl/ingest');
    expect([write.status, ingest.status]).toEqual([200, 200]);
    expect(rateLimitOf(ingest)[0]).toBe('"ingest";q=1;w=100');
    const buckets = await db.sql<{ tenant_id: string; bucket: string }[]>`
      select tenant_id, bucket from leasehold.rate_limits where tenant_id in ${db.sql([one.tenantId, two.tenantId])} order by 1, 2`;
    expect(buckets.map((r) => `${r.tenant_id === one.tenantId ? 'one' : 'two'}:${r.bucket}`).sort()).toEqual([
      'one:ingest',
      'one:read',
      'one:write',
      'two:read',
    ]);
  });

  test('the bucket statement turns synchronous_commit off for its own transaction only', async () => {
    const { tenantId } = await createTestApi(db.sql).tenant('async-commit');
    const [before] = await db.sql<{ s: string }[]>`select current_setting('synchronous_commit') as s`;
    expect(before!.s).not.toBe('off');
    const inside = await db.sql.begin(async (tx) => {
      await takeToken(tx as unknown as Sql, tenantId, 'read', { rate: 1, burst: 1 });
      return (await tx<{ s: string }[]>`select current_setting('synchronous_commit') as s`)[0]!.s;
    });
    expect(inside).toBe('off');
    const [after] = await db.sql<{ s: string }[]>`select current_setting('synchronous_commit') as s`;
    expect(after!.s).toBe(before!.s);
  });
});

test('concurrent requests that find no leased tokens share one lease instead of draining the bucket', async () => {
  // Burst 1,000: a lease is 50 tokens (a twentieth). 40 requests arriving together take one lease
  // between them; when each took its own, 40 leases drained 2,000 tokens' worth (and most were lost).
  const api = probeApi({ RATE_LIMIT_PER_S: '0.001', RATE_LIMIT_BURST: '1000' });
  const { tenantId, key } = await api.tenant('rl-herd');
  const answers = await Promise.all(Array.from({ length: 40 }, () => get(api, key)));
  expect(answers.map((r) => r.status)).toEqual(new Array(40).fill(200));
  const [bucket] = await db.sql<{ tokens: number }[]>`
    select tokens from leasehold.rate_limits where tenant_id = ${tenantId}::uuid and bucket = 'read'`;
  expect(bucket!.tokens).toBeGreaterThanOrEqual(950);
  expect(bucket!.tokens).toBeLessThan(951);
  // The 41st request still spends from the lease: the bucket does not move.
  expect((await get(api, key)).status).toBe(200);
  const [after] = await db.sql<{ tokens: number }[]>`
    select tokens from leasehold.rate_limits where tenant_id = ${tenantId}::uuid and bucket = 'read'`;
  expect(after!.tokens).toBe(bucket!.tokens);
});
