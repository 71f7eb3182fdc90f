import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from 'vitest';
import { loadConfig } from '#shared/config.js';
import { applyGovernorSettings } from '#shared/governor/settings.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, jobRow, queueFor } from '../test/helpers/engine.js';
import { insertPattern, startImageServer } from '../test/helpers/governor.js';
import { waitFor } from '../test/helpers/wait.js';

let db: TestDatabase;
let api: TestApi;
let images: Awaited<ReturnType<typeof startImageServer>>;
let tenantId: string;
let key: string;
let pattern: string;
const pool = new WorkerPool();
const config = loadConfig({ LOG_LEVEL: 'silent', FETCH_ALLOW_PRIVATE: 'true', LEASEHOLD_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'leasehold-brake-')) });

beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { FETCH_ALLOW_PRIVATE: 'true' });
  images = await startImageServer();
  ({ tenantId, key } = await api.tenant('braked'));
  pattern = await insertPattern(db.sql, tenantId);
});
beforeEach(async () => {
  await db.sql`delete from leasehold.spend_daily`;
  await db.sql`delete from leasehold.cost_events`;
});
afterEach(async () => {
  await pool.stopAll();
  await applyGovernorSettings(db.sql, loadConfig({}));
});
afterAll(async () => {
  await images.close();
  await db.drop();
});

/** Spend recorded today, as if a call of `micros` had just returned. */
async function spendToday(micros: number): Promise<void> {
  await db.sql`
    select leasehold.record_cost(gen_random_uuid(), ${tenantId}::uuid, 'manifest.extract', 1, 'openai', 'gpt-4o', 'gpt-4o',
                                 '2026-11-05', 0, 0, 0, 0, 2500000, 1250000, 2500000, 10000000, ${micros}::bigint)`;
}

/** A paid job and a free one, enqueued straight into the queue (the brake is about claims, not enqueue). */
async function enqueuePaidAndFree(): Promise<{ paid: string; free: string }> {
  const queue = queueFor(db.sql);
  const paid = await queue.enqueue({ kind: 'manifest.extract', tenantId, patternId: pattern, patternVersion: 1,
    payload: { pattern_id: pattern, pattern_version: 1, image: { url: `${images.base}/r.png` } } });
  const free = await queue.enqueue({ kind: 'system.noop', tenantId });
  return { paid: paid.id, free: free.id };
}

test('at the global daily ceiling, workers stop claiming paid kinds while free ones flow; the next UTC day releases them', async () => {
  await applyGovernorSettings(db.sql, loadConfig({ GOVERNOR_GLOBAL_DAILY_USD: '0.01' }));
  await spendToday(10_000);
  const worker = await pool.start({ sql: db.sql, config, settings: { pollMs: 50 } });
  const { paid, free } = await enqueuePaidAndFree();

  await waitFor(async () => (await jobRow(db.sql, free)).status === 'succeeded', 'the free job to run');
  expect(worker.brake).toMatch(/global daily spend ceiling reached: 10000 of 10000/);
  // Several brake refreshes later the paid job is still waiting, and SQL says why.
  await new Promise((r) => setTimeout(r, 400));
  expect((await jobRow(db.sql, paid)).status).toBe('queued');
  const [why] = await db.sql`select leasehold.governor_block_reason('manifest.extract', ${tenantId}::uuid) as paid,
                                    leasehold.governor_block_reason('system.noop', ${tenantId}::uuid) as free`;
  expect(why!.paid).toMatch(/global daily spend ceiling reached/);
  expect(why!.free).toBeNull();
  // An operator asking why it is not running gets the brake, in job_diagnosis as in `leasehold doctor`.
  const [diag] = await db.sql`select reason, detail from leasehold.job_diagnosis where job_id = ${paid}`;
  expect(diag).toMatchObject({ reason: 'governor', detail: expect.stringMatching(/global daily spend ceiling reached/) });
  const ready = (await (await api.app.request('/ready')).json()) as any;
  expect(ready.status).toBe('ready');
  expect(ready.checks.governor).toMatchObject({ global_daily_micros: 10_000, spent_today_micros: 10_000, brake: expect.stringMatching(/ceiling reached/) });
  // Enqueue refuses new paid work against the same ceiling, naming it.
  const refused = await api.request(key, 'POST', `/v1/patterns/${pattern}/ingest`, { image_url: `${images.base}/x.png` });
  expect(refused.status).toBe(402);
  expect(await refused.json()).toMatchObject({ code: 'budget_exceeded', ceiling: 'global_daily', limit_micros: 10_000 });

  // The window rolls over: today's spend becomes yesterday's.
  await db.sql`update leasehold.spend_daily set day = day - 1`;
  await waitFor(async () => (await jobRow(db.sql, paid)).status === 'succeeded', 'the paid job to run after the day rolled over');
  expect(worker.brake).toBeNull();
});

test('raising the ceiling releases the brake at once', async () => {
  await applyGovernorSettings(db.sql, loadConfig({ GOVERNOR_GLOBAL_DAILY_USD: '0.01' }));
  await spendToday(12_000);
  const worker = await pool.start({ sql: db.sql, config, settings: { pollMs: 50 } });
  const { paid, free } = await enqueuePaidAndFree();
  await waitFor(async () => (await jobRow(db.sql, free)).status === 'succeeded', 'the free job to run');
  expect((await jobRow(db.sql, paid)).status).toBe('queued');
  expect(worker.brake).not.toBeNull();

  await db.sql`update leasehold.governor_settings set global_daily_micros = 1000000`;
  await waitFor(async () => (await jobRow(db.sql, paid)).status === 'succeeded', 'the paid job to run under the raised ceiling');
  expect(worker.brake).toBeNull();
});

test('with no global ceiling there is no brake, however much was spent', async () => {
  await spendToday(1_000_000_000);
  const worker = await pool.start({ sql: db.sql, config, settings: { pollMs: 50 } });
  const { paid } = await enqueuePaidAndFree();
  await waitFor(async () => (await jobRow(db.sql, paid)).status === 'succeeded', 'the paid job to run');
  expect(worker.brake).toBeNull();
});
