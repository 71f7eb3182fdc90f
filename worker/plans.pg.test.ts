import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { STATEMENTS } from '#shared/jobs/queue-sql.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, jobRow, queueFor } from '../test/helpers/engine.js';
import { insertJobs } from '../test/helpers/job-factory.js';
import { waitFor } from '../test/helpers/wait.js';

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

describe("a worker's cached plans", () => {
  test('stay index scans when jobs grows after they were made on a nearly empty table', async () => {
    // One connection, told to keep a generic plan from the first run: PostgreSQL chooses one after
    // five runs when it costs no more than the custom ones, as it does while `jobs` is this small.
    const sql = db.connect({ max: 1, worker: true });
    await sql`set plan_cache_mode = force_generic_plan`;
    const queue = 'plans';
    await pool.start({
      sql,
      settings: { queues: [{ name: queue }], concurrency: 1, heartbeatMs: 50, pollMs: 60_000, reclaimMs: 100 },
      handlers: { 'test.plans': () => new Promise((resolve) => setTimeout(() => resolve(null), 120)) },
    });
    for (let i = 0; i < 3; i++) {
      const { id } = await queueFor(db.sql).enqueue({ kind: 'test.plans', queue });
      await waitFor(async () => (await jobRow(db.sql, id)).status === 'succeeded', `job ${i + 1} to succeed`);
    }
    await pool.stopAll();
    // The table grows well past where a scan of it could be cheap.
    await insertJobs(db.sql, Array.from({ length: 5_000 }, () => ({ kind: 'test.plans', queue: 'elsewhere' })));

    const cached = await sql<{ name: string; statement: string; params: number }[]>`
      select name, statement, cardinality(parameter_types) as params from pg_prepared_statements`;
    const checked = ['CLAIM_JOBS', 'COMPLETE_JOBS', 'HEARTBEAT', 'RECLAIM_EXPIRED'] as const;
    for (const name of checked) {
      const stmt = cached.find((c) => c.statement === STATEMENTS[name]);
      expect(stmt, `${name} prepared on the worker's connection`).toBeDefined();
      const plan = await sql.unsafe<{ 'QUERY PLAN': string }[]>(
        `explain execute "${stmt!.name}"(${Array(stmt!.params).fill('null').join(', ')})`,
      );
      const text = plan.map((r) => r['QUERY PLAN']).join('\n');
      expect(text, name).not.toMatch(/Seq Scan on jobs/);
      expect(text, name).toMatch(/Index (Only )?Scan .*on jobs/);
    }
  });
});
