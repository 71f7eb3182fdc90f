import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test, vi } from 'vitest';
import { ensureTenant } from '#shared/auth/tenants.js';
import { loadConfig } from '#shared/config.js';
import { grantCredit } from '#shared/governor/budget.js';
import { Governor } from '#shared/governor/governor.js';
import { runDueSchedules } from '#shared/maintenance/schedules.js';
import { startModelDouble, successWith, type ModelDouble } from '../test/fixtures/model-double.js';
import { runCli } from '../test/helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, jobRow, queueFor } from '../test/helpers/engine.js';
import { balances, insertPattern, ledgerOf, startImageServer } from '../test/helpers/governor.js';
import { waitFor } from '../test/helpers/wait.js';

// Paid jobs that did not come through the API were never charged: a schedule's tick and a
// library enqueue inserted them with no estimate, and settlement skipped every job without one.
// A scheduled tick now reserves through the governor (or is refused, visibly); a job that reserved
// nothing is still charged what its calls cost when it ends.

// One CLI run is a fresh Node process (~1–3 s on a busy 2-core machine).
vi.setConfig({ testTimeout: 60_000 });

let db: TestDatabase;
let double: ModelDouble;
let images: Awaited<ReturnType<typeof startImageServer>>;
const pool = new WorkerPool();
const config = loadConfig({
  LOG_LEVEL: 'silent',
  FETCH_ALLOW_PRIVATE: 'true',
  LEASEHOLD_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'leasehold-outside-api-')),
  OPENAI_API_KEY: 'sk-double',
});
const governor = new Governor(config);
const MANIFEST = { merchant: 'Corner Shop', total: 12.5 };
// gpt-4o-mini: 0.15 micro-dollars per input token, 0.6 per output token.
const COST = Math.ceil(1_000 * 0.15 + 200 * 0.6);

beforeAll(async () => {
  db = await createTestDatabase();
  double = await startModelDouble();
  images = await startImageServer();
});
beforeEach(() => double.reset());
afterEach(async () => {
  await pool.stopAll();
  await db.sql`update leasehold.schedules set enabled = false`;
});
afterAll(async () => {
  await double.close();
  await images.close();
  await db.drop();
});

const startWorker = () => pool.start({ sql: db.sql, config: { ...config, OPENAI_BASE_URL: double.baseURL }, settings: { pollMs: 50 } });
const poll = (now: Date) => runDueSchedules(db.sql, governor, now);

/** A metered tenant with `credit` micro-dollars and a pattern on the default model (gpt-4o-mini). */
async function meteredTenant(slug: string, credit: number) {
  const { id } = await ensureTenant(db.sql, slug);
  await grantCredit(db.sql, id, credit, 'test grant');
  const pattern = await insertPattern(db.sql, id);
  const payload = { pattern_id: pattern, pattern_version: 1, image: { url: `${images.base}/receipt.png` } };
  const estimate = governor.manifestEstimate(await governor.patternInputs(db.sql, id, pattern, 1)).micros;
  return { tenantId: id, pattern, payload, estimate };
}

/** An hourly manifest.extract schedule of the tenant, ticking from 2026-01-01 on. */
async function hourlyExtract(name: string, t: { tenantId: string; payload: object }) {
  await db.sql`
    insert into leasehold.schedules (name, cron, timezone, kind, payload, queue, tenant_id, ticks_from)
    values (${name}, '0 * * * *', 'UTC', 'manifest.extract', ${db.sql.json(t.payload as never)}, 'ai', ${t.tenantId}, '2026-01-01T00:00:00Z')`;
}

async function ended(id: string) {
  return waitFor(async () => {
    const row = await jobRow(db.sql, id);
    return ['succeeded', 'failed', 'cancelled'].includes(row.status) && row;
  }, `job ${id} to end`);
}

/** The job's ledger rows as [entry, amount], once it has settled. */
async function settledLedger(tenantId: string, jobId: string) {
  await waitFor(async () => (await ledgerOf(db.sql, tenantId)).some((r) => r.job_id === jobId && r.entry === 'settlement'), 'settlement');
  return (await ledgerOf(db.sql, tenantId)).filter((r) => r.job_id === jobId).map((r) => [r.entry, r.amount_micros]);
}

describe('a paid kind on a schedule', () => {
  test('a metered tenant\'s tick reserves the estimate as the API would, and the job is charged what its call cost', async () => {
    const t = await meteredTenant('sched-paid', 1_000_000);
    await hourlyExtract('paid-hourly', t);
    const [tick] = await poll(new Date('2026-01-02T03:00:01Z'));
    expect(tick).toMatchObject({ schedule: 'paid-hourly', tickAt: new Date('2026-01-02T03:00:00Z'), queue: 'ai', refusal: null });
    const jobId = tick!.jobId!;
    expect(Number((await jobRow(db.sql, jobId)).estimate_micros)).toBe(t.estimate);
    // The row names the pattern version the payload reads, as the API's jobs do, so retention keeps it.
    expect(await db.sql`select pattern_id, pattern_version from leasehold.jobs where id = ${jobId}`).toEqual([{ pattern_id: t.pattern, pattern_version: 1 }]);
    expect((await ledgerOf(db.sql, t.tenantId)).filter((r) => r.job_id === jobId).map((r) => [r.entry, r.amount_micros]))
      .toEqual([['reservation', -t.estimate]]);
    expect(await balances(db.sql, t.tenantId)).toMatchObject({ cached: 1_000_000 - t.estimate, ledger: 1_000_000 - t.estimate });

    double.reply(successWith(MANIFEST, { prompt_tokens: 1_000, completion_tokens: 200 }));
    await startWorker();
    expect((await ended(jobId)).status).toBe('succeeded');
    expect(await settledLedger(t.tenantId, jobId)).toEqual([['reservation', -t.estimate], ['refund', t.estimate], ['settlement', -COST]]);
    expect(await balances(db.sql, t.tenantId)).toEqual({ cached: 1_000_000 - COST, owed: 0, ledger: 1_000_000 - COST, ledgerOwed: 0 });
  });

  test('a tenant out of credit gets no job: the tick is recorded with the refusal where operators look, it is not retried, and a tick after a top-up runs', async () => {
    const t = await meteredTenant('sched-broke', 10);
    await hourlyExtract('broke-hourly', t);
    const refused = await poll(new Date('2026-01-02T03:00:01Z'));
    expect(refused).toEqual([{
      schedule: 'broke-hourly', tickAt: new Date('2026-01-02T03:00:00Z'), queue: 'ai', jobId: null,
      refusal: expect.stringMatching(/^the governor refused it: the credit balance ceiling of \$0\.000010 would be exceeded/),
    }]);
    const [jobs] = await db.sql`select count(*)::int as n from leasehold.jobs where tenant_id = ${t.tenantId}`;
    expect(jobs!.n).toBe(0);
    expect(await ledgerOf(db.sql, t.tenantId)).toEqual([expect.objectContaining({ entry: 'grant' })]);
    const ticks = await db.sql`
      select t.tick_at, t.job_id, t.refusal from leasehold.schedule_ticks t
      join leasehold.schedules s on s.id = t.schedule_id where s.name = 'broke-hourly'`;
    expect(ticks).toEqual([{ tick_at: new Date('2026-01-02T03:00:00Z'), job_id: null, refusal: refused[0]!.refusal }]);
    const [s] = await db.sql`select last_tick_at, last_job_id, last_error from leasehold.schedules where name = 'broke-hourly'`;
    expect(s).toEqual({ last_tick_at: new Date('2026-01-02T03:00:00Z'), last_job_id: null,
                        last_error: `tick 2026-01-02T03:00:00.000Z: ${refused[0]!.refusal}` });
    const ls = await runCli(['schedules', 'ls', '--json'], { DATABASE_URL: db.url, LOG_LEVEL: 'silent' });
    expect(ls.json()).toContainEqual(expect.objectContaining({ name: 'broke-hourly', last_job_id: null, last_error: s!.last_error }));

    // Handled: the schedulers polling on through the hour do not try it again.
    expect(await poll(new Date('2026-01-02T03:00:30Z'))).toEqual([]);
    expect(await poll(new Date('2026-01-02T03:59:59Z'))).toEqual([]);

    await grantCredit(db.sql, t.tenantId, 1_000_000, 'top-up');
    const [next] = await poll(new Date('2026-01-02T04:00:01Z'));
    expect(next).toMatchObject({ tickAt: new Date('2026-01-02T04:00:00Z'), refusal: null, jobId: expect.any(String) });
    expect((await ledgerOf(db.sql, t.tenantId)).filter((r) => r.job_id === next!.jobId).map((r) => [r.entry, r.amount_micros]))
      .toEqual([['reservation', -t.estimate]]);
    expect((await db.sql`select last_job_id, last_error from leasehold.schedules where name = 'broke-hourly'`)[0])
      .toEqual({ last_job_id: next!.jobId, last_error: null });
    expect(await db.sql`select leasehold.cancel_job(${next!.jobId!}::uuid) as status`).toEqual([{ status: 'cancelled' }]);
  });
});

describe('a paid job that reserved nothing', () => {
  test('enqueued from library code (JobQueue), it is charged its recorded cost when it ends', async () => {
    const t = await meteredTenant('library', 1_000_000);
    const { id } = await queueFor(db.sql).enqueue({ kind: 'manifest.extract', tenantId: t.tenantId, payload: t.payload });
    double.reply(successWith(MANIFEST, { prompt_tokens: 1_000, completion_tokens: 200 }));
    await startWorker();
    expect((await ended(id)).status).toBe('succeeded');
    expect(await settledLedger(t.tenantId, id)).toEqual([['settlement', -COST]]);
    expect(await balances(db.sql, t.tenantId)).toEqual({ cached: 1_000_000 - COST, owed: 0, ledger: 1_000_000 - COST, ledgerOwed: 0 });
  });

  test('inserted with plain SQL and failed after its call returned, it is still charged, and past the balance the rest is owed', async () => {
    const t = await meteredTenant('raw-sql', 100);
    const [row] = await db.sql<{ id: string }[]>`
      insert into leasehold.jobs (id, tenant_id, kind, queue, payload, max_attempts)
      values (leasehold.uuid_v7(), ${t.tenantId}, 'manifest.extract', 'ai', ${db.sql.json(t.payload)}, 1) returning id`;
    const id = row!.id;
    // An answer that breaks the pattern's schema: a permanent failure, after a call that costs money.
    // Queued before the worker starts: its claim at start takes the job at once, and a call that
    // found no answer queued got the double's 500 (failed, nothing spent, nothing to settle).
    double.reply(successWith({ merchant: 42 }, { prompt_tokens: 1_000, completion_tokens: 200 }));
    await startWorker();
    expect((await ended(id)).status).toBe('failed');
    expect(await settledLedger(t.tenantId, id)).toEqual([['settlement', -100], ['overrun', 0]]);
    expect(await balances(db.sql, t.tenantId)).toEqual({ cached: 0, owed: COST - 100, ledger: 0, ledgerOwed: COST - 100 });
  });
});
