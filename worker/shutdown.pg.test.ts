import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { JobAborted } from '#shared/jobs/job-errors.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { deferred, rejectOnAbort } from '../test/helpers/deferred.js';
import { WorkerPool, eventTypes, jobRow, queueFor } from '../test/helpers/engine.js';
import { insertJob } from '../test/helpers/job-factory.js';
import { waitFor } from '../test/helpers/wait.js';
import type { WorkerSettings } from './worker-settings.js';

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

const KIND = 'test.long';
let queueSeq = 0;
const freshQueue = () => `shutdown-${++queueSeq}`;

const settings = (queue: string, more: Partial<WorkerSettings> = {}): Partial<WorkerSettings> => ({
  queues: [{ name: queue }],
  pollMs: 50,
  heartbeatMs: 100,
  leaseMs: 3_000,
  reclaimMs: 60_000,
  shutdownGraceMs: 2_000,
  abortGraceMs: 200,
  ...more,
});

async function events(sql: Sql, id: string) {
  return sql<{ type: string; attempt: number; data: Record<string, unknown> | null }[]>`
    select type, attempt, data from leasehold.job_events where job_id = ${id} order by id`;
}

describe('Worker.stop()', () => {
  test('a job that finishes within shutdownGraceMs has its outcome written before stop() resolves', async () => {
    const queue = freshQueue();
    const gate = deferred();
    const started = deferred<AbortSignal>();
    const w = await pool.start({
      sql: db.sql,
      settings: settings(queue),
      handlers: { [KIND]: async (_p: unknown, ctx) => (started.resolve(ctx.signal), await gate.promise, { finished: true }) },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue });
    const signal = await started.promise;

    let stopped = false;
    const stopping = w.stop().then(() => (stopped = true));
    // stop() waits for the running handler rather than resolving or aborting it.
    await new Promise((r) => setTimeout(r, 150));
    expect(stopped).toBe(false);
    expect(signal.aborted).toBe(false);
    gate.resolve();
    await stopping;

    // No waiting: the outcome is already in the table when stop() resolves.
    expect(await jobRow(db.sql, id)).toMatchObject({ status: 'succeeded', result: { finished: true }, attempts: 1 });
    expect(signal.aborted).toBe(false);
    expect(await eventTypes(db.sql, id)).toEqual(['job.queued', 'job.running', 'job.succeeded']);
    const [me] = await db.sql`select stopped_at from leasehold.workers where id = ${w.id}`;
    expect(me!.stopped_at).toBeInstanceOf(Date);
  });

  test("a job still running after the grace period is aborted with 'shutdown' and handed back with its attempt returned", async () => {
    const queue = freshQueue();
    const started = deferred<AbortSignal>();
    // The job already used one attempt before this worker claimed it.
    const id = await insertJob(db.sql, { kind: KIND, queue, attempts: 1, maxAttempts: 3 });
    const w = await pool.start({
      sql: db.sql,
      settings: settings(queue, { shutdownGraceMs: 200 }),
      handlers: { [KIND]: async (_p: unknown, ctx) => (started.resolve(ctx.signal), await rejectOnAbort(ctx.signal)) },
    });
    const signal = await started.promise;
    expect(await jobRow(db.sql, id)).toMatchObject({ status: 'running', attempts: 2 });

    const t0 = Date.now();
    await w.stop();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(signal.reason).toBeInstanceOf(JobAborted);
    expect((signal.reason as JobAborted).reason).toBe('shutdown');

    const row = await jobRow(db.sql, id);
    expect(row).toMatchObject({
      status: 'queued',
      attempts: 1,
      lease_token: null,
      lease_expires_at: null,
      finished_at: null,
      errors: [],
      last_error: null,
    });
    expect(Date.now() - (row.run_at as Date).getTime()).toBeLessThan(5_000);
    const evs = await events(db.sql, id);
    expect(evs.map((e) => e.type)).toEqual(['job.queued', 'job.running', 'job.queued']);
    expect(evs[2]).toMatchObject({ attempt: 1, data: { reason: 'worker_shutdown' } });

    // Another worker takes it straight away, as its second attempt (not its third).
    const attempts: number[] = [];
    await pool.start({ sql: db.sql, settings: settings(queue), handlers: { [KIND]: (_p: unknown, ctx) => (attempts.push(ctx.attempt), 'ok') } });
    await waitFor(async () => (await jobRow(db.sql, id)).status === 'succeeded', 'the handed-back job to succeed');
    expect(attempts).toEqual([2]);
  });

  test('a handler that ignores the shutdown abort does not hold stop() past abortGraceMs; its job is handed back', async () => {
    const queue = freshQueue();
    const started = deferred();
    const w = await pool.start({
      sql: db.sql,
      settings: settings(queue, { shutdownGraceMs: 100, abortGraceMs: 100 }),
      handlers: { [KIND]: () => (started.resolve(), new Promise(() => {})) },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue });
    await started.promise;
    const t0 = Date.now();
    await w.stop();
    expect(Date.now() - t0).toBeLessThan(1_500);
    expect(await jobRow(db.sql, id)).toMatchObject({ status: 'queued', attempts: 0, lease_token: null });
  });

  test('prefetched jobs waiting in the buffer are handed back at once, untouched', async () => {
    const queue = freshQueue();
    const gate = deferred();
    const startedIds: string[] = [];
    const startedOne = deferred();
    const producer = queueFor(db.sql);
    const { ids } = await producer.enqueueMany([1, 2, 3].map((i) => ({ kind: KIND, queue, priority: i })));
    const w = await pool.start({
      sql: db.sql,
      // One runs; one more is claimed ahead (prefetch = min(batchSize, concurrency)); the third stays queued.
      settings: settings(queue, { concurrency: 1, batchSize: 1 }),
      handlers: { [KIND]: async (_p: unknown, ctx) => (startedIds.push(ctx.id), startedOne.resolve(), await gate.promise, 'done') },
    });
    await startedOne.promise;
    const [running, buffered, waiting] = ids as [string, string, string];
    await waitFor(async () => (await jobRow(db.sql, buffered)).status === 'running', 'the second job to be prefetched');

    const stopping = w.stop();
    // The buffered job goes back while the running one is still inside its grace period.
    const back = await waitFor(async () => {
      const r = await jobRow(db.sql, buffered);
      return r.status === 'queued' && r;
    }, 'the prefetched job to be handed back', 1_500);
    expect(back).toMatchObject({ attempts: 0, lease_token: null });
    expect((await jobRow(db.sql, running)).status).toBe('running');

    gate.resolve();
    await stopping;
    expect(startedIds).toEqual([running]);
    expect(await jobRow(db.sql, running)).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(await eventTypes(db.sql, buffered)).toEqual(['job.queued', 'job.running', 'job.queued']);
    expect(await jobRow(db.sql, waiting)).toMatchObject({ status: 'queued', attempts: 0 });
    expect(await eventTypes(db.sql, waiting)).toEqual(['job.queued']);
    expect(w.counters.handedBack).toBe(1);
  });

  test('stop() on an idle worker resolves promptly and claims nothing afterwards', async () => {
    const queue = freshQueue();
    const w = await pool.start({ sql: db.sql, settings: settings(queue), handlers: { [KIND]: () => 'ran' } });
    const t0 = Date.now();
    await w.stop();
    expect(Date.now() - t0).toBeLessThan(1_000);
    const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue });
    // Give a stopped worker the chance to misbehave (several poll intervals), then check it did not.
    await new Promise((r) => setTimeout(r, 300));
    expect(await jobRow(db.sql, id)).toMatchObject({ status: 'queued', attempts: 0 });
    expect(w.counters.claimed).toBe(0);
  });
});
