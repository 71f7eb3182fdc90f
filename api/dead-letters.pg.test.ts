import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';

type Json = Record<string, any>;
// Dead letters get SQL-made UUIDv7 ids: time-ordered, but random within one millisecond.
const newestFirst = (ids: string[]) => [...ids].sort().reverse();

let db: TestDatabase;
let api: TestApi;
let admin: { tenantId: string; key: string }; // tenant A, admin scope
let writer: string; // tenant A, jobs:read + jobs:write
let reader: string; // tenant A, jobs:read
let other: { tenantId: string; key: string }; // tenant B, admin scope
let otherWriter: string; // tenant B, jobs:read + jobs:write
beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' });
  admin = await api.tenant('dlq-a', ['admin']);
  writer = (await api.tenant('dlq-a')).key;
  reader = (await api.tenant('dlq-a', ['jobs:read'])).key;
  other = await api.tenant('dlq-b', ['admin']);
  otherWriter = (await api.tenant('dlq-b')).key;
});
afterAll(() => db.drop());

async function call(key: string, method: string, path: string) {
  const res = await api.request(key, method, path);
  return { status: res.status, body: (await res.json()) as Json };
}

/** A job of the tenant that failed for good, dead-lettered the way the worker's completion does it. */
async function deadLetter(key: string): Promise<{ jobId: string; id: string }> {
  const res = await api.request(key, 'POST', '/v1/jobs', { kind: 'system.noop' });
  const jobId = ((await res.json()) as Json).id as string;
  const [dl] = await db.sql<{ id: string }[]>`
    with failed as (
      update leasehold.jobs set status = 'failed', attempts = 3, finished_at = now(), last_error = 'boom',
        errors = '[{"attempt":1,"message":"boom"},{"attempt":2,"message":"boom"},{"attempt":3,"message":"boom"}]'
      where id = ${jobId} returning *
    )
    insert into leasehold.dead_letters (job_id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, last_error, errors, job_created_at)
    select id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, last_error, errors, created_at from failed
    returning id`;
  return { jobId, id: dl!.id };
}

describe('GET /v1/dead-letters', () => {
  test("the caller's open dead letters, newest first, with their error history; ?all=true adds requeued ones", async () => {
    const t = await api.tenant('dlq-list', ['admin']);
    const [d1, d2, d3] = [await deadLetter(t.key), await deadLetter(t.key), await deadLetter(t.key)];
    const open = await call(t.key, 'GET', '/v1/dead-letters');
    expect(open.status).toBe(200);
    expect(open.body.data.map((d: Json) => d.id)).toEqual(newestFirst([d1!.id, d2!.id, d3!.id]));
    expect(open.body.next_cursor).toBeNull();
    expect(open.body.data.find((d: Json) => d.id === d3!.id)).toMatchObject({
      job_id: d3!.jobId,
      kind: 'system.noop',
      queue: 'default',
      payload: {},
      attempts: 3,
      max_attempts: 3,
      last_error: 'boom',
      errors: [{ attempt: 1, message: 'boom' }, { attempt: 2, message: 'boom' }, { attempt: 3, message: 'boom' }],
      requeued_at: null,
    });
    expect((await call(t.key, 'POST', `/v1/dead-letters/${d2!.id}/requeue`)).status).toBe(202);
    expect((await call(t.key, 'GET', '/v1/dead-letters')).body.data.map((d: Json) => d.id)).toEqual(newestFirst([d1!.id, d3!.id]));
    const all = await call(t.key, 'GET', '/v1/dead-letters?all=true');
    expect(all.body.data.map((d: Json) => d.id)).toEqual(newestFirst([d1!.id, d2!.id, d3!.id]));
    expect(all.body.data.find((d: Json) => d.id === d2!.id).requeued_at).toEqual(expect.any(String));
  });

  test('cursor pagination walks every dead letter once', async () => {
    const t = await api.tenant('dlq-pages', ['admin']);
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await deadLetter(t.key)).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r = await call(t.key, 'GET', `/v1/dead-letters?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...r.body.data.map((d: Json) => d.id));
      cursor = r.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(newestFirst(ids));
  });

  test("never shows another tenant's dead letters; bad parameters are a 422", async () => {
    const mine = await deadLetter(admin.key);
    expect((await call(other.key, 'GET', '/v1/dead-letters?all=true')).body.data.map((d: Json) => d.id)).not.toContain(mine.id);
    for (const q of ['?all=maybe', '?limit=0', '?cursor=x', '?status=open']) expect((await call(admin.key, 'GET', `/v1/dead-letters${q}`)).status, q).toBe(422);
  });
});

describe('POST /v1/dead-letters/{id}/requeue', () => {
  test('jobs:write, as for retrying a job: requeues it with a fresh attempt budget → 202 with the dead letter, now requeued; a second time → 409', async () => {
    const d = await deadLetter(writer);
    const refused = await call(reader, 'POST', `/v1/dead-letters/${d.id}/requeue`);
    expect(refused.status).toBe(403);
    expect(refused.body.detail).toContain('"jobs:write" scope');
    const r = await call(writer, 'POST', `/v1/dead-letters/${d.id}/requeue`);
    expect(r.status).toBe(202);
    const listed = (await call(reader, 'GET', '/v1/dead-letters?all=true')).body.data.find((x: Json) => x.id === d.id);
    expect(r.body).toEqual(listed);
    expect(r.body).toMatchObject({ id: d.id, job_id: d.jobId, requeued_at: expect.any(String) });
    const [job] = await db.sql`select status, attempts from leasehold.jobs where id = ${d.jobId}`;
    expect(job).toEqual({ status: 'queued', attempts: 0 });
    // An admin key of the tenant may too (admin holds every scope), still within its own tenant.
    const again = await call(admin.key, 'POST', `/v1/dead-letters/${d.id}/requeue`);
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'invalid_state', detail: expect.stringContaining('already requeued') });
  });

  test("another tenant's, an unknown or a malformed id → 404, and nothing changes", async () => {
    const d = await deadLetter(admin.key);
    for (const key of [otherWriter, other.key]) {
      for (const id of [d.id, uuidv7(), 'nope']) {
        const r = await call(key, 'POST', `/v1/dead-letters/${id}/requeue`);
        expect(r.status, id).toBe(404);
        expect(r.body.code).toBe('not_found');
      }
    }
    const [row] = await db.sql`select requeued_at from leasehold.dead_letters where id = ${d.id}`;
    expect(row!.requeued_at).toBeNull();
  });

  test('an open dead letter whose job is no longer failed → 409', async () => {
    const d = await deadLetter(admin.key);
    await db.sql`update leasehold.jobs set status = 'succeeded' where id = ${d.jobId}`;
    const r = await call(admin.key, 'POST', `/v1/dead-letters/${d.id}/requeue`);
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('invalid_state');
  });
});
