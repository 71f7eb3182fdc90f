import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { newUploadKey } from '#shared/storage/keys.js';
import { MAX_UPLOAD_BYTES } from '#shared/storage/object-store.js';
import { PNG } from '../test/helpers/governor.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
type Json = Record<string, any>;

let db: TestDatabase;
let api: TestApi;
let a: { tenantId: string; key: string };
let b: { tenantId: string; key: string };
let readOnly: string;
let writeOnly: string;
beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' });
  a = await api.tenant('jobs-a');
  b = await api.tenant('jobs-b');
  readOnly = (await api.tenant('jobs-a', ['jobs:read'])).key;
  writeOnly = (await api.tenant('jobs-a', ['jobs:write'])).key;
});
afterAll(() => db.drop());

async function call(key: string | undefined, method: string, path: string, body?: unknown) {
  const res = await api.request(key, method, path, body);
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Json, type: res.headers.get('content-type') };
}
const enqueue = async (body: Json = { kind: 'system.noop' }, key = a.key) => {
  const r = await call(key, 'POST', '/v1/jobs', body);
  expect(r.status).toBe(202);
  return r.body;
};
const countJobs = async (tenantId: string) =>
  (await db.sql<{ n: number }[]>`select count(*)::int as n from leasehold.jobs where tenant_id = ${tenantId}`)[0]!.n;

/** A pattern with `versions` versions straight in SQL (the patterns API is not under test here). */
async function insertPattern(tenantId: string, versions = 1): Promise<string> {
  const id = uuidv7();
  await db.sql`insert into leasehold.patterns (id, tenant_id, current_version) values (${id}, ${tenantId}, ${versions})`;
  for (let v = 1; v <= versions; v++) {
    await db.sql`
      insert into leasehold.pattern_versions (pattern_id, version, tenant_id, name, instructions, json_schema, format, is_active)
      values (${id}, ${v}, ${tenantId}, 'Invoice', 'Read it.', '{"type":"object"}', 'json', true)`;
  }
  return id;
}

describe('POST /v1/jobs', () => {
  test('enqueues a registered kind and answers 202 with the public view', async () => {
    const job = await enqueue({ kind: 'system.noop' });
    expect(job).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      kind: 'system.noop',
      queue: 'default',
      status: 'queued',
      priority: 100,
      attempts: 0,
      max_attempts: 3,
      run_at: expect.stringMatching(ISO),
      progress: null,
      progress_message: null,
      result: null,
      last_error: null,
      error_count: 0,
      pattern_id: null,
      pattern_version: null,
      created_at: expect.stringMatching(ISO),
      started_at: null,
      finished_at: null,
      cancel_requested_at: null,
      latency_ms: null,
      rescues: 0,
    });
    const [row] = await db.sql`select tenant_id, payload from leasehold.jobs where id = ${job.id}`;
    expect(row).toEqual({ tenant_id: a.tenantId, payload: {} });
  });

  test('queue, priority, run_at and max_attempts are applied', async () => {
    const runAt = new Date(Date.now() + 3_600_000).toISOString();
    const job = await enqueue({ kind: 'system.sleep', payload: { ms: 5 }, queue: 'slow', priority: -5, run_at: runAt, max_attempts: 7 });
    expect(job).toMatchObject({ kind: 'system.sleep', queue: 'slow', priority: -5, run_at: runAt, max_attempts: 7 });
  });

  test("a payload that fails the kind's schema is a 422 with paths under body.payload, and writes nothing", async () => {
    const before = await countJobs(a.tenantId);
    const r = await call(a.key, 'POST', '/v1/jobs', { kind: 'system.sleep', payload: { ms: 'soon', extra: 1 } });
    expect(r.status).toBe(422);
    expect(r.type).toBe('application/problem+json');
    expect(r.body.code).toBe('validation_failed');
    expect(r.body.errors.map((e: Json) => e.path).sort()).toEqual(['body.payload.extra', 'body.payload.ms']);
    expect(await countJobs(a.tenantId)).toBe(before);
  });

  test("one 422 lists every offending path: the payload's along with the body's other fields", async () => {
    const before = await countJobs(a.tenantId);
    const r = await call(a.key, 'POST', '/v1/jobs', { kind: 'system.sleep', payload: { ms: -1, extra: 1 }, priority: 'x', queue: 'bad queue!', colour: 'red' });
    expect(r.status).toBe(422);
    expect(r.body.code).toBe('validation_failed');
    expect(r.body.errors.map((e: Json) => e.path).sort()).toEqual(['body.colour', 'body.payload.extra', 'body.payload.ms', 'body.priority', 'body.queue']);
    // An unknown kind has no payload schema to check: its other fields are still listed.
    const unknownKind = await call(a.key, 'POST', '/v1/jobs', { kind: 'image.nope', payload: { ms: -1 }, priority: 'x' });
    expect(unknownKind.status).toBe(422);
    expect(unknownKind.body.errors.map((e: Json) => e.path)).toEqual(['body.priority']);
    expect(await countJobs(a.tenantId)).toBe(before);
  });

  test('an unknown kind is a 422 unknown_kind listing the known ones', async () => {
    const r = await call(a.key, 'POST', '/v1/jobs', { kind: 'image.nope' });
    expect(r.status).toBe(422);
    expect(r.body.code).toBe('unknown_kind');
    expect(r.body.known_kinds).toEqual(expect.arrayContaining(['system.noop', 'system.sleep', 'manifest.extract']));
    expect(r.body.detail).toContain('system.noop');
  });

  test('unknown fields, bad types, malformed JSON and a wrong content type are refused', async () => {
    const extra = await call(a.key, 'POST', '/v1/jobs', { kind: 'system.noop', colour: 'red', priority: 1.5 });
    expect(extra.status).toBe(422);
    expect(extra.body.errors.map((e: Json) => e.path).sort()).toEqual(['body.colour', 'body.priority']);
    expect((await call(a.key, 'POST', '/v1/jobs', '{"kind":')).status).toBe(400);
    const ancient = await call(a.key, 'POST', '/v1/jobs', { kind: 'system.noop', run_at: '0001-01-01T00:00:00Z' });
    expect(ancient.body.errors).toEqual([{ path: 'body.run_at', message: expect.any(String) }]);
    const text = await api.app.request('/v1/jobs', { method: 'POST', headers: { authorization: `Bearer ${a.key}`, 'content-type': 'text/plain' }, body: 'x' });
    expect(text.status).toBe(415);
  });

  test('manifest.extract through /v1/jobs gets the same edge checks as ingest', async () => {
    const pattern = await insertPattern(a.tenantId, 2);
    const payload = { pattern_id: pattern, pattern_version: 1, image: { url: 'https://images.example.com/a.png' } };
    const job = await enqueue({ kind: 'manifest.extract', payload });
    expect(job).toMatchObject({ kind: 'manifest.extract', queue: 'ai', pattern_id: pattern, pattern_version: 1, max_attempts: 4 });

    const theirs = await call(b.key, 'POST', '/v1/jobs', { kind: 'manifest.extract', payload });
    expect(theirs.status).toBe(404);
    const local = await call(a.key, 'POST', '/v1/jobs', { kind: 'manifest.extract', payload: { ...payload, image: { url: 'http://127.0.0.1/x' } } });
    expect(local.status).toBe(422);
    expect(local.body.errors).toEqual([{ path: 'body.payload.image.url', message: expect.stringContaining('127.0.0.1') }]);
    const noVersion = await call(a.key, 'POST', '/v1/jobs', { kind: 'manifest.extract', payload: { ...payload, pattern_version: 9 } });
    expect(noVersion.status).toBe(422);
    expect(noVersion.body.errors[0].path).toBe('body.payload.pattern_version');
    const huge = await call(a.key, 'POST', '/v1/jobs', { kind: 'manifest.extract', payload: { ...payload, pattern_version: 2 ** 31 } });
    expect(huge.body.errors[0].path).toBe('body.payload.pattern_version');
  });

  test('uploads a gallery.group, image.edit or manifest.extract payload names are checked as /v1/galleries, /v1/edits and ingest check them', async () => {
    const t = await api.tenant('jobs-uploads');
    const pattern = await insertPattern(t.tenantId);
    const [ok, ok2, huge, text, missing] = ['ok', 'ok2', 'huge', 'text', 'missing'].map((n) => newUploadKey(t.tenantId, 'image/png', `${n}.png`));
    await api.storage.put(ok!, PNG, 'image/png');
    await api.storage.put(ok2!, PNG, 'image/png');
    // One byte more than POST /v1/uploads presigns.
    await api.storage.put(huge!, Buffer.concat([PNG, Buffer.alloc(MAX_UPLOAD_BYTES + 1 - PNG.byteLength)]), 'image/png');
    await api.storage.put(text!, Buffer.from('hello'), 'text/plain');
    const theirs = newUploadKey(b.tenantId, 'image/png', 'theirs.png');
    const tooBig = expect.stringContaining(`size ${MAX_UPLOAD_BYTES + 1} is outside 1..${MAX_UPLOAD_BYTES} bytes`);
    const refused: [Json, Json[]][] = [
      [{ kind: 'gallery.group', payload: { images: [ok, huge, missing, theirs] } }, [
        { path: 'body.payload.images[1]', message: tooBig },
        { path: 'body.payload.images[2]', message: expect.stringContaining('no object at this key') },
        { path: 'body.payload.images[3]', message: expect.stringContaining(`must start with uploads/${t.tenantId}/`) },
      ]],
      [{ kind: 'image.edit', payload: { image: text, mask: huge, prompt: 'stage it' } }, [
        { path: 'body.payload.image', message: expect.stringContaining('content type text/plain is not an accepted image type') },
        { path: 'body.payload.mask', message: tooBig },
      ]],
      [{ kind: 'manifest.extract', payload: { pattern_id: pattern, pattern_version: 1, image: { storage_key: huge } } }, [
        { path: 'body.payload.image.storage_key', message: tooBig },
      ]],
    ];
    for (const [body, errors] of refused) {
      const r = await call(t.key, 'POST', '/v1/jobs', body);
      expect(r.status, body.kind).toBe(422);
      expect(r.body.errors, body.kind).toEqual(errors);
    }
    expect(await countJobs(t.tenantId)).toBe(0);
    await enqueue({ kind: 'gallery.group', payload: { images: [ok, ok2] } }, t.key);
    await enqueue({ kind: 'image.edit', payload: { image: ok, prompt: 'stage it' } }, t.key);
    await enqueue({ kind: 'manifest.extract', payload: { pattern_id: pattern, pattern_version: 1, image: { storage_key: ok } } }, t.key);
  });

  test('scopes: a read-only key cannot enqueue; no credentials is a 401', async () => {
    expect((await call(readOnly, 'POST', '/v1/jobs', { kind: 'system.noop' })).status).toBe(403);
    expect((await call(undefined, 'POST', '/v1/jobs', { kind: 'system.noop' })).status).toBe(401);
  });
});

describe('GET /v1/jobs/{id}', () => {
  test("the caller's job; another tenant's, an unknown or a malformed id is a 404", async () => {
    const job = await enqueue();
    expect((await call(a.key, 'GET', `/v1/jobs/${job.id}`)).body).toEqual(job);
    for (const [key, id] of [[b.key, job.id], [a.key, uuidv7()], [a.key, 'not-a-uuid'], [a.key, `${job.id}'--`]] as const) {
      const r = await call(key, 'GET', `/v1/jobs/${encodeURIComponent(id)}`);
      expect(r.status).toBe(404);
      expect(r.body.code).toBe('not_found');
    }
  });

  test('a finished job shows its result, timings and latency_ms', async () => {
    const job = await enqueue();
    await db.sql`
      update leasehold.jobs set status = 'succeeded', attempts = 1, result = '{"ok":true}', started_at = created_at,
        finished_at = created_at + interval '1.5 seconds', errors = '[{"attempt":1,"message":"x"}]', rescues = 1
      where id = ${job.id}`;
    const r = await call(a.key, 'GET', `/v1/jobs/${job.id}`);
    expect(r.body).toMatchObject({ status: 'succeeded', result: { ok: true }, latency_ms: 1500, error_count: 1, rescues: 1, finished_at: expect.stringMatching(ISO) });
  });

  test('a write-only key cannot read', async () => {
    const job = await enqueue();
    expect((await call(writeOnly, 'GET', `/v1/jobs/${job.id}`)).status).toBe(403);
  });
});

describe('GET /v1/jobs', () => {
  test('filters by status, kind, queue, pattern and creation time, and never shows another tenant', async () => {
    const t = await api.tenant('jobs-list');
    const pattern = await insertPattern(t.tenantId);
    const noop = await enqueue({ kind: 'system.noop', queue: 'list:side' }, t.key);
    const sleep = await enqueue({ kind: 'system.sleep', payload: { ms: 1 } }, t.key);
    const manifest = await enqueue({ kind: 'manifest.extract', payload: { pattern_id: pattern, pattern_version: 1, image: { url: 'https://x.example/a.png' } } }, t.key);
    await db.sql`update leasehold.jobs set status = 'cancelled', finished_at = now(), created_at = now() - interval '1 day' where id = ${noop.id}`;
    const ids = async (query: string) => (await call(t.key, 'GET', `/v1/jobs${query}`)).body.data.map((j: Json) => j.id);

    expect(await ids('')).toEqual([manifest.id, sleep.id, noop.id]);
    expect(await ids('?status=cancelled')).toEqual([noop.id]);
    expect(await ids('?kind=system.sleep')).toEqual([sleep.id]);
    expect(await ids('?queue=list:side')).toEqual([noop.id]);
    expect(await ids(`?pattern_id=${pattern}`)).toEqual([manifest.id]);
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    expect(await ids(`?created_after=${hourAgo}`)).toEqual([manifest.id, sleep.id]);
    expect(await ids(`?created_before=${hourAgo}`)).toEqual([noop.id]);
    expect((await call(b.key, 'GET', '/v1/jobs')).body.data.map((j: Json) => j.id)).not.toContain(noop.id);
  });

  test('bad filters are a 422 naming the query parameter', async () => {
    for (const [q, path] of [['?limit=101', 'query.limit'], ['?status=done', 'query.status'], ['?cursor=abc', 'query.cursor'], ['?created_after=yesterday', 'query.created_after'], ['?kind=%00', 'query.kind'], ['?queue=a%20b', 'query.queue'], ['?sort=id', 'query.sort']]) {
      const r = await call(a.key, 'GET', `/v1/jobs${q}`);
      expect(r.status, q).toBe(422);
      expect(r.body.errors.map((e: Json) => e.path), q).toContain(path);
    }
  });

  test('cursor pages are stable while jobs are inserted concurrently: no job repeated, none skipped', async () => {
    const t = await api.tenant('jobs-pages');
    const existing: string[] = [];
    for (let i = 0; i < 35; i++) existing.push((await enqueue({ kind: 'system.noop' }, t.key)).id);
    let inserting = true;
    const inserted: string[] = [];
    const writer = (async () => {
      while (inserting) inserted.push((await enqueue({ kind: 'system.noop' }, t.key)).id);
    })();
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await call(t.key, 'GET', `/v1/jobs?limit=4${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      seen.push(...r.body.data.map((j: Json) => j.id));
      cursor = r.body.next_cursor;
      pages++;
      await new Promise((resolve) => setTimeout(resolve, 5));
    } while (cursor);
    inserting = false;
    await writer;
    expect(inserted.length).toBeGreaterThan(0);
    const old = seen.filter((id) => existing.includes(id));
    expect(old).toEqual([...existing].reverse());
    expect(new Set(seen).size).toBe(seen.length);
    expect(pages).toBeGreaterThanOrEqual(9);
  });
});

describe('GET /v1/jobs/{id}/manifest', () => {
  test("a succeeded job's result in json (default), yaml, xml and text; csv needs a pattern; unknown formats are a 422", async () => {
    const job = await enqueue();
    await db.sql`update leasehold.jobs set status = 'succeeded', finished_at = now(), result = '{"vendor":"ACME","total":12.5}' where id = ${job.id}`;
    for (const q of ['', '?format=json']) {
      const r = await call(a.key, 'GET', `/v1/jobs/${job.id}/manifest${q}`);
      expect(r.status).toBe(200);
      expect(r.type).toMatch(/^application\/json/);
      expect(r.body).toEqual({ vendor: 'ACME', total: 12.5 });
    }
    const yaml = await api.request(a.key, 'GET', `/v1/jobs/${job.id}/manifest?format=yaml`);
    expect([yaml.status, yaml.headers.get('content-type')]).toEqual([200, 'application/yaml']);
    // No pattern, so no schema to order by: the stored (jsonb) order.
    expect(await yaml.text()).toBe('total: 12.5\nvendor: ACME\n');
    const csv = await call(a.key, 'GET', `/v1/jobs/${job.id}/manifest?format=csv`);
    expect(csv.status).toBe(422);
    expect(csv.body.errors).toEqual([{ path: 'query.format', message: expect.stringContaining('csv needs a manifest.extract job') }]);
    const pdf = await call(a.key, 'GET', `/v1/jobs/${job.id}/manifest?format=pdf`);
    expect(pdf.status).toBe(422);
    expect(pdf.body.errors).toEqual([{ path: 'query.format', message: expect.stringContaining('json, yaml, xml, csv, text') }]);
  });

  test('a job that has not succeeded is a 409; another tenant gets a 404', async () => {
    const job = await enqueue();
    const r = await call(a.key, 'GET', `/v1/jobs/${job.id}/manifest`);
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('invalid_state');
    expect((await call(b.key, 'GET', `/v1/jobs/${job.id}/manifest`)).status).toBe(404);
  });
});

describe('POST /v1/jobs/{id}/cancel and /retry', () => {
  test('cancel: queued → cancelled at once; running → asked to stop; finished → 409', async () => {
    const queued = await enqueue();
    const r = await call(a.key, 'POST', `/v1/jobs/${queued.id}/cancel`);
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ id: queued.id, status: 'cancelled', finished_at: expect.stringMatching(ISO) });
    // Recorded as done by the calling key: `key:<api_keys.id>`.
    const [who] = await db.sql`select a.actor = 'key:' || k.id as by_key from leasehold.admin_actions a, leasehold.api_keys k
                               where a.target = ${queued.id} and k.prefix = split_part(${a.key}, '_', 2)`;
    expect(who).toEqual({ by_key: true });
    const again = await call(a.key, 'POST', `/v1/jobs/${queued.id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('invalid_state');

    const running = await enqueue();
    await db.sql`
      update leasehold.jobs set status = 'running', attempts = 1, lease_owner = 'test', lease_token = gen_random_uuid(),
        lease_expires_at = now() + interval '1 minute', started_at = now()
      where id = ${running.id}`;
    const asked = await call(a.key, 'POST', `/v1/jobs/${running.id}/cancel`);
    expect(asked.status).toBe(202);
    expect(asked.body).toMatchObject({ status: 'running', cancel_requested_at: expect.stringMatching(ISO) });
  });

  test('retry: failed or cancelled → queued with a fresh budget; anything else → 409', async () => {
    const job = await enqueue();
    expect((await call(a.key, 'POST', `/v1/jobs/${job.id}/retry`)).status).toBe(409);
    await db.sql`update leasehold.jobs set status = 'failed', attempts = 3, finished_at = now(), last_error = 'boom' where id = ${job.id}`;
    const r = await call(a.key, 'POST', `/v1/jobs/${job.id}/retry`);
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ id: job.id, status: 'queued', attempts: 0, finished_at: null });
  });

  test("another tenant cannot cancel or retry a job (404), and the job is untouched", async () => {
    const job = await enqueue();
    await db.sql`update leasehold.jobs set status = 'failed', finished_at = now() where id = ${job.id}`;
    for (const action of ['cancel', 'retry']) {
      const r = await call(b.key, 'POST', `/v1/jobs/${job.id}/${action}`);
      expect(r.status).toBe(404);
      expect((await call(a.key, 'POST', `/v1/jobs/not-a-uuid/${action}`)).status).toBe(404);
      expect((await call(readOnly, 'POST', `/v1/jobs/${job.id}/${action}`)).status).toBe(403);
    }
    expect((await call(a.key, 'GET', `/v1/jobs/${job.id}`)).body.status).toBe('failed');
  });
});

test('/openapi.json documents these routes with their response schemas', async () => {
  const spec = (await call(undefined, 'GET', '/openapi.json')).body;
  expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/v1/jobs', '/v1/jobs/{id}', '/v1/jobs/{id}/manifest', '/v1/jobs/{id}/cancel', '/v1/jobs/{id}/retry']));
  expect(spec.paths['/v1/jobs'].post.responses['202'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Job' });
  expect(spec.paths['/v1/jobs'].post.responses['422'].content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/Problem' });
  expect(spec.paths['/v1/jobs'].post.parameters.map((p: Json) => p.name)).toContain('idempotency-key');
  expect(spec.components.schemas.Job.required).toEqual(expect.arrayContaining(['latency_ms', 'error_count', 'pattern_version']));
});
