import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createPattern } from '#shared/patterns/patterns.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { serveTestApi, type ServedApi } from '../test/helpers/served-api.js';
import { WorkerPool } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';

type Json = Record<string, any>;
// A real 1×1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const SCHEMA = { type: 'object', properties: { merchant: { type: 'string' } }, required: ['merchant'], additionalProperties: false };

let db: TestDatabase;
let api: TestApi;
let served: ServedApi;
let base: string;
let a: { tenantId: string; key: string };
let b: { tenantId: string; key: string };
let pattern: string;
const workers = new WorkerPool();

beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' });
  served = await serveTestApi(api);
  base = served.base;
  a = await api.tenant('uploads-a');
  b = await api.tenant('uploads-b');
  const content = { name: 'Receipt', instructions: 'Read it.', json_schema: SCHEMA, format: 'json', model: null, is_active: true } as const;
  pattern = (await createPattern(db.sql, a.tenantId, content)).id;
});
afterAll(async () => {
  await workers.stopAll();
  await served.close();
  await db.drop();
});

/** POST /v1/uploads over the real server. */
const presign = (body: Json, key = a.key) => served.call('POST', '/v1/uploads', key, body);

/** Sends bytes to a presigned upload, with its headers unless others are given. */
const upload = (p: Json, bytes: Uint8Array, headers: Record<string, string> = p.headers) =>
  fetch(p.url, { method: p.method, headers, body: bytes });

const ingest = (body: Json, key = a.key) => served.call('POST', `/v1/patterns/${pattern}/ingest`, key, body);

describe('POST /v1/uploads and the local store', () => {
  test('presign → PUT the bytes → ingest by storage_key → 202; the signed download returns the bytes', async () => {
    const p = await presign({ content_type: 'image/png', size: PNG.byteLength, filename: '../../etc/Receipt 1.png' });
    expect(p.status).toBe(201);
    expect(p.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
      url: expect.stringMatching(new RegExp(`^${base}/storage/upload\\?`)),
      method: 'PUT',
      headers: { 'content-type': 'image/png' },
      storage_key: expect.stringMatching(new RegExp(`^uploads/${a.tenantId}/[0-9a-f-]{36}/Receipt_1\\.png$`)),
      expires_at: expect.any(String),
    });
    expect((await upload(p.body, PNG)).status).toBe(200);
    expect(await api.storage.head(p.body.storage_key)).toEqual({ size: PNG.byteLength, contentType: 'image/png' });
    const r = await ingest({ storage_key: p.body.storage_key });
    expect(r).toEqual({ status: 202, body: { job_id: expect.any(String), status: 'queued' } });

    const download = await fetch(new URL(await api.storage.signedDownloadUrl(p.body.storage_key, 60), base));
    expect(download.headers.get('content-type')).toBe('image/png');
    expect(download.headers.get('x-content-type-options')).toBe('nosniff');
    expect(Buffer.from(await download.arrayBuffer())).toEqual(PNG);
  });

  test('a tampered signature, a changed parameter and an expired URL are 403; wrong type 422; oversize 413', async () => {
    const p = (await presign({ content_type: 'image/png', size: PNG.byteLength })).body;
    const url = new URL(p.url);
    const tampered = new URL(url);
    tampered.searchParams.set('sig', url.searchParams.get('sig')!.replace(/^./, (ch) => (ch === '0' ? '1' : '0')));
    const bigger = new URL(url);
    bigger.searchParams.set('size', String(PNG.byteLength * 2));
    const expired = new URL(url);
    expired.searchParams.set('exp', String(Math.floor(Date.now() / 1000) - 10));
    for (const u of [tampered, bigger, expired]) {
      const res = await upload({ ...p, url: u.toString() }, PNG);
      expect(res.status, u.toString()).toBe(403);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
    }
    const expiredSigned = await api.storage.presignUpload({ key: p.storage_key, contentType: 'image/png', size: PNG.byteLength, expiresInS: -1 });
    expect((await upload({ ...expiredSigned, url: new URL(expiredSigned.url, base).toString() }, PNG)).status).toBe(403);

    expect((await upload(p, PNG, { 'content-type': 'image/jpeg' })).status).toBe(422);
    expect((await upload(p, Buffer.concat([PNG, PNG]))).status).toBe(413);
    expect((await upload(p, PNG.subarray(0, 10))).status).toBe(422);
    expect(await api.storage.head(p.storage_key)).toBeUndefined();
  });

  test('the declared type and size are validated; jobs:write is required', async () => {
    for (const body of [{ content_type: 'text/html', size: 10 }, { content_type: 'image/png', size: 0 }, { content_type: 'image/png', size: 20 * 1024 * 1024 + 1 }, { content_type: 'image/png' }]) {
      expect((await presign(body)).status, JSON.stringify(body)).toBe(422);
    }
    const reader = await api.tenant('uploads-a', ['jobs:read']);
    expect((await presign({ content_type: 'image/png', size: 10 }, reader.key)).status).toBe(403);
  });

  test("another tenant's key, a missing object and a non-image object are 422 at ingest, with the path", async () => {
    const theirs = (await presign({ content_type: 'image/png', size: PNG.byteLength }, b.key)).body;
    expect((await upload(theirs, PNG)).status).toBe(200);
    const r1 = await ingest({ storage_key: theirs.storage_key });
    expect(r1.status).toBe(422);
    expect(r1.body.errors).toEqual([{ path: 'body.storage_key', message: expect.stringContaining(a.tenantId) }]);

    const missing = (await presign({ content_type: 'image/png', size: PNG.byteLength })).body;
    const r2 = await ingest({ images: [{ storage_key: missing.storage_key }] });
    expect(r2.status).toBe(422);
    // Its uploads row says the URL is still waiting for the bytes, and until when.
    expect(r2.body.errors).toEqual([{ path: 'body.images[0].storage_key', message: expect.stringContaining('no object at this key yet') }]);
    expect(r2.body.errors[0].message).toContain(missing.expires_at);

    const text = missing.storage_key.replace(/[^/]+$/, 'notes.txt');
    await api.storage.put(text, Buffer.from('hello'), 'text/plain');
    const r3 = await ingest({ storage_key: text });
    expect(r3.status).toBe(422);
    expect(r3.body.errors[0].message).toContain('text/plain');
  });

  test('end to end: upload a PNG, ingest by storage_key, a real worker produces the manifest', async () => {
    const p = (await presign({ content_type: 'image/png', size: PNG.byteLength, filename: 'receipt.png' })).body;
    expect((await upload(p, PNG)).status).toBe(200);
    const r = await ingest({ storage_key: p.storage_key });
    expect(r.status).toBe(202);
    await workers.start({ sql: db.sql, config: api.config, storage: api.storage, settings: { pollMs: 50 } });
    const job = await waitFor(async () => {
      const [row] = await db.sql<Json[]>`select status, result, last_error from leasehold.jobs where id = ${r.body.job_id}`;
      return row!.status === 'succeeded' || row!.status === 'failed' ? row : undefined;
    }, 'the job to finish');
    expect(job.last_error).toBeNull();
    expect(job.status).toBe('succeeded');
    expect(job.result).toMatchObject({ provider: 'fake', manifest: { merchant: expect.any(String) }, pattern_id: pattern });
  });
});

describe('the uploads table', () => {
  const rowsOf = (tenantId: string) => db.sql<Json[]>`
    select id, tenant_id, storage_key, content_type, size_bytes, created_by, created_at, expires_at
    from leasehold.uploads where tenant_id = ${tenantId} order by id`;

  test("every presign is recorded, before the answer, for the caller's tenant only", async () => {
    const t = await api.tenant('uploads-rows');
    const keyId = (await db.sql<{ id: string }[]>`select id from leasehold.api_keys where tenant_id = ${t.tenantId}`)[0]!.id;
    const before = Date.now();
    const one = (await presign({ content_type: 'image/png', size: PNG.byteLength, filename: 'r.png' }, t.key)).body;
    const two = (await presign({ content_type: 'image/webp', size: 5_000 }, t.key)).body;
    const rows = await rowsOf(t.tenantId);
    expect(rows).toEqual([
      { id: one.id, tenant_id: t.tenantId, storage_key: one.storage_key, content_type: 'image/png', size_bytes: String(PNG.byteLength),
        created_by: `key:${keyId}`, created_at: expect.any(Date), expires_at: new Date(one.expires_at) },
      { id: two.id, tenant_id: t.tenantId, storage_key: two.storage_key, content_type: 'image/webp', size_bytes: '5000',
        created_by: `key:${keyId}`, created_at: expect.any(Date), expires_at: new Date(two.expires_at) },
    ]);
    // The URL works for 15 minutes from the presign.
    expect(rows[0]!.expires_at.getTime() - before).toBeGreaterThanOrEqual(15 * 60_000 - 1_000);
    expect(rows[0]!.expires_at.getTime() - before).toBeLessThan(15 * 60_000 + 60_000);
    // A refused request leaves no row; no other tenant's row names the key.
    expect((await presign({ content_type: 'text/html', size: 10 }, t.key)).status).toBe(422);
    expect(await rowsOf(t.tenantId)).toHaveLength(2);
    expect(await db.sql`select 1 from leasehold.uploads where storage_key = ${one.storage_key} and tenant_id <> ${t.tenantId}`).toEqual([]);
  });

  test('a key outside its tenant\'s prefix, or a second row for one key, is refused by the table', async () => {
    const p = (await presign({ content_type: 'image/png', size: PNG.byteLength })).body;
    const insert = (tenant: string, key: string) => db.sql`
      insert into leasehold.uploads (tenant_id, storage_key, content_type, size_bytes, created_by, expires_at)
      values (${tenant}, ${key}, 'image/png', 1, 'test', now())`;
    await expect(insert(a.tenantId, p.storage_key)).rejects.toMatchObject({ code: '23505' });
    await expect(insert(b.tenantId, p.storage_key.replace('.png', '-2.png'))).rejects.toMatchObject({ code: '23514' });
  });

  test('a failed insert is a problem response with no URL in it', async () => {
    await db.sql.unsafe(`
      create function leasehold.test_refuse_upload() returns trigger language plpgsql as $$
      begin raise exception 'uploads refused for the test'; end $$;
      create trigger test_refuse_upload before insert on leasehold.uploads for each row execute function leasehold.test_refuse_upload();`);
    try {
      const res = await fetch(`${base}/v1/uploads`, {
        method: 'POST',
        headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ content_type: 'image/png', size: PNG.byteLength }),
      });
      expect(res.status).toBe(500);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      const body = (await res.json()) as Json;
      expect(body).toMatchObject({ code: 'internal', status: 500 });
      expect(body).not.toHaveProperty('url');
      expect(body).not.toHaveProperty('storage_key');
    } finally {
      await db.sql.unsafe('drop trigger test_refuse_upload on leasehold.uploads; drop function leasehold.test_refuse_upload();');
    }
  });

  test('a job naming an upload marks it used (retention keeps it a window from then), at most once an hour', async () => {
    const p = (await presign({ content_type: 'image/png', size: PNG.byteLength })).body;
    expect((await upload(p, PNG)).status).toBe(200);
    const usedAt = async () => (await db.sql<{ used_at: Date | null }[]>`select used_at from leasehold.uploads where id = ${p.id}`)[0]!.used_at;
    expect(await usedAt()).toBeNull();
    expect((await ingest({ storage_key: p.storage_key })).status).toBe(202);
    const first = await usedAt();
    expect(first).toBeInstanceOf(Date);
    // POST /v1/jobs checks uploads as /v1/galleries and /v1/edits do; within the hour the mark stays as it was.
    const job = await served.call('POST', '/v1/jobs', a.key, { kind: 'image.edit', payload: { image: p.storage_key, prompt: 'brighter' } });
    expect(job.status).toBe(202);
    expect(await usedAt()).toEqual(first);
    await db.sql`update leasehold.uploads set used_at = now() - interval '2 hours' where id = ${p.id}`;
    expect((await served.call('POST', '/v1/jobs', a.key, { kind: 'image.edit', payload: { image: p.storage_key, prompt: 'darker' } })).status).toBe(202);
    expect((await usedAt())!.getTime()).toBeGreaterThan(Date.now() - 60_000);
  });

  test('ingest of a key whose URL expired unused says so; a key never presigned says to upload first', async () => {
    const p = (await presign({ content_type: 'image/png', size: PNG.byteLength })).body;
    await db.sql`update leasehold.uploads set expires_at = now() - interval '1 minute' where id = ${p.id}`;
    const expired = await ingest({ storage_key: p.storage_key });
    expect(expired.status).toBe(422);
    expect(expired.body.errors).toEqual([{ path: 'body.storage_key', message: expect.stringMatching(/^no object at this key: its upload URL expired at .* presign a new upload/) }]);

    const never = p.storage_key.replace(/[0-9a-f-]{36}(?=\/[^/]+$)/, '0190b000-0000-7000-8000-000000000000');
    const unknown = await ingest({ storage_key: never });
    expect(unknown.body.errors).toEqual([{ path: 'body.storage_key', message: expect.stringContaining('upload it first') }]);
  });
});
