import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { grantCredit } from '#shared/governor/budget.js';
import { Governor } from '#shared/governor/governor.js';
import { CLAIM_JOBS, COMPLETE_JOBS, FAIL_JOBS, PREPARED, RECORD_COST } from '#shared/jobs/queue-sql.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { balances, danglingReservations, insertPattern, ledgerOf } from '../test/helpers/governor.js';

// A paid job settles each time it ends, and a retry or requeue can end it again. Each settlement
// charged the job's actual cost less what earlier settlements had taken from the balance, not
// counting what they had recorded as owed: a retried job that had overrun paid its overrun twice.
// And spend_daily counted the job (and all of its cost) again at every settlement that followed
// one charging nothing, which is every settlement of an unmetered tenant.

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

async function call(key: string, method: string, path: string): Promise<{ status: number; body: Json }> {
  const res = await api.request(key, method, path);
  return { status: res.status, body: (await res.json()) as Json };
}

/** A tenant (metered when `credit` is given: its first grant, from the estimate), a pattern, one ingested job, and its estimate. */
async function tenantWithJob(slug: string, credit: ((estimate: number) => number) | null) {
  const t = await api.tenant(slug);
  const pattern = await insertPattern(db.sql, t.tenantId);
  const estimate = governor.manifestEstimate(await governor.patternInputs(db.sql, t.tenantId, pattern)).micros;
  if (credit !== null) await grantCredit(db.sql, t.tenantId, credit(estimate), 'first grant');
  const r = await api.request(t.key, 'POST', `/v1/patterns/${pattern}/ingest`, { image_url: IMG });
  expect(r.status).toBe(202);
  return { ...t, estimate, jobId: ((await r.json()) as { job_id: string }).job_id };
}

/**
 * One attempt as a worker makes it, with the worker's own statements: claims the job, records a
 * model call costing `cost` micro-dollars (none when null), and ends the attempt for good.
 */
async function attempt(t: { tenantId: string; jobId: string }, cost: number | null, end: 'fail' | 'succeed' = 'fail') {
  const token = randomUUID();
  const [job] = await db.sql.unsafe(CLAIM_JOBS, [['ai'], [10], ['manifest.extract'], 10, 'w1', token, 30_000, false], PREPARED);
  expect(job?.id).toBe(t.jobId);
  if (cost !== null) {
    await db.sql.unsafe(RECORD_COST, [t.jobId, t.tenantId, 'manifest.extract', job!.attempts, 'openai', 'gpt-4o-mini', 'gpt-4o-mini',
      '2026-11-05', 1000, 0, 0, 1000, 150000, 75000, 150000, 600000, cost], PREPARED);
  }
  if (end === 'succeed') {
    await db.sql.unsafe(COMPLETE_JOBS, [`{${t.jobId}}`, `{${token}}`, JSON.stringify({ [t.jobId]: { merchant: 'x', total: 1 } }), false], PREPARED);
  } else {
    await db.sql.unsafe(FAIL_JOBS, [JSON.stringify([{ id: t.jobId, lease_token: token, outcome: 'permanent', message: 'schema broke',
      error: { message: 'schema broke' }, retry_at: null }])], PREPARED);
  }
}

/**
 * What the tenant has been charged for its one job: credit granted less the balance left, plus
 * what it still owes; and the same from the job's settlements and the overruns they recorded.
 */
async function charged(tenantId: string, jobId: string) {
  const ledger = await ledgerOf(db.sql, tenantId);
  const b = await balances(db.sql, tenantId);
  expect(b.cached).toBe(b.ledger);
  expect(b.owed).toBe(b.ledgerOwed);
  const granted = ledger.filter((l) => l.entry === 'grant').reduce((s, l) => s + l.amount_micros, 0);
  const job = ledger.filter((l) => l.job_id === jobId);
  return {
    byBalance: granted - b.cached + b.owed,
    bySettlements: job.filter((l) => l.entry === 'settlement').reduce((s, l) => s - l.amount_micros, 0)
      + job.filter((l) => l.entry === 'overrun').reduce((s, l) => s + l.owed_micros, 0),
  };
}

describe('a retried job is charged for each of its calls once', () => {
  test('overrun, retried (the overrun is collected), cancelled before any new call: the settlement charges nothing more', async () => {
    const t = await tenantWithJob('overrun-cancel', (e) => e);
    const E = t.estimate;
    await attempt(t, 3 * E);
    // The balance paid one estimate; the rest is owed.
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 0, owed: 2 * E });

    await grantCredit(db.sql, t.tenantId, 10 * E, 'top-up');
    expect((await call(t.key, 'POST', `/v1/jobs/${t.jobId}/retry`)).status).toBe(202);
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 10 * E - 2 * E - E, owed: 0 });
    expect((await call(t.key, 'POST', `/v1/jobs/${t.jobId}/cancel`)).status).toBe(202);

    expect((await ledgerOf(db.sql, t.tenantId)).filter((l) => l.job_id === t.jobId).map((l) => [l.entry, l.amount_micros, l.owed_micros])).toEqual([
      ['reservation', -E, 0], ['refund', E, 0], ['settlement', -E, 0], ['overrun', 0, 2 * E],
      ['reservation', -E, 0], ['refund', E, 0], ['settlement', 0, 0],
    ]);
    expect(await charged(t.tenantId, t.jobId)).toEqual({ byBalance: 3 * E, bySettlements: 3 * E });
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 11 * E - 3 * E, owed: 0 });
    expect(await danglingReservations(db.sql, t.tenantId)).toEqual([]);
  });

  test('overrun, retried, a second call that overruns again, requeued, cancelled: charged the sum of both calls', async () => {
    const t = await tenantWithJob('overrun-twice', (e) => e);
    const E = t.estimate;
    await attempt(t, 3 * E);
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 0, owed: 2 * E });

    // Just enough for the retry: what is owed and one more estimate.
    await grantCredit(db.sql, t.tenantId, 3 * E, 'top-up');
    expect((await call(t.key, 'POST', `/v1/jobs/${t.jobId}/retry`)).status).toBe(202);
    await attempt(t, 2 * E + 7);
    // The second call's reservation paid one estimate of it; the rest is owed.
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 0, owed: E + 7 });
    expect(await charged(t.tenantId, t.jobId)).toEqual({ byBalance: 5 * E + 7, bySettlements: 5 * E + 7 });

    await grantCredit(db.sql, t.tenantId, 2 * E + 7, 'top-up');
    const [letter] = await db.sql<{ id: string }[]>`select id from leasehold.dead_letters where job_id = ${t.jobId} and requeued_at is null`;
    expect((await call(t.key, 'POST', `/v1/dead-letters/${letter!.id}/requeue`)).status).toBe(202);
    expect((await call(t.key, 'POST', `/v1/jobs/${t.jobId}/cancel`)).status).toBe(202);

    const settlements = (await ledgerOf(db.sql, t.tenantId)).filter((l) => l.job_id === t.jobId && l.entry === 'settlement');
    expect(settlements.map((l) => l.amount_micros)).toEqual([-E, -E, 0]);
    expect(await charged(t.tenantId, t.jobId)).toEqual({ byBalance: 5 * E + 7, bySettlements: 5 * E + 7 });
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: E, owed: 0 });
    expect(await danglingReservations(db.sql, t.tenantId)).toEqual([]);
  });

  test('overrun, retried, a second call the balance covers, succeeded: charged the sum of both calls', async () => {
    const t = await tenantWithJob('overrun-then-ok', (e) => e);
    const E = t.estimate;
    await attempt(t, 3 * E);
    await grantCredit(db.sql, t.tenantId, 10 * E, 'top-up');
    expect((await call(t.key, 'POST', `/v1/jobs/${t.jobId}/retry`)).status).toBe(202);
    await attempt(t, 500, 'succeed');
    expect(await charged(t.tenantId, t.jobId)).toEqual({ byBalance: 3 * E + 500, bySettlements: 3 * E + 500 });
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 11 * E - 3 * E - 500, owed: 0 });
  });
});

describe('a retried job counts once in spend_daily and GET /v1/usage', () => {
  // The first attempt fails before a call returns (its settlement charges nothing), the second
  // makes a call of 1,000 µ$, the third one of 500 µ$.
  test.each([
    ['unmetered', null],
    ['metered', () => 1_000_000],
  ] as const)('%s: one job, two calls: settled_jobs 1, its estimate once, actual 1,500', async (slug, credit) => {
    const t = await tenantWithJob(`counted-once-${slug}`, credit);
    await attempt(t, null);
    expect((await call(t.key, 'POST', `/v1/jobs/${t.jobId}/retry`)).status).toBe(202);
    await attempt(t, 1000);
    expect((await call(t.key, 'POST', `/v1/jobs/${t.jobId}/retry`)).status).toBe(202);
    await attempt(t, 500);

    expect(await db.sql`
      select kind, spent_micros::int as spent, calls, settled_jobs, settled_estimate_micros::int as estimated, settled_actual_micros::int as actual
      from leasehold.spend_daily where tenant_id = ${t.tenantId}`).toEqual([
      { kind: 'manifest.extract', spent: 1500, calls: 2, settled_jobs: 1, estimated: t.estimate, actual: 1500 },
    ]);
    expect(await db.sql`select settlements, actual_micros::int as actual from leasehold.job_settlements where job_id = ${t.jobId}`)
      .toEqual([{ settlements: 3, actual: 1500 }]);
    const usage = await call(t.key, 'GET', '/v1/usage');
    expect(usage.body.by_kind).toEqual([expect.objectContaining({
      kind: 'manifest.extract', spent_month_micros: 1500, calls_month: 2, settled_jobs_month: 1,
      estimated_micros_month: t.estimate, actual_micros_month: 1500,
    })]);
    if (credit) expect(await charged(t.tenantId, t.jobId)).toEqual({ byBalance: 1500, bySettlements: 1500 });
  });
});
