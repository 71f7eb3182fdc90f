import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PermanentError } from '#shared/jobs/job-errors.js';
import { createMetrics } from '#shared/metrics/metrics.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, queueFor } from '../test/helpers/engine.js';
import { serveTestApi, type ServedApi } from '../test/helpers/served-api.js';

// Debian's package (`apt-get install -y chromium`; .ci/run installs it): playwright-core drives it
// headless and downloads nothing.
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = path.resolve('.data/screenshots/dashboard.png');

let db: TestDatabase;
let api: TestApi;
let served: ServedApi;
let browser: Browser;
const pool = new WorkerPool();

beforeAll(async () => {
  db = await createTestDatabase();
  const metrics = createMetrics();
  api = createTestApi(db.sql, {}, { metrics });
  served = await serveTestApi(api);
  await pool.start({
    sql: db.sql,
    metrics,
    settings: { pollMs: 100 },
    kinds: { 'test.doomed': { queue: 'default', maxAttempts: 1 } },
    handlers: {
      'test.doomed': () => {
        throw new PermanentError('the model answered with nothing usable');
      },
    },
  });
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the browser test needs Debian's chromium (apt-get install -y chromium; .ci/run installs it)`);
  browser = await chromium.launch({ executablePath: CHROMIUM });
});
afterAll(async () => {
  await browser?.close();
  await pool.stopAll();
  await served?.close();
  await db?.drop();
});

test('log in, watch a job go from queued to succeeded without reloading, requeue a dead letter, save a screenshot', { timeout: 180_000 }, async () => {
  const admin = await api.tenant('browser-ops', ['admin']);
  const customer = await api.tenant('browser-customer');
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  const problems: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(e.message));

  // Log in with the admin key.
  await page.goto(`${served.base}/dashboard`);
  await page.fill('input[name="key"]', admin.key);
  await page.click('button[type="submit"]');
  await page.waitForURL(`${served.base}/dashboard`);
  await expect.poll(() => page.textContent('#live'), { timeout: 10_000 }).toBe('live');
  expect(await page.textContent('header .scope')).toBe('all tenants');
  // A marker that a reload would wipe out.
  await page.evaluate('window.notReloaded = true');

  // Another tenant's job, due in a few seconds so that it is seen waiting first.
  const runAt = new Date(Date.now() + 3_000).toISOString();
  const created = await served.call('POST', '/v1/jobs', customer.key, { kind: 'system.sleep', payload: { ms: 1_500 }, run_at: runAt });
  expect(created.status).toBe(202);
  const jobId = created.body.id as string;
  const badge = page.locator(`[data-panel="recent"] tr[data-key="${jobId}"] .badge`);
  const seen: string[] = [];
  await expect
    .poll(
      async () => {
        const status = await badge.textContent({ timeout: 500 }).catch(() => null);
        if (status && seen.at(-1) !== status) seen.push(status);
        return status;
      },
      { timeout: 30_000, interval: 100 },
    )
    .toBe('succeeded');
  expect(seen[0]).toBe('queued');
  expect(seen).toContain('succeeded');
  expect(await page.textContent(`[data-panel="recent"] tr[data-key="${jobId}"] td:nth-child(2)`)).toBe('browser-customer');
  expect(await page.evaluate('window.notReloaded')).toBe(true);

  // A job that fails for good lands in the dead-letter queue; requeue it from the page.
  const { id: doomedId } = await queueFor(db.sql).enqueue({ kind: 'test.doomed', maxAttempts: 1, tenantId: customer.tenantId });
  const deadRow = page.locator(`[data-panel="deadLetters"] tr:has(td[title="${doomedId}"])`);
  await deadRow.waitFor({ timeout: 20_000 });
  const [dl] = await db.sql<{ id: string }[]>`select id from leasehold.dead_letters where job_id = ${doomedId}`;
  expect(await deadRow.getAttribute('data-key')).toBe(dl!.id);
  expect(await deadRow.textContent()).toContain('the model answered with nothing usable');
  await deadRow.locator('button.requeue').click();
  await expect.poll(() => page.textContent('#flash'), { timeout: 10_000 }).toBe(`Requeued: job ${doomedId} is queued again.`);
  const [requeued] = await db.sql<{ requeued_at: Date | null }[]>`select requeued_at from leasehold.dead_letters where id = ${dl!.id}`;
  expect(requeued!.requeued_at).toBeInstanceOf(Date);
  // The requeued job ran again and failed again: a new dead letter, and the old one left the page.
  await expect.poll(async () => (await db.sql`select 1 from leasehold.dead_letters where job_id = ${doomedId}`).length, { timeout: 20_000 }).toBe(2);
  await page.locator(`[data-panel="deadLetters"] tr[data-key="${dl!.id}"]`).waitFor({ state: 'detached', timeout: 10_000 });

  // The live chart saw jobs finish.
  expect(Number(await page.textContent('#total-workers'))).toBeGreaterThanOrEqual(1);
  expect(await page.textContent('#chart-max')).toMatch(/^max \d+(\.\d+)? jobs\/s over the last \d+ s$/);

  mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  const png = readFileSync(SCREENSHOT);
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  expect(statSync(SCREENSHOT).size).toBeGreaterThan(30_000);
  // No script error and no CSP violation: the inline style and script carry the nonce.
  expect(problems).toEqual([]);
});
