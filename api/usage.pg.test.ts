import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Governor } from '#shared/governor/governor.js';
import { newUploadKey } from '#shared/storage/keys.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { PNG, balances, insertPattern, ledgerOf } from '../test/helpers/governor.js';

type Json = Record<string, any>;
const IMG = 'https://images.example.com/receipt.jpg';

let db: TestDatabase;
let api: TestApi;
let admin: { tenantId: string; key: string };
let governor: Governor;
beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' });
  admin = await api.tenant('ops', ['admin']);
  governor = new Governor(api.config);
});
afterAll(() => db.drop());

async function call(key: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await api.request(key, method, path, body);
  return { status: res.status, body: (await res.json()) as Json };
}

/** A tenant with a pattern, and the API's per-image estimate for that pattern. */
async function tenantWithPattern(slug: string) {
  const t = await api.tenant(slug);
  const pattern = await insertPattern(db.sql, t.tenantId);
  const estimate = governor.manifestEstimate(await governor.patternInputs(db.sql, t.tenantId, pattern)).micros;
  return { ...t, slug, pattern, estimate };
}
const jobCount = async (tenantId: string) => (await db.sql`select count(*)::int as n from leasehold.jobs where tenant_id = ${tenantId}`)[0]!.n as number;

describe('refusals are 402 problems that name the ceiling and the excess', () => {
  test('a batch the credit cannot cover whole is refused whole: no job, no ledger row', async () => {
    const t = await tenantWithPattern('batch-short');
    expect((await call(admin.key, 'POST', '/v1/admin/credits', { tenant: t.slug, usd: (2 * t.estimate) / 1e6 })).status).toBe(201);
    const r = await call(t.key, 'POST', `/v1/patterns/${t.pattern}/ingest`, { images: [{ image_url: IMG }, { image_url: IMG }, { image_url: IMG }] });
    expect(r.status).toBe(402);
    expect(r.body).toMatchObject({
      type: '/problems/budget_exceeded', code: 'budget_exceeded', ceiling: 'credit_balance',
      limit_micros: 2 * t.estimate, used_micros: 0, requested_micros: 3 * t.estimate, exceeded_by_micros: t.estimate,
    });
    expect(r.body.detail).toMatch(/credit balance ceiling of \$0\.\d{6} would be exceeded by \$0\.\d{6}/);
    expect(await jobCount(t.tenantId)).toBe(0);
    expect((await ledgerOf(db.sql, t.tenantId)).map((l) => l.entry)).toEqual(['grant']);
    // Two fit.
    const ok = await call(t.key, 'POST', `/v1/patterns/${t.pattern}/ingest`, { images: [{ image_url: IMG }, { image_url: IMG }] });
    expect(ok.status).toBe(202);
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 0, ledger: 0 });
  });

  test('per-job, daily and per-kind ceilings refuse with their own names; lifting them lets work through', async () => {
    const t = await tenantWithPattern('ceilings');
    const put = (body: unknown) => call(admin.key, 'PUT', `/v1/admin/tenants/${t.slug}/budget`, body);
    expect((await put({ enforce_credits: false, per_job_usd: (t.estimate - 1) / 1e6 })).status).toBe(200);
    let r = await call(t.key, 'POST', `/v1/patterns/${t.pattern}/ingest`, { image_url: IMG });
    expect(r).toMatchObject({ status: 402, body: { ceiling: 'per_job', limit_micros: t.estimate - 1, requested_micros: t.estimate, exceeded_by_micros: 1 } });

    expect((await put({ per_job_usd: null, daily_usd: (t.estimate * 1.5) / 1e6 })).status).toBe(200);
    expect((await call(t.key, 'POST', `/v1/patterns/${t.pattern}/ingest`, { image_url: IMG })).status).toBe(202);
    // The first job's reservation counts against the day.
    r = await call(t.key, 'POST', `/v1/patterns/${t.pattern}/ingest`, { image_url: IMG });
    expect(r).toMatchObject({ status: 402, body: { ceiling: 'tenant_daily', used_micros: t.estimate, requested_micros: t.estimate } });

    expect((await put({ daily_usd: null, monthly_usd: (t.estimate * 1.5) / 1e6 })).status).toBe(200);
    r = await call(t.key, 'POST', `/v1/patterns/${t.pattern}/ingest`, { image_url: IMG });
    expect(r).toMatchObject({ status: 402, body: { ceiling: 'tenant_monthly' } });

    expect((await put({ monthly_usd: null, kind_daily_usd: { 'manifest.extract': (t.estimate * 1.5) / 1e6 } })).status).toBe(200);
    r = await call(t.key, 'POST', `/v1/patterns/${t.pattern}/ingest`, { image_url: IMG });
    expect(r).toMatchObject({ status: 402, body: { ceiling: 'kind_daily:manifest.extract' } });

    expect((await put({ kind_daily_usd: {} })).status).toBe(200);
    expect((await call(t.key, 'POST', `/v1/patterns/${t.pattern}/ingest`, { image_url: IMG })).status).toBe(202);
    // Without enforce_credits no ledger row is written: the tenant is billed afterwards.
    expect(await ledgerOf(db.sql, t.tenantId)).toEqual([]);
  });

  test('the margin floor refuses a job whose worst case leaves too little of its price', async () => {
    const cheap = createTestApi(db.sql, { GOVERNOR_KIND_PRICES: '{"manifest.extract":1}' });
    const t = await tenantWithPattern('margin');
    const r = await cheap.request(t.key, 'POST', `/v1/patterns/${t.pattern}/ingest`, { image_url: IMG });
    expect(r.status).toBe(402);
    // 1 credit is $0.001; 60 % of it is 600 micro-dollars.
    expect(await r.json()).toMatchObject({ code: 'margin_floor', ceiling: 'margin_floor', limit_micros: 600, requested_micros: t.estimate, exceeded_by_micros: t.estimate - 600 });
    expect(await jobCount(t.tenantId)).toBe(0);
  });

  test('POST /v1/jobs, /v1/galleries and /v1/edits reserve paid kinds in the same transaction; free kinds are never metered', async () => {
    const t = await tenantWithPattern('routes');
    expect((await call(admin.key, 'POST', '/v1/admin/credits', { tenant: t.slug, credits: 1 })).status).toBe(201);
    const key = newUploadKey(t.tenantId, 'image/png', 'room.png');
    await api.storage.put(key, PNG, 'image/png');
    const payload = { pattern_id: t.pattern, pattern_version: 1, image: { url: IMG } };
    for (const [path, body] of [
      ['/v1/jobs', { kind: 'manifest.extract', payload }],
      ['/v1/edits', { image: key, prompt: 'stage the room' }],
      ['/v1/galleries', { images: [key, newUploadKey(t.tenantId, 'image/png', 'b.png')] }],
    ] as const) {
      if (path === '/v1/galleries') await api.storage.put(body.images[1], PNG, 'image/png');
      const r = await call(t.key, 'POST', path, body);
      expect(r.status, path).toBe(402);
      expect(r.body.ceiling).toBe('credit_balance');
    }
    expect(await jobCount(t.tenantId)).toBe(0);
    expect((await call(t.key, 'POST', '/v1/jobs', { kind: 'system.noop' })).status).toBe(202);
    expect((await ledgerOf(db.sql, t.tenantId)).map((l) => l.entry)).toEqual(['grant']);

    expect((await call(admin.key, 'POST', '/v1/admin/credits', { tenant: t.tenantId, usd: 5 })).status).toBe(201);
    const job = await call(t.key, 'POST', '/v1/jobs', { kind: 'manifest.extract', payload });
    expect(job.status).toBe(202);
    const edit = await call(t.key, 'POST', '/v1/edits', { image: key, prompt: 'stage the room' });
    expect(edit.status).toBe(202);
    const estimates = await db.sql`select kind, estimate_micros::int from leasehold.jobs where tenant_id = ${t.tenantId} order by id`;
    expect(estimates).toEqual([
      { kind: 'system.noop', estimate_micros: null },
      { kind: 'manifest.extract', estimate_micros: t.estimate },
      { kind: 'image.edit', estimate_micros: governor.editEstimate({ image: key, prompt: 'stage the room' }).micros },
    ]);
    const reserved = (await ledgerOf(db.sql, t.tenantId)).filter((l) => l.entry === 'reservation').map((l) => -l.amount_micros);
    expect(reserved).toEqual([estimates[1]!.estimate_micros, estimates[2]!.estimate_micros]);
  });
});

describe('GET /v1/usage and the admin routes', () => {
  test('an unmetered tenant sees its reservations and spend; only configured ceilings refuse it', async () => {
    const t = await tenantWithPattern('free-rider');
    expect((await call(t.key, 'POST', `/v1/patterns/${t.pattern}/ingest`, { images: [{ image_url: IMG }, { image_url: IMG }] })).status).toBe(202);
    await db.sql`
      select leasehold.record_cost(gen_random_uuid(), ${t.tenantId}::uuid, 'manifest.extract', 1, 'openai', 'gpt-4o-mini', 'gpt-4o-mini',
                                   '2026-11-05', 1000, 0, 0, 200, 150000, 75000, 150000, 600000, 270)`;
    const u = await call(t.key, 'GET', '/v1/usage');
    expect(u.status).toBe(200);
    expect(u.body).toMatchObject({
      tenant_id: t.tenantId, metered: false, balance_micros: null, balance_credits: null, reserved_micros: 2 * t.estimate,
      spent_today_micros: 270, spent_month_micros: 270,
      ceilings: { per_job_micros: null, daily_micros: null, monthly_micros: null, kind_daily_micros: {} },
      by_kind: [{ kind: 'manifest.extract', spent_today_micros: 270, calls_month: 1, settled_jobs_month: 0, drift: null }],
    });
    expect(u.body.day).toBe(new Date().toISOString().slice(0, 10));
  });

  test('grants need the admin scope, name a tenant by slug or id, and show in credits', async () => {
    const t = await tenantWithPattern('granted');
    expect((await call(t.key, 'POST', '/v1/admin/credits', { tenant: t.slug, credits: 5 })).status).toBe(403);
    expect((await call(admin.key, 'POST', '/v1/admin/credits', { tenant: 'nobody-here', credits: 5 })).status).toBe(404);
    // Text no slug or id can be (found by the fuzzer: a NUL reached the query) is simply no such tenant.
    expect((await call(admin.key, 'GET', '/v1/admin/tenants/nul%00inside/budget')).status).toBe(404);
    expect((await call(admin.key, 'POST', '/v1/admin/credits', { tenant: 'Upper Case', credits: 5 })).status).toBe(404);
    expect((await call(admin.key, 'POST', '/v1/admin/credits', { tenant: t.slug, credits: 5, usd: 1 })).status).toBe(422);
    expect((await call(admin.key, 'POST', '/v1/admin/credits', { tenant: t.slug, credits: -5 })).status).toBe(422);
    const g = await call(admin.key, 'POST', '/v1/admin/credits', { tenant: t.tenantId, credits: 2500 });
    expect(g).toMatchObject({ status: 201, body: { metered: true, balance_micros: 2_500_000, balance_credits: 2500 } });
    const got = await call(admin.key, 'GET', `/v1/admin/tenants/${t.slug}/budget`);
    expect(got.body).toMatchObject({ tenant_id: t.tenantId, balance_micros: 2_500_000 });
    expect((await call(t.key, 'GET', '/v1/usage')).body.balance_micros).toBe(2_500_000);
  });
});
