import { afterAll, beforeAll, expect, test } from 'vitest';
import { ensureTenant } from '#shared/auth/tenants.js';
import { runCli } from '../test/helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { balances, ledgerOf } from '../test/helpers/governor.js';

let db: TestDatabase;
const leasehold = (args: string[]) => runCli(args, { DATABASE_URL: db.url, LOG_LEVEL: 'info' });
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());

test('tenants budget grants credit, sets and lifts ceilings, and prints the budget as a table or JSON', async () => {
  const { id } = await ensureTenant(db.sql, 'acme');
  const first = await leasehold(['tenants', 'budget', 'acme', '--grant', '1500', '--daily-usd', '5', '--kind-daily-usd', 'image.edit=1.25', '--json']);
  expect(first.code, first.stderr).toBe(0);
  expect(first.json()).toMatchObject({
    tenant_id: id, metered: true, enforce_credits: true, balance_micros: 1_500_000, balance_credits: 1500,
    ceilings: { daily_micros: 5_000_000, monthly_micros: null, per_job_micros: null, kind_daily_micros: { 'image.edit': 1_250_000 } },
  });
  expect((await ledgerOf(db.sql, id)).map((r) => [r.entry, r.amount_micros])).toEqual([['grant', 1_500_000]]);

  const second = await leasehold(['tenants', 'budget', id, '--grant-usd', '0.5', '--daily-usd', 'none', '--per-job-usd', '0.2']);
  expect(second.code, second.stderr).toBe(0);
  expect(second.stdout).toMatch(/balance\s+\$2\.000000 \(2000 credits\)/);
  expect(second.stdout).toMatch(/daily ceiling\s+none/);
  expect(second.stdout).toMatch(/per-job ceiling\s+\$0\.200000/);
  expect(await balances(db.sql, id)).toMatchObject({ cached: 2_000_000, ledger: 2_000_000 });
});

test('tenants budget refuses malformed amounts (64) and names an unknown tenant (1)', async () => {
  expect((await leasehold(['tenants', 'budget', 'acme', '--daily-usd', 'lots'])).code).toBe(64);
  expect((await leasehold(['tenants', 'budget', 'acme', '--grant', '-3'])).code).toBe(64);
  expect((await leasehold(['tenants', 'budget'])).code).toBe(64);
  const missing = await leasehold(['tenants', 'budget', 'nobody', '--json']);
  expect(missing.code).toBe(1);
  expect(missing.json()).toEqual({ error: 'no tenant nobody' });
});
