import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { JobAborted } from '#shared/jobs/job-errors.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { deferred, rejectOnAbort } from '../test/helpers/deferred.js';
import { WorkerPool, eventTypes, jobRow, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';
import type { WorkerSettings } from './worker-settings.js';

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

const KIND = 'test.cancellable';
let queueSeq = 0;
const freshQueue = () => `cancel-${++queueSeq}`;

/** No heartbeat falls inside a test: a cancellation that arrives can only have come by NOTIFY. */
const settings = (queue: string): Partial<WorkerSettings> => ({
  queues: [{ name: queue }],
  pollMs: 50,
  heartbeatMs: 60_000,
  leaseMs: 120_000,
  reclaimMs: 60_000,
  shutdownGraceMs: 300,
  abortGraceMs: 100,
});

async function cancel(sql: Sql, id: string): Promise<string | null> {
  const [row] = await sql<{ status: string | null }[]>`select leasehold.cancel_job(${id}::uuid)::text as status`;
  return row!.status;
}

async function until(sql: Sql, id: string, status: string) {
  return waitFor(async () => {
    const r = await jobRow(sql, id);
    return r.status === status && r;
  }, `job ${id} to be ${status}`, 5_000);
}

async function deadLetterCount(sql: Sql, id: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from leasehold.dead_letters where job_id = ${id}`;
  return row!.n;
}

describe('cancellation', () => {
  test('a queued job is cancelled at once and never runs', async () => {
    const queue = freshQueue();
    const producer = queueFor(db.sql);
    const { id } = await producer.enqueue({ kind: KIND, queue, priority: 1 });
    expect(await cancel(db.sql, id)).toBe('cancelled');
    const row = await jobRow(db.sql, id);
    expect(row).toMatchObject({ status: 'cancelled', attempts: 0, lease_token: null });
    expect(row.finished_at).toBeInstanceOf(Date);
    expect(row.cancel_requested_at).toBeInstanceOf(Date);
    expect(await eventTypes(db.sql, id)).toEqual(['job.queued', 'job.cancelled']);

    // A worker then drains the queue: it runs the job behind it, never the cancelled one.
    const ran: string[] = [];
    await pool.start({ sql: db.sql, settings: settings(queue), handlers: { [KIND]: (_p: unknown, ctx) => void ran.push(ctx.id) } });
    const { id: later } = await producer.enqueue({ kind: KIND, queue, priority: 200 });
    await until(db.sql, later, 'succeeded');
    expect(ran).toEqual([later]);
    expect(await cancel(db.sql, id)).toBe('cancelled');
    expect(await eventTypes(db.sql, id)).toEqual(['job.queued', 'job.cancelled']);
  });

  test("cancel_job on a running job aborts its handler through NOTIFY and the job ends 'cancelled'", async () => {
    const queue = freshQueue();
    const started = deferred<AbortSignal>();
    await pool.start({
      sql: db.sql,
      settings: settings(queue),
      handlers: { [KIND]: async (_p: unknown, ctx) => (started.resolve(ctx.signal), await rejectOnAbort(ctx.signal)) },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue, maxAttempts: 3 });
    const signal = await started.promise;
    const t0 = Date.now();
    expect(await cancel(db.sql, id)).toBe('running');
    await waitFor(() => signal.aborted, 'the handler to be aborted', 2_000);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(signal.reason).toBeInstanceOf(JobAborted);
    expect((signal.reason as JobAborted).reason).toBe('cancelled');

    const row = await until(db.sql, id, 'cancelled');
    expect(row).toMatchObject({ attempts: 1, lease_token: null });
    expect(row.finished_at).toBeInstanceOf(Date);
    expect(row.errors).toEqual([expect.objectContaining({ attempt: 1, code: 'cancelled' })]);
    expect(await eventTypes(db.sql, id)).toEqual(['job.queued', 'job.running', 'job.cancelled']);
    // Cancelled is not failed: attempts were left, and nothing went to the dead letters.
    expect(await deadLetterCount(db.sql, id)).toBe(0);
  });

  test('a cancellation whose NOTIFY was missed reaches the handler with the next heartbeat', async () => {
    const queue = freshQueue();
    const started = deferred<AbortSignal>();
    await pool.start({
      sql: db.sql,
      settings: { ...settings(queue), heartbeatMs: 100 },
      handlers: { [KIND]: async (_p: unknown, ctx) => (started.resolve(ctx.signal), await rejectOnAbort(ctx.signal)) },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue });
    const signal = await started.promise;
    // What cancel_job writes, without its NOTIFY.
    await db.sql`update leasehold.jobs set cancel_requested_at = now() where id = ${id}`;
    await waitFor(() => signal.aborted, 'the heartbeat to abort the handler', 3_000);
    expect((signal.reason as JobAborted).reason).toBe('cancelled');
    await until(db.sql, id, 'cancelled');
    expect(await eventTypes(db.sql, id)).toEqual(['job.queued', 'job.running', 'job.cancelled']);
  });

  test('a handler that ignores cancellation is cut loose after abortGraceMs; the job still ends cancelled', async () => {
    const queue = freshQueue();
    const started = deferred();
    const w = await pool.start({
      sql: db.sql,
      settings: { ...settings(queue), concurrency: 1 },
      handlers: { [KIND]: () => (started.resolve(), new Promise(() => {})) },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue });
    await started.promise;
    expect(await cancel(db.sql, id)).toBe('running');
    await until(db.sql, id, 'cancelled');
    expect(w.running).toBe(0);
    expect(await eventTypes(db.sql, id)).toEqual(['job.queued', 'job.running', 'job.cancelled']);
  });

  test('cancel_job leaves finished jobs alone and answers null for an unknown id', async () => {
    const queue = freshQueue();
    await pool.start({ sql: db.sql, settings: settings(queue), handlers: { [KIND]: () => 'done' } });
    const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue });
    await until(db.sql, id, 'succeeded');
    expect(await cancel(db.sql, id)).toBe('succeeded');
    expect(await jobRow(db.sql, id)).toMatchObject({ status: 'succeeded', result: 'done', cancel_requested_at: null });
    expect(await cancel(db.sql, '00000000-0000-7000-8000-000000000000')).toBeNull();
  });
});
