import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';

const IMG = 'https://images.example.com/receipt.jpg';

let db: TestDatabase;
let api: TestApi;
beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000', IDEMPOTENCY_TTL_HOURS: '2' });
});
afterAll(() => db.drop());

async function post(key: string, path: string, body: unknown, idempotencyKey?: string) {
  const res = await api.request(key, 'POST', path, body, idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey });
  return { status: res.status, text: await res.text(), replayed: res.headers.get('idempotent-replayed') };
}
const countJobs = async (tenantId: string) =>
  (await db.sql<{ n: number }[]>`select count(*)::int as n from leasehold.jobs where tenant_id = ${tenantId}`)[0]!.n;

async function insertPattern(tenantId: string, active = true): Promise<string> {
  const id = uuidv7();
  await db.sql`insert into leasehold.patterns (id, tenant_id) values (${id}, ${tenantId})`;
  await db.sql`
    insert into leasehold.pattern_versions (pattern_id, version, tenant_id, name, instructions, json_schema, format, is_active)
    values (${id}, 1, ${tenantId}, 'Receipt', 'Read it.', '{"type":"object"}', 'json', ${active})`;
  return id;
}

describe('Idempotency-Key', () => {
  test('20 concurrent identical POST /v1/jobs with one key: exactly one job, 20 identical bodies, 19 replays', async () => {
    const t = await api.tenant('idem-concurrent');
    const body = { kind: 'system.sleep', payload: { ms: 1 }, priority: 7 };
    const results = await Promise.all(Array.from({ length: 20 }, () => post(t.key, '/v1/jobs', body, 'concurrent-1')));
    expect(await countJobs(t.tenantId)).toBe(1);
    expect(results.map((r) => r.status)).toEqual(new Array(20).fill(202));
    expect(new Set(results.map((r) => r.text)).size).toBe(1);
    expect(results.filter((r) => r.replayed === 'true')).toHaveLength(19);
    expect(results.filter((r) => r.replayed === null)).toHaveLength(1);
    const [row] = await db.sql`select id from leasehold.jobs where tenant_id = ${t.tenantId}`;
    expect(JSON.parse(results[0]!.text).id).toBe(row!.id);
  });

  test('20 concurrent identical batch ingests with one key: exactly one batch of jobs', async () => {
    const t = await api.tenant('idem-batch');
    const pattern = await insertPattern(t.tenantId);
    const body = { images: Array.from({ length: 5 }, (_, i) => ({ image_url: `${IMG}?${i}` })) };
    const results = await Promise.all(Array.from({ length: 20 }, () => post(t.key, `/v1/patterns/${pattern}/ingest`, body, 'batch-1')));
    expect(await countJobs(t.tenantId)).toBe(5);
    expect(new Set(results.map((r) => r.text)).size).toBe(1);
    expect(results.filter((r) => r.replayed === 'true')).toHaveLength(19);
  });

  test('a later repeat replays the stored status and body; key order in the body does not matter', async () => {
    const t = await api.tenant('idem-repeat');
    const first = await post(t.key, '/v1/jobs', { kind: 'system.sleep', payload: { ms: 3 }, priority: 1 }, 'repeat-1');
    const again = await post(t.key, '/v1/jobs', { priority: 1, payload: { ms: 3 }, kind: 'system.sleep' }, 'repeat-1');
    expect(first.replayed).toBeNull();
    expect(again).toEqual({ status: 202, text: first.text, replayed: 'true' });
    expect(await countJobs(t.tenantId)).toBe(1);
  });

  test('the same key with a different body or path is a 422 idempotency_key_reused', async () => {
    const t = await api.tenant('idem-reuse');
    const pattern = await insertPattern(t.tenantId);
    expect((await post(t.key, '/v1/jobs', { kind: 'system.noop' }, 'reuse-1')).status).toBe(202);
    for (const [path, body] of [['/v1/jobs', { kind: 'system.noop', priority: 2 }], [`/v1/patterns/${pattern}/ingest`, { image_url: IMG }]] as const) {
      const r = await post(t.key, path, body, 'reuse-1');
      expect(r.status).toBe(422);
      expect(JSON.parse(r.text)).toMatchObject({ code: 'idempotency_key_reused' });
    }
    expect(await countJobs(t.tenantId)).toBe(1);
  });

  test('keys are per tenant: another tenant with the same key gets its own job', async () => {
    const t1 = await api.tenant('idem-tenant-1');
    const t2 = await api.tenant('idem-tenant-2');
    const r1 = await post(t1.key, '/v1/jobs', { kind: 'system.noop' }, 'shared-key');
    const r2 = await post(t2.key, '/v1/jobs', { kind: 'system.noop' }, 'shared-key');
    expect([r1.replayed, r2.replayed]).toEqual([null, null]);
    expect(JSON.parse(r1.text).id).not.toBe(JSON.parse(r2.text).id);
  });

  test('keys expire after IDEMPOTENCY_TTL_HOURS; an expired key is treated as new and its row replaced', async () => {
    const t = await api.tenant('idem-expiry');
    const first = await post(t.key, '/v1/jobs', { kind: 'system.noop' }, 'expiring');
    const [row] = await db.sql<{ hours: number }[]>`
      select extract(epoch from expires_at - created_at) / 3600 as hours
      from leasehold.idempotency_keys where tenant_id = ${t.tenantId} and key = 'expiring'`;
    expect(Number(row!.hours)).toBeCloseTo(2, 5);
    await db.sql`update leasehold.idempotency_keys set expires_at = now() - interval '1 second' where tenant_id = ${t.tenantId}`;
    const fresh = await post(t.key, '/v1/jobs', { kind: 'system.noop', priority: 3 }, 'expiring');
    expect(fresh.status).toBe(202);
    expect(fresh.replayed).toBeNull();
    expect(JSON.parse(fresh.text).id).not.toBe(JSON.parse(first.text).id);
    expect(await countJobs(t.tenantId)).toBe(2);
    const replay = await post(t.key, '/v1/jobs', { kind: 'system.noop', priority: 3 }, 'expiring');
    expect(replay).toEqual({ status: 202, text: fresh.text, replayed: 'true' });
  });

  test('a failed request stores nothing: the same key works once the cause is fixed', async () => {
    const t = await api.tenant('idem-failure');
    const pattern = await insertPattern(t.tenantId, false);
    const refused = await post(t.key, `/v1/patterns/${pattern}/ingest`, { image_url: IMG }, 'after-fix');
    expect(refused.status).toBe(409);
    expect(await db.sql`select 1 from leasehold.idempotency_keys where tenant_id = ${t.tenantId}`).toHaveLength(0);
    await db.sql`update leasehold.pattern_versions set is_active = true where pattern_id = ${pattern}`;
    const ok = await post(t.key, `/v1/patterns/${pattern}/ingest`, { image_url: IMG }, 'after-fix');
    expect(ok).toMatchObject({ status: 202, replayed: null });
    expect(await countJobs(t.tenantId)).toBe(1);
  });

  test('malformed keys are a 400; the draft\'s quoted form names the same key as the bare one', async () => {
    const t = await api.tenant('idem-malformed');
    for (const key of ['', 'k'.repeat(256), 'clé', '"unterminated']) {
      const r = await post(t.key, '/v1/jobs', { kind: 'system.noop' }, key);
      expect(r.status, key).toBe(400);
      expect(JSON.parse(r.text).code).toBe('bad_request');
    }
    expect(await countJobs(t.tenantId)).toBe(0);
    expect((await post(t.key, '/v1/jobs', { kind: 'system.noop' }, 'k'.repeat(255))).status).toBe(202);
    const bare = await post(t.key, '/v1/jobs', { kind: 'system.noop' }, 'quoted-or-not');
    const quoted = await post(t.key, '/v1/jobs', { kind: 'system.noop' }, '"quoted-or-not"');
    expect(quoted).toEqual({ status: 202, text: bare.text, replayed: 'true' });
  });

  test('a duplicate waits for the first transaction and takes over when it rolls back', async () => {
    const t = await api.tenant('idem-rollback');
    const holder = db.connect({ max: 1 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    // Stands in for a first request still in flight: its key row exists only in its open transaction.
    const first = holder
      .begin(async (tx) => {
        await tx`insert into leasehold.idempotency_keys (tenant_id, key, method, path, request_sha256, status, response, expires_at)
                 values (${t.tenantId}, 'in-flight', 'POST', '/v1/jobs', '\\x00', 0, 'null', now() + interval '1 hour')`;
        locked();
        await held;
        throw new Error('first request failed');
      })
      .catch(() => 'rolled back');
    await isLocked;
    const duplicate = post(t.key, '/v1/jobs', { kind: 'system.noop' }, 'in-flight');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await countJobs(t.tenantId)).toBe(0);
    release();
    expect(await first).toBe('rolled back');
    expect(await duplicate).toMatchObject({ status: 202, replayed: null });
    expect(await countJobs(t.tenantId)).toBe(1);
  });

  test('a duplicate still blocked after 10 s is told 409 idempotency_in_progress', async () => {
    const t = await api.tenant('idem-in-progress');
    const holder = db.connect({ max: 1 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const first = holder.begin(async (tx) => {
      await tx`insert into leasehold.idempotency_keys (tenant_id, key, method, path, request_sha256, status, response, expires_at)
               values (${t.tenantId}, 'slow', 'POST', '/v1/jobs', '\\x00', 0, 'null', now() + interval '1 hour')`;
      locked();
      await held;
    });
    await isLocked;
    const started = Date.now();
    const r = await post(t.key, '/v1/jobs', { kind: 'system.noop' }, 'slow');
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_000);
    expect(r.status).toBe(409);
    expect(JSON.parse(r.text).code).toBe('idempotency_in_progress');
    release();
    await first;
    expect(await countJobs(t.tenantId)).toBe(0);
  }, 180_000);

  test('without a key every request creates a job', async () => {
    const t = await api.tenant('idem-none');
    await Promise.all([1, 2, 3].map(() => post(t.key, '/v1/jobs', { kind: 'system.noop' })));
    expect(await countJobs(t.tenantId)).toBe(3);
  });
});
