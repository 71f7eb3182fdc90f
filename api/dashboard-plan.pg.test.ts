import { afterAll, beforeAll, expect, test } from 'vitest';
import { GAUGES_SQL } from '#shared/metrics/database-gauges.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { SNAPSHOT_STATEMENTS } from './dashboard/snapshot-sql.js';

// The dashboard reads a snapshot every second and Prometheus scrapes every few: neither may read
// the history of finished jobs, which grows without bound while the live part stays small.
let db: TestDatabase;
// Seeding 60,000 jobs, a year of spend and 60,000 deliveries takes a few seconds alone and several
// times that when the suite shares two cores; it is setup, so it gets the hook's time, not the test's.
beforeAll(async () => {
  db = await createTestDatabase();
  await seed();
}, 180_000);
afterAll(() => db?.drop());

const PARAMS: Record<keyof typeof SNAPSHOT_STATEMENTS, unknown[]> = {
  DEPTH: [],
  RECENT_JOBS: [15],
  LEASES: [15],
  FAILURES: [15, 200_000],
  DEAD_LETTERS: [15],
  COUNTS: [10_000],
  LAST_EVENT_ID: [],
  FINISHED_SINCE: ['59000', '60500'],
  GOVERNOR_PANEL: [15],
  WEBHOOKS_PANEL: [15],
};

async function seed(): Promise<void> {
  await db.sql.unsafe(`
    insert into leasehold.jobs (id, kind, queue, status, attempts, finished_at)
    select gen_random_uuid(), 'system.noop', 'q' || (i % 5), 'succeeded', 1, now() from generate_series(1, 60000) i`);
  await db.sql.unsafe(`
    insert into leasehold.jobs (id, kind, queue, status, run_at)
    select gen_random_uuid(), 'system.noop', 'q' || (i % 5), 'queued', now() + (i % 2) * interval '1 hour' from generate_series(1, 200) i`);
  await db.sql.unsafe(`
    insert into leasehold.jobs (id, kind, queue, status, attempts, lease_owner, lease_token, lease_expires_at, heartbeat_at)
    select gen_random_uuid(), 'system.sleep', 'q0', 'running', 1, 'w', gen_random_uuid(), now() + interval '30 seconds', now()
    from generate_series(1, 20)`);
  // A year of spend for 200 tenants (50 of them metered), and 60,000 webhook deliveries of the last
  // 30 days (their webhook.deliver jobs left out: the trigger is off in this database only).
  await db.sql.unsafe(`
    insert into leasehold.tenants (id, slug, name) select gen_random_uuid(), 'plan-' || i, 'plan ' || i from generate_series(1, 200) i`);
  await db.sql.unsafe(`
    insert into leasehold.spend_daily (tenant_id, day, kind, spent_micros, calls, settled_jobs, settled_estimate_micros, settled_actual_micros)
    select t.id, current_date - d, k, 1000, 1, 1, 2000, 1000
    from leasehold.tenants t, generate_series(0, 364) d, unnest(array['manifest.extract', 'image.edit']) k`);
  await db.sql.unsafe(`
    insert into leasehold.credit_accounts (tenant_id, daily_max_micros, monthly_max_micros)
    select id, 5000000, 100000000 from leasehold.tenants where slug like 'plan-%' order by slug limit 50`);
  await db.sql.unsafe(`
    insert into leasehold.webhooks (id, tenant_id, url, events, secret)
    select gen_random_uuid(), id, 'https://hooks.example.com/' || slug, array['job.succeeded'], 'x' from leasehold.tenants where slug like 'plan-%'`);
  await db.sql.unsafe(`alter table leasehold.webhook_deliveries disable trigger webhook_delivery_inserted`);
  await db.sql.unsafe(`
    insert into leasehold.webhook_deliveries (id, tenant_id, webhook_id, job_id, event, status, deliver_job_id, attempts, delivered_at)
    select (left(leasehold.uuid_v7_floor(now() - i * interval '43 seconds')::text, 24) || right(gen_random_uuid()::text, 12))::uuid,
           w.tenant_id, w.id, gen_random_uuid(), 'job.succeeded', 'delivered', gen_random_uuid(), 1, now() - i * interval '43 seconds'
    from generate_series(1, 60000) i,
         (select array_agg(id order by id) ids, array_agg(tenant_id order by id) tenants from leasehold.webhooks) hooks,
         lateral (select hooks.ids[1 + i % 200] id, hooks.tenants[1 + i % 200] tenant_id) w`);
  for (const table of ['jobs', 'job_events', 'spend_daily', 'credit_accounts', 'webhooks', 'webhook_deliveries']) {
    await db.sql.unsafe(`analyze leasehold.${table}`);
  }
}

test('snapshot and scrape statements read index ranges, not the 60,000 finished jobs', async () => {
  const statements = { ...SNAPSHOT_STATEMENTS, GAUGES_SQL };
  const params: Record<string, unknown[]> = { ...PARAMS, GAUGES_SQL: [] };
  for (const [name, text] of Object.entries(statements)) {
    const rows = await db.sql.unsafe<{ 'QUERY PLAN': string }[]>(`explain ${text}`, params[name] as never[]);
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan, `${name}:\n${plan}`).not.toMatch(/Seq Scan on (jobs|job_events|spend_daily|webhook_deliveries|webhook_delivery_attempts)\b/);
  }
});
