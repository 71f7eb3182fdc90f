// POST /v1/uploads had no quota: a tenant could presign uploads at the rate limit all day, and
// with the local store each became up to 20 MB on the API's disk.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';

type Json = Record<string, any>;

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

const presign = async (api: TestApi, key: string, size: number) => {
  const res = await api.request(key, 'POST', '/v1/uploads', { content_type: 'image/png', size });
  return { res, body: (await res.json()) as Json };
};

/** Seconds from now to the next midnight UTC. */
const toMidnight = () => {
  const now = new Date();
  return (Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime()) / 1000;
};

test('past UPLOADS_PER_TENANT_DAILY presigns a tenant gets a 429 until midnight UTC, with no URL and no row; other tenants are not counted', async () => {
  const api = createTestApi(db.sql, { UPLOADS_PER_TENANT_DAILY: '3' });
  const a = await api.tenant('quota-count-a');
  const b = await api.tenant('quota-count-b');
  // At once: the day's row serialises them, so exactly three get through.
  const answers = await Promise.all(Array.from({ length: 5 }, () => presign(api, a.key, 100)));
  expect(answers.map((r) => r.res.status).sort()).toEqual([201, 201, 201, 429, 429]);

  const refused = answers.find((r) => r.res.status === 429)!;
  expect(refused.res.headers.get('content-type')).toContain('application/problem+json');
  const retryAfter = Number(refused.res.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThan(toMidnight() - 60);
  expect(retryAfter).toBeLessThanOrEqual(Math.ceil(toMidnight()) + 1);
  expect(refused.body).toMatchObject({
    code: 'rate_limited',
    status: 429,
    detail: expect.stringContaining('presigned 3 of its 3 uploads for today (UTC)'),
    quota: { uploads_per_day: 3, used_uploads: 3 },
  });
  expect(refused.body).not.toHaveProperty('url');
  expect(await db.sql`select count(*)::int as n from leasehold.uploads where tenant_id = ${a.tenantId}`).toEqual([{ n: 3 }]);
  expect(await db.sql`select uploads, bytes from leasehold.uploads_daily where tenant_id = ${a.tenantId}`).toEqual([{ uploads: 3, bytes: '300' }]);

  expect((await presign(api, b.key, 100)).res.status).toBe(201);
});

test('UPLOAD_BYTES_PER_TENANT_DAILY counts declared sizes; the quota holds for S3 too, the same route', async () => {
  const s3 = createTestApi(db.sql, { UPLOAD_BYTES_PER_TENANT_DAILY: '1000', S3_BUCKET: 'quota', S3_ENDPOINT: 'http://127.0.0.1:9', AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' });
  const t = await s3.tenant('quota-bytes');
  const first = await presign(s3, t.key, 600);
  expect(first.res.status).toBe(201);
  expect(first.body.url).toMatch(/^http:\/\/127\.0\.0\.1:9\/quota\//);
  const over = await presign(s3, t.key, 600);
  expect(over.res.status).toBe(429);
  expect(over.body.detail).toContain('this upload of 600 bytes would take this tenant past its 1000 bytes for today (UTC), of which 600 are presigned');
  expect((await presign(s3, t.key, 400)).res.status).toBe(201);
  expect((await presign(s3, t.key, 1)).res.status).toBe(429);
  // One upload bigger than the whole day's bytes is refused at once.
  const big = await presign(s3, (await s3.tenant('quota-bytes-big')).key, 1001);
  expect(big.res.status).toBe(429);
});

test('0 means no limit', async () => {
  const api = createTestApi(db.sql, { UPLOADS_PER_TENANT_DAILY: '0', UPLOAD_BYTES_PER_TENANT_DAILY: '0' });
  const t = await api.tenant('quota-none');
  for (let i = 0; i < 3; i++) expect((await presign(api, t.key, 20 * 1024 * 1024)).res.status).toBe(201);
});
