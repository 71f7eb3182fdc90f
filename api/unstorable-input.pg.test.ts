import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';

// Text and times PostgreSQL refuses used to pass validation and fail the INSERT or the query: a
// 500 for a client's mistake. Each is now a 422 that names where it is.
type Json = Record<string, any>;

let db: TestDatabase;
let api: TestApi;
let tenant: { tenantId: string; key: string };
let uploaded: string;
// A real 1×1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000', FETCH_ALLOW_PRIVATE: 'true' });
  tenant = await api.tenant('unstorable');
  uploaded = `uploads/${tenant.tenantId}/${randomUUID()}/b.png`;
  await api.storage.put(uploaded, PNG, 'image/png');
  // Routes of the test's own that send a query parameter or a header to PostgreSQL unchecked.
  api.app.get('/v1/test-unchecked', async (c) => {
    const [row] = await db.sql<{ t: string }[]>`select ${c.req.query('t') ?? ''}::text as t`;
    return c.json(row!);
  });
  api.app.get('/v1/test-unchecked-header', async (c) => {
    await db.sql`select ${c.req.header('x-text') ?? ''}::text::timestamptz`;
    return c.json({});
  });
});
afterAll(() => db?.drop());

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; type: string | null; body: Json }> {
  const res = await api.request(tenant.key, method, path, body);
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Json };
}

/** Asserts a 422 validation_failed naming exactly these paths. */
function expect422(r: Awaited<ReturnType<typeof call>>, paths: string[]): void {
  expect({ status: r.status, type: r.type }, JSON.stringify(r.body)).toEqual({ status: 422, type: 'application/problem+json' });
  expect(r.body.code).toBe('validation_failed');
  expect(r.body.errors.map((e: { path: string }) => e.path)).toEqual(paths);
}

const jobCount = async () => (await db.sql<{ n: number }[]>`select count(*)::int as n from leasehold.jobs`)[0]!.n;

describe('NUL and unpaired surrogates in a JSON body', () => {
  // A real upload: POST /v1/jobs checks that the object an image.edit names exists.
  const image = () => uploaded;

  test.each([
    ['a NUL in image.edit prompt', () => ({ kind: 'image.edit', payload: { image: image(), prompt: '\u0000' } }), 'body.payload.prompt', /U\+0000/],
    ['a lone high surrogate in image.edit model', () => ({ kind: 'image.edit', payload: { image: image(), prompt: 'stage it', model: 'gpt\ud800' } }), 'body.payload.model', /surrogate/],
    ['a lone low surrogate in gallery.group hint', () => ({ kind: 'gallery.group', payload: { images: [image(), `uploads/${tenant.tenantId}/a/c.png`], hint: '\udc00 trip' } }), 'body.payload.hint', /surrogate/],
    ['a NUL inside gallery.group hint', () => ({ kind: 'gallery.group', payload: { images: [image(), `uploads/${tenant.tenantId}/a/c.png`], hint: 'beach\u0000' } }), 'body.payload.hint', /U\+0000/],
  ])('POST /v1/jobs with %s → 422 naming the field, and no job', async (_name, body, path, message) => {
    const before = await jobCount();
    const r = await call('POST', '/v1/jobs', body());
    expect422(r, [path]);
    expect(r.body.errors[0].message).toMatch(message);
    expect(await jobCount()).toBe(before);
  });

  test('the same text through the dedicated routes (POST /v1/edits, /v1/galleries) → 422', async () => {
    expect422(await call('POST', '/v1/edits', { image: image(), prompt: 'x\u0000y' }), ['body.prompt']);
    expect422(await call('POST', '/v1/galleries', { images: [image(), `uploads/${tenant.tenantId}/a/c.png`], hint: '\ud83d' }), ['body.hint']);
  });

  test('a webhook description → 422, and no subscription', async () => {
    expect422(await call('POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook', description: 'ops\u0000' }), ['body.description']);
    const [n] = await db.sql<{ n: number }[]>`select count(*)::int as n from leasehold.webhooks where tenant_id = ${tenant.tenantId}`;
    expect(n!.n).toBe(0);
  });

  test('object keys count too, and every offending place is listed, with the character shown as an escape', async () => {
    const r = await call('POST', '/v1/patterns', {
      name: 'p\u0000',
      instructions: 'List items.',
      json_schema: { type: 'object', properties: { ['bad\ud800key']: { type: 'string' } }, required: ['bad\ud800key'], additionalProperties: false },
    });
    expect422(r, ['body.name', 'body.json_schema.properties.bad\\ud800key', 'body.json_schema.required[0]']);
    expect(r.body.errors[1].message).toMatch(/^this key must be valid Unicode/);
  });

  test('a surrogate pair (an emoji) is fine, and so is the text "\\u0000" itself', async () => {
    const r = await call('POST', '/v1/jobs', { kind: 'image.edit', payload: { image: image(), prompt: 'add a 🪴 and the text \\u0000' } });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
  });

  test('an unauthenticated request is still a 401 first', async () => {
    const res = await api.request(undefined, 'POST', '/v1/jobs', { kind: 'image.edit', payload: { prompt: '\u0000' } });
    expect(res.status).toBe(401);
  });
});

describe('query strings and the last line of defence', () => {
  test('a NUL in a parameter value or name → 422 naming it', async () => {
    expect422(await call('GET', '/v1/test-unchecked?t=a%00b'), ['query.t']);
    expect422(await call('GET', '/v1/dead-letters?%00=1'), ['query.\\u0000']);
  });

  test('a value PostgreSQL refuses that reaches it anyway is a 422, not a 500', async () => {
    // Past the edge checks (headers are not checked there): the SQLSTATE says whose fault it is.
    const res = await api.request(tenant.key, 'GET', '/v1/test-unchecked-header', undefined, { 'x-text': '0000-01-01 00:00:00 UTC' });
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ code: 'validation_failed', errors: [{ path: 'request', message: expect.stringContaining('22008') }] });
  });
});

describe('datetimes PostgreSQL cannot take', () => {
  const BAD = [
    ['an offset past ±15:59', '2024-01-01T00:00:00+20:00'],
    ['a negative offset past ±15:59', '2024-01-01T00:00:00-16:00'],
    ['year 0000', '0000-01-01T00:00:00Z'],
    ['year 0001 that is year 0 in UTC', '0001-01-01T00:30:00+01:00'],
    ['year 9999 that is year 10000 in UTC', '9999-12-31T23:59:59-15:00'],
  ];

  test.each(BAD)('GET /v1/jobs?created_after= and created_before= with %s → 422', async (_name, time) => {
    for (const param of ['created_after', 'created_before']) {
      expect422(await call('GET', `/v1/jobs?${param}=${encodeURIComponent(time)}`), [`query.${param}`]);
    }
  });

  test.each(BAD)('POST /v1/jobs with run_at of %s → 422', async (_name, time) => {
    const r = await call('POST', '/v1/jobs', { kind: 'system.noop', run_at: time });
    expect(r.status, JSON.stringify(r.body)).toBe(422);
    expect(r.body.errors.map((e: { path: string }) => e.path)).toContain('body.run_at');
  });

  test('the edges PostgreSQL does take are accepted', async () => {
    for (const time of ['2024-01-01T00:00:00+15:59', '2024-01-01T00:00:00-15:59', '0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z']) {
      expect((await call('GET', `/v1/jobs?created_after=${encodeURIComponent(time)}`)).status, time).toBe(200);
    }
    const r = await call('POST', '/v1/jobs', { kind: 'system.noop', run_at: '9999-12-31T23:59:59+15:59' });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body.run_at).toBe('9999-12-31T08:00:59.000Z');
  });
});
