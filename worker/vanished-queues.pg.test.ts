import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { createMetrics } from '#shared/metrics/metrics.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';

// A worker serving all queues kept, for every queue name it had ever served, its per-queue counts
// and ~30 metric series, for good: memory and /metrics grew with every name a tenant made.

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

test('with WORKER_QUEUES=all, the metric series of a queue that retention deleted go; other queues keep theirs', async () => {
  const metrics = createMetrics();
  await pool.start({
    sql: db.sql,
    metrics,
    settings: { queues: 'all', pollMs: 50 },
    handlers: { 'test.fail': async () => { throw new Error('no'); } },
  });
  const producer = queueFor(db.sql);
  for (const queue of ['gone', 'stays']) {
    await producer.enqueueMany([{ kind: 'system.noop', queue }, { kind: 'test.fail', queue, maxAttempts: 1 }]);
  }
  await waitFor(async () => (await db.sql`select count(*)::int as n from leasehold.jobs where status in ('succeeded', 'failed')`)[0]!.n === 4, 'the jobs to end');
  const series = async (queue: string) => (await metrics.registry.metrics()).split('\n').filter((l) => l.includes(`queue="${queue}"`));
  await waitFor(async () => (await series('gone')).some((l) => l.startsWith('leasehold_job_attempts_total')), 'the attempts to be counted');
  const before = await series('gone');
  for (const name of ['leasehold_job_attempts_total', 'leasehold_job_duration_seconds', 'leasehold_claim_latency_seconds', 'leasehold_dead_letters_total']) {
    expect(before.some((l) => l.startsWith(name)), name).toBe(true);
  }

  // What retention does once no job of the queue is queued or running.
  await db.sql`delete from leasehold.queues where name = 'gone'`;
  await waitFor(async () => (await series('gone')).length === 0, "the deleted queue's series to go");
  expect(await series('stays')).toHaveLength(before.length);

  // A new job in it registers the queue again, and its series start afresh.
  await producer.enqueue({ kind: 'system.noop', queue: 'gone' });
  await waitFor(async () => (await series('gone')).some((l) => l === 'leasehold_job_attempts_total{queue="gone",kind="system.noop",outcome="succeeded"} 1'), 'the new job to be counted');
});
