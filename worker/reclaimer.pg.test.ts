import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, eventTypes, jobRow } from '../test/helpers/engine.js';
import { insertJob, insertJobs } from '../test/helpers/job-factory.js';
import { waitFor } from '../test/helpers/wait.js';
import { reclaimExpired } from './reclaimer.js';

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

const KIND = 'test.rescued';
let queueSeq = 0;
const freshQueue = () => `reclaim-${++queueSeq}`;
const expired = () => new Date(Date.now() - 5_000);

async function deadLetters(sql: Sql, jobId: string) {
  return sql`select * from leasehold.dead_letters where job_id = ${jobId}`;
}

async function events(sql: Sql, jobId: string) {
  return sql<{ type: string; attempt: number; data: Record<string, unknown> }[]>`
    select type, attempt, data from leasehold.job_events where job_id = ${jobId} order by id`;
}

describe('reclaimExpired', () => {
  test('an expired lease goes back to queued, ready now, with rescues + 1 and no extra attempt', async () => {
    const queue = freshQueue();
    const id = await insertJob(db.sql, {
      kind: KIND,
      queue,
      status: 'running',
      attempts: 1,
      maxAttempts: 3,
      leaseOwner: 'crashed-worker',
      leaseExpiresAt: expired(),
      runAt: new Date(Date.now() - 60_000),
    });
    const report = await reclaimExpired(db.sql);
    expect(report.requeued).toBeGreaterThanOrEqual(1);
    expect(report.queues.has(queue)).toBe(true);

    const row = await jobRow(db.sql, id);
    expect(row).toMatchObject({
      status: 'queued',
      attempts: 1,
      rescues: 1,
      lease_token: null,
      lease_expires_at: null,
      finished_at: null,
      last_error: 'lease expired: worker crashed-worker stopped heartbeating',
    });
    expect(Date.now() - (row.run_at as Date).getTime()).toBeLessThan(5_000);
    expect(row.errors).toEqual([
      expect.objectContaining({ attempt: 1, code: 'lease_expired', worker: 'crashed-worker' }),
    ]);
    // The first event is the factory's insert (the trigger records the state a row is inserted in).
    expect(await events(db.sql, id)).toEqual([
      { type: 'job.running', attempt: 1, data: null },
      { type: 'job.retrying', attempt: 1, data: expect.objectContaining({ reason: 'lease_expired' }) },
    ]);
    expect(await deadLetters(db.sql, id)).toHaveLength(0);
  });

  test('the requeued job runs again and its next claim is its second attempt, not its third', async () => {
    const queue = freshQueue();
    const id = await insertJob(db.sql, { kind: KIND, queue, status: 'running', attempts: 1, leaseExpiresAt: expired() });
    await reclaimExpired(db.sql);
    const attempts: number[] = [];
    await pool.start({
      sql: db.sql,
      settings: { queues: [{ name: queue }], pollMs: 50, reclaimMs: 100, heartbeatMs: 100, leaseMs: 2_000 },
      handlers: { [KIND]: (_p: unknown, ctx) => (attempts.push(ctx.attempt), 'rescued') },
    });
    const row = await waitFor(async () => {
      const r = await jobRow(db.sql, id);
      return r.status === 'succeeded' && r;
    }, 'the rescued job to succeed');
    expect(attempts).toEqual([2]);
    expect(row).toMatchObject({ attempts: 2, rescues: 1, result: 'rescued' });
  });

  test("a worker's own reclaimer takes back a crashed lease once it expires, and the job runs again at once", async () => {
    const queue = freshQueue();
    // The lease is still valid when the worker starts: the reclaimer must wait for it to expire.
    const id = await insertJob(db.sql, {
      kind: KIND,
      queue,
      status: 'running',
      attempts: 1,
      leaseOwner: 'crashed-worker',
      leaseExpiresAt: new Date(Date.now() + 300),
    });
    const t0 = Date.now();
    await pool.start({
      sql: db.sql,
      settings: { queues: [{ name: queue }], pollMs: 5_000, reclaimMs: 100, heartbeatMs: 100, leaseMs: 2_000 },
      handlers: { [KIND]: () => 'ok' },
    });
    expect((await jobRow(db.sql, id)).status).toBe('running');
    const row = await waitFor(async () => {
      const r = await jobRow(db.sql, id);
      return r.status === 'succeeded' && r;
    }, 'the reclaimed job to run again', 5_000);
    expect(row).toMatchObject({ attempts: 2, rescues: 1 });
    // Woken by the reclaimer's NOTIFY, well before the 5 s poll would have found it.
    expect((row.finished_at as Date).getTime() - t0).toBeLessThan(2_500);
    expect(await eventTypes(db.sql, id)).toEqual(['job.running', 'job.retrying', 'job.running', 'job.succeeded']);
  });

  test('an expired lease on the last attempt fails the job into dead_letters with its whole history', async () => {
    const queue = freshQueue();
    const earlier = [
      { attempt: 1, at: new Date().toISOString(), code: 'handler_error', message: 'first', worker: 'w1' },
      { attempt: 2, at: new Date().toISOString(), code: 'handler_error', message: 'second', worker: 'w1' },
    ];
    const id = await insertJob(db.sql, {
      kind: KIND,
      queue,
      payload: { n: 7 },
      status: 'running',
      attempts: 3,
      maxAttempts: 3,
      leaseOwner: 'crashed-worker',
      leaseExpiresAt: expired(),
      errors: earlier,
    });
    const report = await reclaimExpired(db.sql);
    expect(report.failed).toBeGreaterThanOrEqual(1);

    const row = await jobRow(db.sql, id);
    expect(row).toMatchObject({ status: 'failed', attempts: 3, rescues: 1, lease_token: null });
    expect(row.finished_at).toBeInstanceOf(Date);
    const [letter, ...more] = await deadLetters(db.sql, id);
    expect(more).toHaveLength(0);
    expect(letter).toMatchObject({
      kind: KIND,
      queue,
      payload: { n: 7 },
      attempts: 3,
      max_attempts: 3,
      last_error: 'lease expired: worker crashed-worker stopped heartbeating',
      requeued_at: null,
    });
    expect(letter!.errors).toEqual([...earlier, expect.objectContaining({ attempt: 3, code: 'lease_expired' })]);
    expect((await events(db.sql, id)).map((e) => e.type)).toEqual(['job.running', 'job.failed']);
  });

  test('an expired lease of a job whose cancellation was requested ends cancelled, not retried', async () => {
    const id = await insertJob(db.sql, {
      kind: KIND,
      queue: freshQueue(),
      status: 'running',
      attempts: 1,
      leaseExpiresAt: expired(),
      cancelRequestedAt: new Date(),
    });
    const report = await reclaimExpired(db.sql);
    expect(report.cancelled).toBeGreaterThanOrEqual(1);
    const row = await jobRow(db.sql, id);
    expect(row).toMatchObject({ status: 'cancelled', rescues: 1, lease_token: null });
    expect(row.finished_at).toBeInstanceOf(Date);
    expect((await events(db.sql, id)).map((e) => e.type)).toEqual(['job.running', 'job.cancelled']);
    expect(await deadLetters(db.sql, id)).toHaveLength(0);
  });

  test('leases that have not expired, and jobs not running, are left alone', async () => {
    const queue = freshQueue();
    const live = await insertJob(db.sql, { kind: KIND, queue, status: 'running', leaseExpiresAt: new Date(Date.now() + 60_000) });
    const others = await insertJobs(db.sql, [
      { kind: KIND, queue, status: 'queued', runAt: expired() },
      { kind: KIND, queue, status: 'succeeded', attempts: 1 },
      { kind: KIND, queue, status: 'failed', attempts: 3 },
    ]);
    const before = await db.sql`select id, status, updated_at, rescues from leasehold.jobs where queue = ${queue} order by id`;
    await reclaimExpired(db.sql);
    expect(await db.sql`select id, status, updated_at, rescues from leasehold.jobs where queue = ${queue} order by id`).toEqual(before);
    // Only the events of their inserts: the reclaimer wrote none.
    const inserted = ['job.running', 'job.queued', 'job.succeeded', 'job.failed'];
    for (const [i, id] of [live, ...others].entries()) expect(await eventTypes(db.sql, id)).toEqual([inserted[i]]);
  });

  test('many reclaimers at once take back each expired lease exactly once', async () => {
    const queue = freshQueue();
    // 1,500 stale leases (three statements' worth each): a third on their last attempt, a tenth cancelling.
    const n = 1_500;
    const ids = await insertJobs(
      db.sql,
      Array.from({ length: n }, (_, i) => ({
        kind: KIND,
        queue,
        status: 'running' as const,
        attempts: i % 3 === 0 ? 3 : 1,
        maxAttempts: 3,
        leaseExpiresAt: new Date(Date.now() - 1_000 - i),
        ...(i % 10 === 1 ? { cancelRequestedAt: new Date() } : {}),
      })),
    );
    const cancelling = ids.filter((_, i) => i % 10 === 1).length;
    const exhausted = ids.filter((_, i) => i % 3 === 0 && i % 10 !== 1).length;

    const reclaimers = Array.from({ length: 6 }, () => db.connect({ max: 1 }));
    const reports = await Promise.all(reclaimers.map((sql) => reclaimExpired(sql)));
    const total = (k: 'requeued' | 'failed' | 'cancelled') => reports.reduce((s, r) => s + r[k], 0);
    expect({ requeued: total('requeued'), failed: total('failed'), cancelled: total('cancelled') }).toEqual({
      requeued: n - cancelling - exhausted,
      failed: exhausted,
      cancelled: cancelling,
    });

    const [counts] = await db.sql<{ running: number; max_rescues: number; min_rescues: number; errors: number }[]>`
      select count(*) filter (where status = 'running')::int as running,
             max(rescues) as max_rescues, min(rescues) as min_rescues,
             max(jsonb_array_length(errors)) as errors
      from leasehold.jobs where queue = ${queue}`;
    expect(counts).toEqual({ running: 0, max_rescues: 1, min_rescues: 1, errors: 1 });
    const [ev] = await db.sql<{ events: number; jobs: number }[]>`
      select count(*)::int as events, count(distinct job_id)::int as jobs
      from leasehold.job_events where job_id = any(${ids}::uuid[])`;
    // One event per job from its insert, and exactly one from the reclaim.
    expect(ev).toEqual({ events: 2 * n, jobs: n });
    const [dl] = await db.sql<{ letters: number; jobs: number }[]>`
      select count(*)::int as letters, count(distinct job_id)::int as jobs
      from leasehold.dead_letters where job_id = any(${ids}::uuid[])`;
    expect(dl).toEqual({ letters: exhausted, jobs: exhausted });
  });
});
