import { afterAll, beforeAll, expect, test } from 'vitest';
import { GAUGES_SQL } from '#shared/metrics/database-gauges.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { SNAPSHOT_STATEMENTS } from './dashboard/snapshot-sql.js';

// The dashboard reads a snapshot every second and Prometheus scrapes every few: neither may read
// the history of finished jobs, which grows without bound while the live part stays small.
let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());

const PARAMS: Record<keyof typeof SNAPSHOT_STATEMENTS, unknown[]> = {
  DEPTH: [],
  RECENT_JOBS: [15],
  LEASES: [15],
  FAILURES: [15, 200_000],
  DEAD_LETTERS: [15],
  COUNTS: [10_000],
  LAST_EVENT_ID: [],
  FINISHED_SINCE: ['59000', '60500'],
};

test('snapshot and scrape statements read index ranges, not the 60,000 finished jobs', async () => {
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
  await db.sql`analyze leasehold.jobs`;
  await db.sql`analyze leasehold.job_events`;

  const statements = { ...SNAPSHOT_STATEMENTS, GAUGES_SQL };
  const params: Record<string, unknown[]> = { ...PARAMS, GAUGES_SQL: [] };
  for (const [name, text] of Object.entries(statements)) {
    const rows = await db.sql.unsafe<{ 'QUERY PLAN': string }[]>(`explain ${text}`, params[name] as never[]);
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan, `${name}:\n${plan}`).not.toMatch(/Seq Scan on (jobs|job_events)\b/);
  }
});
