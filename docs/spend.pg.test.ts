import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ensureTenant } from '#shared/auth/tenants.js';
import { grantCredit } from '#shared/governor/budget.js';
import { enqueueIngest } from '#shared/patterns/enqueue-ingest.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { insertPattern } from '../test/helpers/governor.js';

// The "Spend" section of docs/operators.md, run against a known ledger: each block must show
// what the guide says it shows (operators.pg.test.ts only checks that every block runs).
const GUIDE = readFileSync(new URL('./operators.md', import.meta.url), 'utf8');
const SPEND = GUIDE.slice(GUIDE.indexOf('## Spend'), GUIDE.indexOf('\n## ', GUIDE.indexOf('## Spend') + 1));
const BLOCKS = [...SPEND.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!);
const block = (needle: string) => BLOCKS.find((b) => b.includes(needle))!;

let db: TestDatabase;
let tenantId: string;
let jobs: string[];
beforeAll(async () => {
  db = await createTestDatabase();
  tenantId = (await ensureTenant(db.sql, 'spender')).id;
  const pattern = await insertPattern(db.sql, tenantId);
  await grantCredit(db.sql, tenantId, 1_000_000);
  const r = await enqueueIngest(db.sql, tenantId, pattern, [{ url: 'https://example.com/a.png' }, { url: 'https://example.com/b.png' }], { estimateMicros: 10_000 });
  if (r.outcome !== 'queued') throw new Error(r.outcome);
  jobs = r.ids;
  // The first job made one call (1,000 in, 200 out on gpt-4o-mini: 270 micro-dollars) and succeeded.
  await db.sql`
    select leasehold.record_cost(${jobs[0]!}::uuid, ${tenantId}::uuid, 'manifest.extract', 1, 'openai', 'gpt-4o-mini', 'gpt-4o-mini',
                                 '2026-11-05', 1000, 0, 0, 200, 150000, 75000, 150000, 600000, 270)`;
  await db.sql`update leasehold.jobs set status = 'succeeded', finished_at = now() where id = ${jobs[0]!}`;
  await db.sql`select leasehold.governor_settle(array[${jobs[0]!}::uuid], array[${tenantId}::uuid], array['manifest.extract'], array[10000::bigint])`;
});
afterAll(() => db.drop());

test('the Spend section has its six blocks', () => {
  expect(BLOCKS).toHaveLength(6);
});

test('balance per tenant: the cached balance equals the ledger; the open job still holds its estimate', async () => {
  const rows = await db.sql.unsafe(block('ledger_balance_micros'));
  expect(rows).toEqual([{ slug: 'spender', enforce_credits: true, balance_micros: String(1_000_000 - 10_000 - 270), owed_micros: '0', ledger_balance_micros: String(1_000_000 - 10_000 - 270), reserved_micros: '10000' }]);
});

test('spend today by kind, and every call recomputed to the micro-dollar', async () => {
  expect(await db.sql.unsafe(block('sum(calls)'))).toEqual([{ kind: 'manifest.extract', spent_micros: '270', calls: '1' }]);
  const calls = await db.sql.unsafe(block('recomputed_micros'));
  expect(calls).toHaveLength(1);
  expect(calls[0]).toMatchObject({ job_id: jobs[0], cost_micros: '270', recomputed_micros: '270' });
});

test('drift: actual over estimated for jobs that ended', async () => {
  expect(await db.sql.unsafe(block('drift'))).toEqual([
    { kind: 'manifest.extract', jobs: '1', estimated_micros: '10000', actual_micros: '270', drift: '0.027' },
  ]);
});

test('the brake shows once today\'s spend reaches the global ceiling; raising it lifts the brake', async () => {
  await db.sql`update leasehold.governor_settings set global_daily_micros = 270`;
  const [braked] = await db.sql.unsafe(block('governor_brake_reason()'));
  expect(braked).toMatchObject({ global_daily_micros: '270', paid_kinds: ['manifest.extract', 'gallery.group', 'image.edit'] });
  expect(braked!.brake).toMatch(/reached: 270 of 270/);
  await db.sql.unsafe(block('set global_daily_micros'));
  const [raised] = await db.sql.unsafe(block('governor_brake_reason()'));
  expect(raised).toMatchObject({ global_daily_micros: '50000000', brake: null });
});
