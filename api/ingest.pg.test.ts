import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { newUploadKey } from '#shared/storage/keys.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';

type Json = Record<string, any>;
const IMG = 'https://images.example.com/receipt.jpg';
const NO_LIMITS = { RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' };

let db: TestDatabase;
let api: TestApi;
let a: { tenantId: string; key: string };
let b: { tenantId: string; key: string };
let pattern: string; // tenant A's, at version 3
beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, NO_LIMITS);
  a = await api.tenant('ingest-a');
  b = await api.tenant('ingest-b');
  pattern = await insertPattern(a.tenantId, { versions: 3 });
});
afterAll(() => db.drop());

/** A pattern straight in SQL (the patterns API is another engineer's, and not under test here). */
async function insertPattern(tenantId: string, opts: { versions?: number; active?: boolean; deleted?: boolean } = {}): Promise<string> {
  const id = uuidv7();
  const versions = opts.versions ?? 1;
  await db.sql`
    insert into leasehold.patterns (id, tenant_id, current_version, deleted_at)
    values (${id}, ${tenantId}, ${versions}, ${opts.deleted ? new Date() : null})`;
  for (let v = 1; v <= versions; v++) {
    await db.sql`
      insert into leasehold.pattern_versions (pattern_id, version, tenant_id, name, instructions, json_schema, format, is_active)
      values (${id}, ${v}, ${tenantId}, 'Receipt', 'Read it.', '{"type":"object"}', 'json', ${v < versions || opts.active !== false})`;
  }
  return id;
}

// A real 1×1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

/** An uploaded PNG under the tenant's prefix, written straight to the app's store; returns its key. */
async function stored(tenantId: string, name = 'receipt.png'): Promise<string> {
  const key = newUploadKey(tenantId, 'image/png', name);
  await api.storage.put(key, PNG, 'image/png');
  return key;
}

async function ingest(body: unknown, key = a.key, id = pattern, target = api) {
  const res = await target.request(key, 'POST', `/v1/patterns/${id}/ingest`, body);
  return { status: res.status, body: (await res.json()) as Json };
}
const jobsOf = (tenantId: string) =>
  db.sql<Json[]>`select id, kind, queue, priority, payload, pattern_id, pattern_version from leasehold.jobs where tenant_id = ${tenantId} order by id`;

describe('POST /v1/patterns/{id}/ingest', () => {
  test('one image_url → 202 {job_id, status}; the job records the current pattern version and the options', async () => {
    const r = await ingest({ image_url: IMG, webhook_url: 'https://hooks.example.com/done', metadata: { order: 42 }, priority: 5 });
    expect(r).toEqual({ status: 202, body: { job_id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: 'queued' } });
    const [job] = await db.sql<Json[]>`select * from leasehold.jobs where id = ${r.body.job_id}`;
    expect(job).toMatchObject({
      tenant_id: a.tenantId,
      kind: 'manifest.extract',
      queue: 'ai',
      status: 'queued',
      priority: 5,
      pattern_id: pattern,
      pattern_version: 3,
      payload: { pattern_id: pattern, pattern_version: 3, image: { url: IMG }, webhook_url: 'https://hooks.example.com/done', metadata: { order: 42 } },
    });
  });

  test("a storage_key under the caller's own uploads/<tenant>/ is accepted; another tenant's is a 422", async () => {
    const own = await ingest({ storage_key: await stored(a.tenantId) });
    expect(own.status).toBe(202);
    const theirs = await ingest({ storage_key: `uploads/${b.tenantId}/receipt.png` });
    expect(theirs.status).toBe(422);
    expect(theirs.body.errors).toEqual([{ path: 'body.storage_key', message: expect.stringContaining(a.tenantId) }]);
    for (const key of [`uploads/${a.tenantId}/../${b.tenantId}/x.png`, `uploads/${a.tenantId}/`, 'receipt.png', `uploads/${a.tenantId}/${'x'.repeat(500)}`]) {
      expect((await ingest({ storage_key: key })).status, key).toBe(422);
    }
  });

  test('a batch → 202 {job_ids} in input order, enqueued together', async () => {
    const t = await api.tenant('ingest-batch');
    const p = await insertPattern(t.tenantId);
    const key = await stored(t.tenantId, '2.png');
    const images = [{ image_url: `${IMG}?1` }, { storage_key: key }, { image_url: `${IMG}?3` }];
    const r = await ingest({ images }, t.key, p);
    expect(r.status).toBe(202);
    expect(r.body).toEqual({ job_ids: expect.any(Array), status: 'queued' });
    const jobs = await jobsOf(t.tenantId);
    expect(jobs.map((j) => j.id)).toEqual(r.body.job_ids);
    expect(jobs.map((j) => j.payload.image)).toEqual([{ url: `${IMG}?1` }, { storage_key: key }, { url: `${IMG}?3` }]);
  });

  test('a batch of 100 is accepted, 101 is a 422, and one bad item anywhere enqueues nothing at all', async () => {
    const t = await api.tenant('ingest-all-or-nothing');
    const p = await insertPattern(t.tenantId);
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ image_url: `${IMG}?i=${i}` }));
    const tooMany = await ingest({ images: many(101) }, t.key, p);
    expect(tooMany.status).toBe(422);
    expect(tooMany.body.errors[0].path).toBe('body.images');

    const refused = many(50);
    refused[37] = { image_url: 'http://169.254.169.254/latest/meta-data/' };
    const r1 = await ingest({ images: refused }, t.key, p);
    expect(r1.status).toBe(422);
    expect(r1.body.errors).toEqual([{ path: 'body.images[37].image_url', message: expect.stringContaining('169.254.169.254') }]);

    const malformed: Json[] = many(50);
    malformed[12] = { image_url: 'not a url' };
    malformed[40] = { storage_key: `uploads/${b.tenantId}/x.png` };
    const r2 = await ingest({ images: malformed }, t.key, p);
    expect(r2.status).toBe(422);
    expect(r2.body.errors.map((e: Json) => e.path)).toEqual(['body.images[12].image_url']);
    expect(await jobsOf(t.tenantId)).toEqual([]);

    const ok = await ingest({ images: many(100) }, t.key, p);
    expect(ok.status).toBe(202);
    expect(ok.body.job_ids).toHaveLength(100);
    expect(await jobsOf(t.tenantId)).toHaveLength(100);
  });

  test('refusals come one per image in input order, store checks among edge checks, then the webhook URL', async () => {
    const t = await api.tenant('ingest-order');
    const p = await insertPattern(t.tenantId);
    const text = newUploadKey(t.tenantId, 'image/png', 'notes.png');
    await api.storage.put(text, Buffer.from('not an image'), 'text/plain');
    const images = [
      { storage_key: newUploadKey(t.tenantId, 'image/png', 'never-sent.png') }, // the store: no object
      { image_url: 'http://127.0.0.1/x.png' }, // the edge: loopback
      { storage_key: await stored(t.tenantId) },
      { storage_key: `uploads/${b.tenantId}/x.png` }, // the edge: another tenant's
      { image_url: IMG },
      { storage_key: text }, // the store: not an image type
    ];
    const r = await ingest({ images, webhook_url: 'http://10.0.0.1/hook' }, t.key, p);
    expect(r.status).toBe(422);
    expect(r.body.errors.map((e: Json) => e.path)).toEqual([
      'body.images[0].storage_key',
      'body.images[1].image_url',
      'body.images[3].storage_key',
      'body.images[5].storage_key',
      'body.webhook_url',
    ]);
    const one = await ingest({ storage_key: images[0]!.storage_key, webhook_url: 'http://10.0.0.1/hook' }, t.key, p);
    expect(one.body.errors.map((e: Json) => e.path)).toEqual(['body.storage_key', 'body.webhook_url']);
    expect(await jobsOf(t.tenantId)).toEqual([]);
  });

  test('URL-only requests never ask the store: they are queued while it is down; an upload is then a 503', async () => {
    const down = Object.create(api.storage, { head: { value: () => Promise.reject(new Error('connect ECONNREFUSED')) } });
    const broken = createTestApi(db.sql, NO_LIMITS, { storage: down });
    expect((await ingest({ images: [{ image_url: `${IMG}?a` }, { image_url: `${IMG}?b` }] }, a.key, pattern, broken)).status).toBe(202);
    expect((await ingest({ image_url: `${IMG}?c` }, a.key, pattern, broken)).status).toBe(202);
    const upload = await ingest({ storage_key: await stored(a.tenantId) }, a.key, pattern, broken);
    expect(upload).toMatchObject({ status: 503, body: { code: 'unavailable' } });
  });

  test('exactly one of image_url, storage_key or images; unknown fields are refused', async () => {
    for (const body of [{}, { image_url: IMG, storage_key: `uploads/${a.tenantId}/x.png` }, { image_url: IMG, images: [{ image_url: IMG }] }, { images: [] }, { image_url: IMG, colour: 'red' }]) {
      const r = await ingest(body);
      expect(r.status, JSON.stringify(body)).toBe(422);
      expect(r.body.code).toBe('validation_failed');
    }
  });

  test('URLs: http(s) only, ≤ 2048 characters, no credentials; localhost and literal private addresses refused at the edge', async () => {
    const refused = [
      'ftp://images.example.com/a.png', 'file:///etc/passwd', 'https://user:secret@images.example.com/a.png',
      `https://images.example.com/${'a'.repeat(2040)}`, 'http://localhost/a.png', 'http://LOCALHOST./a.png', 'http://api.localhost/a.png',
      'http://127.0.0.1/a.png', 'http://2130706433/a.png', 'http://0x7f.1/a.png', 'http://0.0.0.0/a.png', 'http://10.1.2.3/a.png',
      'http://172.16.0.1/a.png', 'http://192.168.1.1/a.png', 'http://100.64.0.1/a.png', 'http://169.254.169.254/latest/meta-data/',
      'http://metadata.google.internal/computeMetadata/v1/', 'http://[::1]/a.png', 'http://[::]/a.png', 'http://[fe80::1]/a.png',
      'http://[fd00:ec2::254]/latest/', 'http://[::ffff:127.0.0.1]/a.png', 'http://[::ffff:a9fe:a9fe]/a.png',
      'https://images.example.com/a\u0000.png', 'https://images.example.com/a\u007f.png', 'https://images.example.com/a\udc00.png',
    ];
    for (const url of refused) {
      const r = await ingest({ image_url: url });
      expect(r.status, url).toBe(422);
      expect(r.body.errors[0].path, url).toBe('body.image_url');
    }
    for (const url of ['http://images.example.com/a.png', 'https://8.8.8.8/a.png', 'https://[2606:4700::1111]/a.png', 'http://172.32.0.1/a.png']) {
      expect((await ingest({ image_url: url })).status, url).toBe(202);
    }
    const hook = await ingest({ image_url: IMG, webhook_url: 'http://127.0.0.1:9/hook' });
    expect(hook.body.errors).toEqual([{ path: 'body.webhook_url', message: expect.any(String) }]);
  });

  test('FETCH_ALLOW_PRIVATE lets private addresses through (development and tests)', async () => {
    const dev = createTestApi(db.sql, { ...NO_LIMITS, FETCH_ALLOW_PRIVATE: 'true' });
    expect((await ingest({ image_url: 'http://127.0.0.1:8080/a.png' }, a.key, pattern, dev)).status).toBe(202);
  });

  test('metadata: an object of at most 16 KB and 32 levels as JSON, with nothing jsonb refuses (NUL, lone surrogates)', async () => {
    expect((await ingest({ image_url: IMG, metadata: { note: 'x'.repeat(17_000) } })).body.errors[0].path).toBe('body.metadata');
    expect((await ingest({ image_url: IMG, metadata: [1, 2] })).status).toBe(422);
    // Refused at the edge with every other body (refuseUnstorableText), at the string's own path.
    for (const note of ['a\u0000b', 'a\ud800b']) expect((await ingest({ image_url: IMG, metadata: { note } })).body.errors[0].path).toBe('body.metadata.note');
    const deep = JSON.parse('{"a":'.repeat(40) + '1' + '}'.repeat(40));
    expect((await ingest({ image_url: IMG, metadata: deep })).body.errors[0].path).toBe('body.metadata');
    const tooDeepToStringify = `{"image_url":"${IMG}","metadata":{"a":${'['.repeat(8000)}${']'.repeat(8000)}}}`;
    expect((await ingest(tooDeepToStringify)).status).toBe(422);
  });

  test("the pattern: unknown, malformed, another tenant's or deleted → 404; inactive → 409 invalid_state", async () => {
    const deleted = await insertPattern(a.tenantId, { deleted: true });
    for (const id of [uuidv7(), 'nope', deleted]) {
      const r = await ingest({ image_url: IMG }, a.key, id);
      expect(r.status, id).toBe(404);
      expect(r.body.code).toBe('not_found');
    }
    expect((await ingest({ image_url: IMG }, b.key, pattern)).status).toBe(404);
    const inactive = await insertPattern(a.tenantId, { versions: 2, active: false });
    const r = await ingest({ image_url: IMG }, a.key, inactive);
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ code: 'invalid_state', detail: expect.stringContaining('inactive') });
  });

  test('scopes: a read-only key cannot ingest; no credentials is a 401', async () => {
    const reader = await api.tenant('ingest-a', ['jobs:read']);
    expect((await ingest({ image_url: IMG }, reader.key)).status).toBe(403);
    expect((await api.request(undefined, 'POST', `/v1/patterns/${pattern}/ingest`, { image_url: IMG })).status).toBe(401);
  });
});

test('through a real listening server', async () => {
  const server = serve({ fetch: api.app.fetch, port: 0, hostname: '127.0.0.1' });
  try {
    await new Promise<void>((resolve) => (server.listening ? resolve() : server.once('listening', () => resolve())));
    const { port } = server.address() as AddressInfo;
    const res = await fetch(`http://127.0.0.1:${port}/v1/patterns/${pattern}/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json', 'idempotency-key': 'over-the-wire' },
      body: JSON.stringify({ images: [{ image_url: `${IMG}?wire=1` }, { image_url: `${IMG}?wire=2` }] }),
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('x-request-id')).toBeTruthy();
    const body = (await res.json()) as Json;
    const rows = await db.sql`select id from leasehold.jobs where id = any(${body.job_ids}::uuid[]) and pattern_version = 3`;
    expect(rows).toHaveLength(2);
    const bad = await fetch(`http://127.0.0.1:${port}/v1/patterns/${pattern}/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json' },
      body: '{"image_url": ',
    });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toBe('application/problem+json');
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

