import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { grantCredit, setBudget } from '#shared/governor/budget.js';
import { Governor } from '#shared/governor/governor.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { balances, danglingReservations, insertPattern, ledgerOf } from '../test/helpers/governor.js';

// Retrying a failed or cancelled paid job, or requeueing its dead letter, is one more model call:
// it used to reserve only what the balance held and skip every ceiling, so a tenant at zero
// balance or at its daily cap could run paid jobs again and again, the cost piling up as owed.

type Json = Record<string, any>;
const IMG = 'https://images.example.com/receipt.jpg';

let db: TestDatabase;
let api: TestApi;
let governor: Governor;
beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' });
  governor = new Governor(api.config);
});
afterAll(() => db.drop());

async function call(key: string, method: string, path: string, body?: unknown, via = api): Promise<{ status: number; body: Json }> {
  const res = await via.request(key, method, path, body);
  return { status: res.status, body: (await res.json()) as Json };
}

/** A tenant (admin scope, so it may requeue its dead letters) with a pattern, and the API's estimate of one image. */
async function tenant(slug: string) {
  const t = await api.tenant(slug, ['admin']);
  const pattern = await insertPattern(db.sql, t.tenantId);
  const estimate = governor.manifestEstimate(await governor.patternInputs(db.sql, t.tenantId, pattern)).micros;
  const ingest = async () => {
    const r = await call(t.key, 'POST', `/v1/patterns/${pattern}/ingest`, { image_url: IMG });
    expect(r.status).toBe(202);
    return r.body.job_id as string;
  };
  return { ...t, pattern, estimate, ingest };
}

/** Fails a job for good as the worker does: settled (its reservation refunded), then dead-lettered. Returns the dead letter's id. */
async function failForGood(jobId: string): Promise<string> {
  return db.sql.begin(async (tx) => {
    const [j] = await tx<{ tenant_id: string; kind: string; estimate_micros: string | null }[]>`
      update leasehold.jobs set status = 'failed', attempts = max_attempts, finished_at = now(), last_error = 'boom',
        errors = '[{"attempt":1,"message":"boom"}]'
      where id = ${jobId} returning tenant_id, kind, estimate_micros`;
    await tx`select leasehold.governor_settle(array[${jobId}]::uuid[], array[${j!.tenant_id}]::uuid[], array[${j!.kind}], array[${j!.estimate_micros}]::bigint[])`;
    const [dl] = await tx<{ id: string }[]>`
      insert into leasehold.dead_letters (job_id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, last_error, errors, job_created_at)
      select id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, last_error, errors, created_at from leasehold.jobs where id = ${jobId}
      returning id`;
    return dl!.id;
  });
}

/** Everything a refused retry must leave as it was. */
async function snapshot(tenantId: string, jobId: string) {
  const [job] = await db.sql`select status, attempts, run_at, finished_at, estimate_micros from leasehold.jobs where id = ${jobId}`;
  const events = await db.sql`select id from leasehold.job_events where job_id = ${jobId} order by id`;
  const letters = await db.sql`select id, requeued_at from leasehold.dead_letters where job_id = ${jobId} order by id`;
  const audit = await db.sql`select action from leasehold.admin_actions where target = ${jobId} or result ->> 'job_id' = ${jobId}`;
  return { job, events, letters, audit, ledger: await ledgerOf(db.sql, tenantId) };
}

describe('POST /v1/jobs/{id}/retry of a paid kind passes the governor as a new job would', () => {
  test('at zero balance it is a 402 credit_balance and the job is left as it was; a free kind is retried; with credit it reserves once', async () => {
    const t = await tenant('retry-broke');
    await grantCredit(db.sql, t.tenantId, t.estimate, 'one job');
    const failed = await t.ingest();
    await failForGood(failed);
    // The refund made room for one more job, which takes the whole balance again.
    const queued = await t.ingest();
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 0, ledger: 0 });

    const before = await snapshot(t.tenantId, failed);
    const r = await call(t.key, 'POST', `/v1/jobs/${failed}/retry`);
    expect(r.status).toBe(402);
    expect(r.body).toMatchObject({
      type: '/problems/budget_exceeded', code: 'budget_exceeded', ceiling: 'credit_balance',
      limit_micros: 0, used_micros: 0, requested_micros: t.estimate, exceeded_by_micros: t.estimate,
    });
    expect(r.body.detail).toMatch(/credit balance ceiling of \$0\.000000 would be exceeded/);
    expect(await snapshot(t.tenantId, failed)).toEqual(before);

    const noop = await call(t.key, 'POST', '/v1/jobs', { kind: 'system.noop' });
    expect((await call(t.key, 'POST', `/v1/jobs/${noop.body.id}/cancel`)).status).toBe(202);
    expect((await call(t.key, 'POST', `/v1/jobs/${noop.body.id}/retry`)).body).toMatchObject({ status: 'queued' });

    // Cancelling the queued job gives its credit back: now the retry fits, and holds its estimate
    // once (retry_job does not hold it again on top of the governor's reservation).
    expect((await call(t.key, 'POST', `/v1/jobs/${queued}/cancel`)).status).toBe(202);
    await grantCredit(db.sql, t.tenantId, t.estimate, 'more');
    const ledgerBefore = (await ledgerOf(db.sql, t.tenantId)).length;
    const ok = await call(t.key, 'POST', `/v1/jobs/${failed}/retry`);
    expect(ok.status).toBe(202);
    expect(ok.body).toMatchObject({ id: failed, status: 'queued', attempts: 0 });
    expect((await ledgerOf(db.sql, t.tenantId)).slice(ledgerBefore)).toEqual([
      { entry: 'reservation', job_id: failed, amount_micros: -t.estimate, owed_micros: 0 },
    ]);
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: t.estimate, ledger: t.estimate, owed: 0 });
    expect((await db.sql`select estimate_micros::int as e from leasehold.jobs where id = ${failed}`)[0]!.e).toBe(t.estimate);
    // And cancelling it again releases exactly that.
    expect((await call(t.key, 'POST', `/v1/jobs/${failed}/cancel`)).status).toBe(202);
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 2 * t.estimate, ledger: 2 * t.estimate });
    expect(await danglingReservations(db.sql, t.tenantId)).toEqual([]);
  });

  test('the per-job, daily, monthly, per-kind and global ceilings and the margin floor refuse it by name', async () => {
    const t = await tenant('retry-ceilings');
    await setBudget(db.sql, t.tenantId, { enforceCredits: false });
    const job = await t.ingest();
    expect((await call(t.key, 'POST', `/v1/jobs/${job}/cancel`)).status).toBe(202);
    // Another queued job holds one estimate of today's and this month's budget.
    await t.ingest();
    const before = await snapshot(t.tenantId, job);
    const E = t.estimate;
    const refusals: [Parameters<typeof setBudget>[2], Json][] = [
      [{ perJobMicros: E - 1 }, { ceiling: 'per_job', limit_micros: E - 1, requested_micros: E, exceeded_by_micros: 1 }],
      [{ perJobMicros: null, dailyMicros: 2 * E - 1 }, { ceiling: 'tenant_daily', used_micros: E, requested_micros: E, exceeded_by_micros: 1 }],
      [{ dailyMicros: null, monthlyMicros: 2 * E - 1 }, { ceiling: 'tenant_monthly', used_micros: E, exceeded_by_micros: 1 }],
      [{ monthlyMicros: null, kindDailyMicros: { 'manifest.extract': 2 * E - 1 } }, { ceiling: 'kind_daily:manifest.extract', used_micros: E }],
    ];
    // Open reservations are cached for a second (governor_open_reserved): count them afresh, so the
    // cancelled job's estimate is not among them. A refusal rolls back and leaves the cache unset.
    await db.sql`update leasehold.credit_accounts set open_reserved_at = null where tenant_id = ${t.tenantId}`;
    for (const [change, refusal] of refusals) {
      await setBudget(db.sql, t.tenantId, change);
      const r = await call(t.key, 'POST', `/v1/jobs/${job}/retry`);
      expect(r.status, refusal.ceiling).toBe(402);
      expect(r.body, refusal.ceiling).toMatchObject({ code: 'budget_exceeded', ...refusal });
    }
    await setBudget(db.sql, t.tenantId, { kindDailyMicros: {} });

    await db.sql`update leasehold.governor_settings set global_daily_micros = 1`;
    try {
      const r = await call(t.key, 'POST', `/v1/jobs/${job}/retry`);
      expect(r).toMatchObject({ status: 402, body: { ceiling: 'global_daily', limit_micros: 1 } });
    } finally {
      await db.sql`update leasehold.governor_settings set global_daily_micros = null`;
    }

    // 1 credit ($0.001) less the 40 % margin floor leaves 600 micro-dollars: less than the estimate.
    const cheap = createTestApi(db.sql, { GOVERNOR_KIND_PRICES: '{"manifest.extract":1}' });
    const margin = await call(t.key, 'POST', `/v1/jobs/${job}/retry`, undefined, cheap);
    expect(margin).toMatchObject({ status: 402, body: { code: 'margin_floor', limit_micros: 600, requested_micros: E } });
    expect(await snapshot(t.tenantId, job)).toEqual(before);

    expect((await call(t.key, 'POST', `/v1/jobs/${job}/retry`)).status).toBe(202);
    // Unmetered credit: no ledger rows, but the reservation counts against the ceilings.
    expect(await ledgerOf(db.sql, t.tenantId)).toEqual([]);
    expect((await db.sql`select estimate_micros::int as e from leasehold.jobs where id = ${job}`)[0]!.e).toBe(E);
  });
});

describe('POST /v1/dead-letters/{id}/requeue of a paid kind passes the governor as a new job would', () => {
  test('at zero balance it is a 402 and the dead letter stays open; with credit the job is requeued holding its estimate', async () => {
    const t = await tenant('requeue-broke');
    await grantCredit(db.sql, t.tenantId, t.estimate, 'one job');
    const job = await t.ingest();
    const letter = await failForGood(job);
    await t.ingest();

    const before = await snapshot(t.tenantId, job);
    const r = await call(t.key, 'POST', `/v1/dead-letters/${letter}/requeue`);
    expect(r).toMatchObject({ status: 402, body: { code: 'budget_exceeded', ceiling: 'credit_balance', requested_micros: t.estimate } });
    expect(await snapshot(t.tenantId, job)).toEqual(before);

    await grantCredit(db.sql, t.tenantId, t.estimate, 'top-up');
    const ok = await call(t.key, 'POST', `/v1/dead-letters/${letter}/requeue`);
    expect(ok).toMatchObject({ status: 202, body: { id: letter, job_id: job, requeued_at: expect.any(String) } });
    expect((await db.sql`select status from leasehold.jobs where id = ${job}`)[0]!.status).toBe('queued');
    expect((await ledgerOf(db.sql, t.tenantId)).filter((l) => l.job_id === job).map((l) => [l.entry, l.amount_micros])).toEqual([
      ['reservation', -t.estimate], ['refund', t.estimate], ['settlement', 0], ['reservation', -t.estimate],
    ]);
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 0, ledger: 0 });
  });
});

describe("operators' SQL functions are the override (docs/operators.md)", () => {
  test('leasehold.retry_job requeues a paid job at zero balance, holding what the balance covers (nothing)', async () => {
    const t = await tenant('retry-operator');
    await grantCredit(db.sql, t.tenantId, t.estimate, 'one job');
    const job = await t.ingest();
    await failForGood(job);
    await t.ingest();
    expect((await db.sql`select leasehold.retry_job(${job}::uuid, null, 'ops:alice') as ok`)[0]!.ok).toBe(true);
    expect((await db.sql`select status from leasehold.jobs where id = ${job}`)[0]!.status).toBe('queued');
    expect((await ledgerOf(db.sql, t.tenantId)).filter((l) => l.job_id === job).map((l) => l.entry)).toEqual(['reservation', 'refund', 'settlement']);
  });
});
