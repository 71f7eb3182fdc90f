import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ensureTenant } from '#shared/auth/tenants.js';
import { loadConfig } from '#shared/config.js';
import { grantCredit } from '#shared/governor/budget.js';
import { Governor } from '#shared/governor/governor.js';
import { insertPaidJobs } from '#shared/governor/insert-paid.js';
import { newUploadKey } from '#shared/storage/keys.js';
import { createObjectStore } from '#shared/storage/object-store.js';
import { enqueueIngest } from '#shared/patterns/enqueue-ingest.js';
import { startModelDouble, successWith, type ModelDouble } from '../test/fixtures/model-double.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, jobRow } from '../test/helpers/engine.js';
import { PNG, balances, danglingReservations, insertPattern, ledgerOf, startImageServer } from '../test/helpers/governor.js';
import { waitFor } from '../test/helpers/wait.js';

let db: TestDatabase;
let double: ModelDouble;
let images: Awaited<ReturnType<typeof startImageServer>>;
const pool = new WorkerPool();
const config = loadConfig({
  LOG_LEVEL: 'silent',
  FETCH_ALLOW_PRIVATE: 'true',
  LEASEHOLD_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'leasehold-settle-')),
  OPENAI_API_KEY: 'sk-double',
});
const governor = new Governor(config);
const MANIFEST = { merchant: 'Corner Shop', total: 12.5 };
// gpt-4o-mini: $0.15 input and $0.60 output per million tokens = 0.15 and 0.6 micro-dollars a token.
const MINI_IN = 0.15;
const MINI_OUT = 0.6;

beforeAll(async () => {
  db = await createTestDatabase();
  double = await startModelDouble();
  images = await startImageServer();
});
beforeEach(() => double.reset());
afterEach(() => pool.stopAll());
afterAll(async () => {
  await double.close();
  await images.close();
  await db.drop();
});

const startWorker = () => pool.start({ sql: db.sql, config: { ...config, OPENAI_BASE_URL: double.baseURL }, settings: { pollMs: 50 } });

/** A metered tenant with `credit` micro-dollars and a pattern on the default model (gpt-4o-mini). */
async function meteredTenant(slug: string, credit: number) {
  const { id } = await ensureTenant(db.sql, slug);
  await grantCredit(db.sql, id, credit, 'test grant');
  return { tenantId: id, pattern: await insertPattern(db.sql, id) };
}

/** Ingests one image with the API's estimate (or `estimate`); returns the job id and the estimate. */
async function ingest(t: { tenantId: string; pattern: string }, estimate?: number): Promise<{ id: string; estimate: number }> {
  const micros = estimate ?? governor.manifestEstimate(await governor.patternInputs(db.sql, t.tenantId, t.pattern)).micros;
  const r = await enqueueIngest(db.sql, t.tenantId, t.pattern, [{ url: `${images.base}/receipt.png` }], { estimateMicros: micros });
  if (r.outcome !== 'queued') throw new Error(`ingest: ${JSON.stringify(r)}`);
  return { id: r.ids[0]!, estimate: micros };
}

async function ended(id: string) {
  return waitFor(async () => {
    const row = await jobRow(db.sql, id);
    return ['succeeded', 'failed', 'cancelled'].includes(row.status) && row;
  }, `job ${id} to end`);
}

/** The job's ledger rows (entry and amount), once it has settled. */
async function settledLedger(tenantId: string, jobId: string) {
  await waitFor(async () => (await ledgerOf(db.sql, tenantId)).some((r) => r.job_id === jobId && r.entry === 'settlement'), 'settlement');
  return (await ledgerOf(db.sql, tenantId)).filter((r) => r.job_id === jobId).map((r) => [r.entry, r.amount_micros]);
}

const costEvents = (jobId: string) => db.sql`
  select provider, model, priced_as, prices_date::text, attempt, input_tokens::int, cached_input_tokens::int,
         image_input_tokens::int, output_tokens::int, input_price::int, output_price::int, cost_micros::int
  from leasehold.cost_events where job_id = ${jobId} order by id`;

describe('settlement against the model double', () => {
  test('a succeeded job: the cost event prices the reported usage exactly; its reservation is refunded and the actual cost charged', async () => {
    const t = await meteredTenant('settle-ok', 1_000_000);
    await startWorker();
    double.reply(successWith(MANIFEST, { prompt_tokens: 1_000, completion_tokens: 200 }));
    const { id, estimate } = await ingest(t);
    expect((await ended(id)).status).toBe('succeeded');
    const cost = Math.ceil(1_000 * MINI_IN + 200 * MINI_OUT);
    expect(cost).toBe(270);
    expect(await costEvents(id)).toEqual([{
      provider: 'openai', model: 'gpt-4o-mini-2026-01-01', priced_as: 'gpt-4o-mini', prices_date: '2026-11-05', attempt: 1,
      input_tokens: 1_000, cached_input_tokens: 0, image_input_tokens: 0, output_tokens: 200,
      input_price: 150_000, output_price: 600_000, cost_micros: cost,
    }]);
    expect(await settledLedger(t.tenantId, id)).toEqual([['reservation', -estimate], ['refund', estimate], ['settlement', -cost]]);
    expect(await balances(db.sql, t.tenantId)).toEqual({ cached: 1_000_000 - cost, owed: 0, ledger: 1_000_000 - cost, ledgerOwed: 0 });
    const [day] = await db.sql`
      select spent_micros::int, calls, settled_jobs, settled_estimate_micros::int, settled_actual_micros::int
      from leasehold.spend_daily where tenant_id = ${t.tenantId}`;
    expect(day).toEqual({ spent_micros: cost, calls: 1, settled_jobs: 1, settled_estimate_micros: estimate, settled_actual_micros: cost });
  });

  test('a job that fails without a billable call is refunded in full', async () => {
    const t = await meteredTenant('settle-refund', 1_000_000);
    await startWorker();
    double.reply({ type: 'bad_schema' });
    const { id, estimate } = await ingest(t);
    expect((await ended(id)).status).toBe('failed');
    expect(await costEvents(id)).toEqual([]);
    expect(await settledLedger(t.tenantId, id)).toEqual([['reservation', -estimate], ['refund', estimate], ['settlement', 0]]);
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 1_000_000, ledger: 1_000_000 });
  });

  test('a call that returned is paid for even when the job then fails (its output broke the schema)', async () => {
    const t = await meteredTenant('settle-spent', 1_000_000);
    await startWorker();
    double.reply(successWith({ merchant: 42 }, { prompt_tokens: 500, completion_tokens: 20 }));
    const { id, estimate } = await ingest(t);
    expect((await ended(id)).status).toBe('failed');
    const cost = Math.ceil(500 * MINI_IN + 20 * MINI_OUT);
    expect((await costEvents(id)).map((e) => e.cost_micros)).toEqual([cost]);
    expect(await settledLedger(t.tenantId, id)).toEqual([['reservation', -estimate], ['refund', estimate], ['settlement', -cost]]);
  });

  test('a retried job pays for the calls of every attempt, once, when it ends', async () => {
    const t = await meteredTenant('settle-retry', 1_000_000);
    await startWorker();
    double.reply(successWith({ merchant: 42 }, { prompt_tokens: 900, completion_tokens: 10 }), successWith(MANIFEST, { prompt_tokens: 1_000, completion_tokens: 200 }));
    const { id, estimate } = await ingest(t);
    // The first answer breaks the schema: a permanent failure. Retrying it by hand runs it again.
    expect((await ended(id)).status).toBe('failed');
    await settledLedger(t.tenantId, id);
    await db.sql`select leasehold.retry_job(${id}::uuid)`;
    await waitFor(async () => (await jobRow(db.sql, id)).status === 'succeeded', 'the retried job to succeed');
    const first = Math.ceil(900 * MINI_IN + 10 * MINI_OUT);
    const second = Math.ceil(1_000 * MINI_IN + 200 * MINI_OUT);
    expect((await costEvents(id)).map((e) => e.cost_micros)).toEqual([first, second]);
    await waitFor(async () => (await ledgerOf(db.sql, t.tenantId)).filter((r) => r.entry === 'settlement').length === 2, 'second settlement');
    expect((await ledgerOf(db.sql, t.tenantId)).filter((r) => r.job_id === id).map((r) => [r.entry, r.amount_micros])).toEqual([
      ['reservation', -estimate], ['refund', estimate], ['settlement', -first],
      ['reservation', -estimate], ['refund', estimate], ['settlement', -second],
    ]);
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 1_000_000 - first - second, ledger: 1_000_000 - first - second });
    expect(await danglingReservations(db.sql, t.tenantId)).toEqual([]);
  });

  test('cancelling a queued job releases its reservation in the same transaction', async () => {
    const t = await meteredTenant('settle-cancel', 1_000_000);
    const { id, estimate } = await ingest(t);
    expect(await db.sql`select leasehold.cancel_job(${id}::uuid) as status`).toEqual([{ status: 'cancelled' }]);
    expect((await ledgerOf(db.sql, t.tenantId)).filter((r) => r.job_id === id).map((r) => [r.entry, r.amount_micros])).toEqual([
      ['reservation', -estimate], ['refund', estimate], ['settlement', 0],
    ]);
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 1_000_000, ledger: 1_000_000 });
  });

  test('an overrun past the balance is owed, never a negative balance, and the next reservation must cover it', async () => {
    // An estimate far below the call's real cost (270), and credit for little more than it.
    const t = await meteredTenant('settle-overrun', 150);
    await startWorker();
    double.reply(successWith(MANIFEST, { prompt_tokens: 1_000, completion_tokens: 200 }));
    const { id } = await ingest(t, 100);
    expect((await ended(id)).status).toBe('succeeded');
    expect(await settledLedger(t.tenantId, id)).toEqual([['reservation', -100], ['refund', 100], ['settlement', -150], ['overrun', 0]]);
    expect(await balances(db.sql, t.tenantId)).toEqual({ cached: 0, owed: 120, ledger: 0, ledgerOwed: 120 });

    await pool.stopAll();
    await grantCredit(db.sql, t.tenantId, 200);
    // 200 covers the next estimate (100) but not that and the 120 owed.
    const refused = await enqueueIngest(db.sql, t.tenantId, t.pattern, [{ url: `${images.base}/a.png` }], { estimateMicros: 100 });
    expect(refused).toMatchObject({ outcome: 'refused', refusal: { ceiling: 'credit_balance', limit_micros: 200, used_micros: 120, requested_micros: 100, exceeded_by_micros: 20 } });
    await grantCredit(db.sql, t.tenantId, 20);
    const ok = await enqueueIngest(db.sql, t.tenantId, t.pattern, [{ url: `${images.base}/a.png` }], { estimateMicros: 100 });
    expect(ok.outcome).toBe('queued');
    expect((await ledgerOf(db.sql, t.tenantId)).slice(-2).map((r) => [r.entry, r.amount_micros, r.owed_micros])).toEqual([
      ['overrun', -120, -120], ['reservation', -100, 0],
    ]);
    expect(await balances(db.sql, t.tenantId)).toEqual({ cached: 0, owed: 0, ledger: 0, ledgerOwed: 0 });
    // Cancelled, so that the next test's worker does not take it.
    expect(await db.sql`select leasehold.cancel_job(${ok.outcome === 'queued' ? ok.ids[0]! : ''}::uuid) as status`).toEqual([{ status: 'cancelled' }]);
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 100, ledger: 100 });
  });

  test('an image edit is priced from the image API\'s usage: text and image input apart, output at the image rate', async () => {
    const t = await meteredTenant('settle-edit', 5_000_000);
    const storage = createObjectStore(config, { dataDir: config.LEASEHOLD_DATA_DIR });
    const key = newUploadKey(t.tenantId, 'image/png', 'room.png');
    await storage.put(key, PNG, 'image/png');
    const { ids } = await insertPaidJobs(db.sql, governor, [{ kind: 'image.edit', tenantId: t.tenantId, payload: { image: key, prompt: 'stage the room' } }]);
    const id = ids[0]!;
    const estimate = governor.editEstimate({ image: key, prompt: 'stage the room' }).micros;
    // The double reports 50 input tokens (10 text, 40 image) and 200 output tokens.
    double.reply({ type: 'image', b64: PNG.toString('base64') });
    await pool.start({ sql: db.sql, config: { ...config, OPENAI_BASE_URL: double.baseURL }, storage, settings: { pollMs: 50 } });
    expect((await ended(id)).status).toBe('succeeded');
    const cost = 10 * 5 + 40 * 10 + 200 * 40; // $5, $10 and $40 per million: micro-dollars per token.
    expect(await costEvents(id)).toEqual([expect.objectContaining({
      provider: 'openai', model: 'gpt-image-1', priced_as: 'gpt-image-1', input_tokens: 10, image_input_tokens: 40, output_tokens: 200, cost_micros: cost,
    })]);
    expect(await settledLedger(t.tenantId, id)).toEqual([['reservation', -estimate], ['refund', estimate], ['settlement', -cost]]);
  });
});

test('insertPaidJobs: a job its idempotency key finds already there is not reserved a second time', async () => {
  const t = await meteredTenant('settle-idem', 5_000_000);
  const job = { kind: 'image.edit' as const, tenantId: t.tenantId, idempotencyKey: 'edit-once', payload: { image: `uploads/${t.tenantId}/x.png`, prompt: 'stage the room' } };
  const first = await insertPaidJobs(db.sql, governor, [job]);
  const again = await insertPaidJobs(db.sql, governor, [job]);
  expect([first.created, again.created, again.ids]).toEqual([[true], [false], first.ids]);
  const estimate = governor.editEstimate(job.payload).micros;
  expect((await ledgerOf(db.sql, t.tenantId)).filter((r) => r.job_id === first.ids[0]).map((r) => [r.entry, r.amount_micros])).toEqual([['reservation', -estimate]]);
});
