import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { deferred } from '../test/helpers/deferred.js';
import { WorkerPool, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';
import type { WorkerSettings } from './worker-settings.js';

// How deep a worker claims ahead of what it runs: up to twenty times its slots (two claims in
// flight) for jobs that finish far faster than a claim round trip, about its slots or less for slow ones.
let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

let queueSeq = 0;
const freshQueue = () => `prefetch-${++queueSeq}`;
const settings = (queue: string, concurrency: number): Partial<WorkerSettings> => ({
  queues: [{ name: queue }],
  concurrency,
  pollMs: 50,
});

async function heldBy(owner: string): Promise<number> {
  const [r] = await db.sql<{ n: number }[]>`select count(*)::int as n from leasehold.jobs where status = 'running' and lease_owner = ${owner}`;
  return r!.n;
}

describe('prefetch', () => {
  test('a worker starting on slow jobs takes no more than twice its slots, so a second worker gets work at once', async () => {
    const queue = freshQueue();
    await queueFor(db.sql).enqueueMany(Array.from({ length: 40 }, () => ({ kind: 'test.slow', queue })));
    // No handler finishes until the end: the worker has timed none, which is when it used to claim
    // five times its slots.
    const gate = deferred();
    const slow = { 'test.slow': async () => (await gate.promise, 'done') };
    try {
      const a = await pool.start({ sql: db.sql, settings: settings(queue, 3), handlers: slow });
      await waitFor(async () => (await heldBy(a.id)) >= 3, 'the first worker to hold jobs');
      await new Promise((r) => setTimeout(r, 300));
      expect(a.counters.claimed).toBe(6);
      expect(await heldBy(a.id)).toBe(6);
      const b = await pool.start({ sql: db.sql, settings: settings(queue, 3), handlers: slow });
      await waitFor(async () => (await heldBy(b.id)) === 6, 'the second worker to hold as many', 2_000);
    } finally {
      gate.resolve();
    }
  });

  test('on jobs that finish at once, a worker claims batches of several times its slots', async () => {
    const queue = freshQueue();
    const n = 3_000;
    await queueFor(db.sql).enqueueMany(Array.from({ length: n }, () => ({ kind: 'test.instant', queue })));
    let ran = 0;
    const w = await pool.start({ sql: db.sql, settings: settings(queue, 4), handlers: { 'test.instant': () => (ran++, null) } });
    await waitFor(async () => ran === n, 'every job to run', 20_000);
    // The slots plus up to twenty times them prefetched (84), in two claims of 42. With one batch
    // prefetched of at most four times the slots (20), claims averaged 20.
    expect(w.counters.claimed).toBe(n);
    expect(w.counters.claimed / w.counters.claims).toBeGreaterThan(30);
  });
});
