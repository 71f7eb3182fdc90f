import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { loadConfig } from '#shared/config.js';
import { testLog } from '../../test/helpers/engine.js';
import { insertJobs } from '../../test/helpers/job-factory.js';
import { waitFor } from '../../test/helpers/wait.js';
import { startMaintenance } from './maintenance.js';
import { GROWN_TABLES, STATISTICS_LOCK_KEY, analyzeGrownTables, type AnalyzedTable } from './statistics.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  // Autovacuum must not analyze behind the test's back: the stale plan is the starting point.
  await db.sql`alter table leasehold.jobs set (autovacuum_enabled = off)`;
});
afterAll(() => db.drop());

// An API-style read by id, prepared on one connection of a pool that never gets worker settings.
const BY_ID = `select id, status from leasehold.jobs where id = $1::uuid and tenant_id = $2::uuid`;
const SYSTEM_TENANT = '00000000-0000-0000-0000-000000000000';

describe('analyzeGrownTables', () => {
  test('a table that outgrew its statistics is analyzed, and the plans cached on it are made anew', async () => {
    const sql = db.connect({ max: 1 });
    await sql`set plan_cache_mode = force_generic_plan`;
    const [first] = await insertJobs(db.sql, [{ kind: 'test.stats' }]);
    await db.sql`analyze leasehold.jobs`;
    for (let i = 0; i < 3; i++) await sql.unsafe(BY_ID, [first!, SYSTEM_TENANT], { prepare: true });
    const [stmt] = await sql<{ name: string }[]>`select name from pg_prepared_statements where statement = ${BY_ID}`;
    const plan = async () =>
      (await sql.unsafe<{ 'QUERY PLAN': string }[]>(`explain execute "${stmt!.name}"(null, null)`)).map((r) => r['QUERY PLAN']).join('\n');
    expect(await plan()).toMatch(/Seq Scan on jobs/);

    await insertJobs(db.sql, Array.from({ length: 20_000 }, () => ({ kind: 'test.stats' })));
    expect(await plan(), 'the plan made on one row is still cached').toMatch(/Seq Scan on jobs/);

    // Live-row counts reach the statistics views within a second or so of the insert's commit.
    let analyzed: AnalyzedTable[] = [];
    await waitFor(async () => (analyzed = await analyzeGrownTables(db.sql)).some((t) => t.table === 'jobs'), 'jobs to be analyzed');
    const jobs = analyzed.find((t) => t.table === 'jobs')!;
    expect(jobs.live).toBeGreaterThanOrEqual(20_000);
    expect(jobs.estimated).toBeLessThan(10);
    expect(await plan()).toMatch(/Index Scan using jobs_pkey on jobs/);

    // Its statistics now count what it holds: the next pass leaves it alone.
    expect((await analyzeGrownTables(db.sql)).map((t) => t.table)).not.toContain('jobs');
    await sql.end();
  });

  test('one pass at a time: a second caller returns at once while the lock is held', async () => {
    const holder = await db.sql.reserve();
    const key = STATISTICS_LOCK_KEY.toString();
    try {
      await holder`select pg_advisory_lock(${key}::bigint)`;
      await insertJobs(db.sql, Array.from({ length: 50_000 }, () => ({ kind: 'test.stats' })));
      await waitFor(async () => (await db.sql.unsafe<{ table: string }[]>(GROWN_TABLES, [2_000])).some((t) => t.table === 'jobs'), 'jobs to count as grown');
      expect(await analyzeGrownTables(db.sql)).toEqual([]);
      await holder`select pg_advisory_unlock(${key}::bigint)`;
      let analyzed: AnalyzedTable[] = [];
      await waitFor(async () => (analyzed = await analyzeGrownTables(db.sql)).length > 0, 'the grown table to be analyzed');
      expect(analyzed.map((t) => t.table)).toContain('jobs');
    } finally {
      holder.release();
    }
  });

  test("every worker process's maintenance runs the pass: a grown table gets analyzed without anyone asking", async () => {
    await db.sql`alter table leasehold.queues set (autovacuum_enabled = off)`;
    await db.sql`insert into leasehold.queues (name) select 'stats-' || g from generate_series(1, 5000) g`;
    const maintenance = startMaintenance({ sql: db.connect({ max: 2 }), log: testLog, config: loadConfig({}), statisticsCheckMs: 50 });
    try {
      await waitFor(async () => {
        const [q] = await db.sql<{ last_analyze: Date | null }[]>`
          select last_analyze from pg_stat_user_tables where schemaname = 'leasehold' and relname = 'queues'`;
        return q!.last_analyze !== null;
      }, 'queues to be analyzed');
    } finally {
      await maintenance.stop();
    }
  });
});
