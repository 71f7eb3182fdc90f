import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { deferred, type Deferred } from '../test/helpers/deferred.js';
import { WorkerPool, jobRow, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';
import type { JobContext } from './handler.js';

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

const KIND = 'test.progressing';
let queueSeq = 0;
const freshQueue = () => `progress-${++queueSeq}`;

async function progressEvents(sql: Sql, id: string) {
  const rows = await sql<{ attempt: number; data: { progress: number; message: string | null } }[]>`
    select attempt, data from leasehold.job_events where job_id = ${id} and type = 'job.progress' order by id`;
  return rows.map((r) => ({ attempt: r.attempt, ...r.data }));
}

/** A handler driven step by step by the test: each step gets the context, then waits for the next gate. */
function stepper(steps: ((ctx: JobContext) => void)[]) {
  const gates: Deferred<void>[] = steps.map(() => deferred());
  const reached: Deferred<void>[] = steps.map(() => deferred());
  const handler = async (_p: unknown, ctx: JobContext) => {
    for (let i = 0; i < steps.length; i++) {
      steps[i]!(ctx);
      reached[i]!.resolve();
      await gates[i]!.promise;
    }
    return 'finished';
  };
  return { handler, gates, reached };
}

async function startWorker(queue: string, handler: (p: unknown, ctx: JobContext) => unknown) {
  return pool.start({
    sql: db.sql,
    settings: { queues: [{ name: queue }], pollMs: 50, heartbeatMs: 200, leaseMs: 3_000, shutdownGraceMs: 300, abortGraceMs: 100 },
    handlers: { [KIND]: handler },
  });
}

describe('ctx.progress', () => {
  test('writes progress and message to the job and one job.progress event per report', async () => {
    const queue = freshQueue();
    const { handler, gates, reached } = stepper([(ctx) => ctx.progress(30, 'downloading'), (ctx) => ctx.progress(70.5, 'thinking')]);
    await startWorker(queue, handler);
    const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue });

    await reached[0]!.promise;
    await waitFor(async () => (await jobRow(db.sql, id)).progress === 30, 'progress 30');
    expect(await jobRow(db.sql, id)).toMatchObject({ status: 'running', progress: 30, progress_message: 'downloading' });
    expect(await progressEvents(db.sql, id)).toEqual([{ attempt: 1, progress: 30, message: 'downloading' }]);

    gates[0]!.resolve();
    await reached[1]!.promise;
    await waitFor(async () => (await jobRow(db.sql, id)).progress === 70.5, 'progress 70.5');
    expect((await jobRow(db.sql, id)).progress_message).toBe('thinking');

    gates[1]!.resolve();
    const done = await waitFor(async () => {
      const r = await jobRow(db.sql, id);
      return r.status === 'succeeded' && r;
    }, 'the job to succeed');
    // Success sets 100; the last message stays.
    expect(done).toMatchObject({ progress: 100, progress_message: 'thinking', result: 'finished' });
    expect(await progressEvents(db.sql, id)).toEqual([
      { attempt: 1, progress: 30, message: 'downloading' },
      { attempt: 1, progress: 70.5, message: 'thinking' },
    ]);
    const types = (await db.sql<{ type: string }[]>`select type from leasehold.job_events where job_id = ${id} order by id`).map((r) => r.type);
    expect(types).toEqual(['job.queued', 'job.running', 'job.progress', 'job.progress', 'job.succeeded']);
  });

  test('reports in quick succession are coalesced into one write of the latest, clamped to 0–100', async () => {
    const queue = freshQueue();
    const { handler, gates, reached } = stepper([
      (ctx) => {
        ctx.progress(10, 'a');
        ctx.progress(20, 'b');
        ctx.progress(250, 'past the end');
      },
      (ctx) => ctx.progress(-5),
    ]);
    await startWorker(queue, handler);
    const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue });

    await reached[0]!.promise;
    await waitFor(async () => (await progressEvents(db.sql, id)).length === 1, 'the first progress write');
    expect(await jobRow(db.sql, id)).toMatchObject({ progress: 100, progress_message: 'past the end' });

    gates[0]!.resolve();
    await reached[1]!.promise;
    await waitFor(async () => (await progressEvents(db.sql, id)).length === 2, 'the second progress write');
    expect(await jobRow(db.sql, id)).toMatchObject({ progress: 0, progress_message: null });
    expect(await progressEvents(db.sql, id)).toEqual([
      { attempt: 1, progress: 100, message: 'past the end' },
      { attempt: 1, progress: 0, message: null },
    ]);
    gates[1]!.resolve();
  });

  test('progress is fenced by the lease token: a report from an attempt that lost its lease writes nothing', async () => {
    const queue = freshQueue();
    const reached = new Map<string, Deferred<void>>();
    const reachedFor = (id: string) => reached.get(id) ?? (reached.set(id, deferred()), reached.get(id)!);
    const report = deferred();
    const finish = deferred();
    await pool.start({
      sql: db.sql,
      // No heartbeat within the test: the worker still believes it holds both leases when it reports.
      settings: { queues: [{ name: queue }], concurrency: 2, pollMs: 50, heartbeatMs: 60_000, leaseMs: 120_000, shutdownGraceMs: 300 },
      handlers: {
        [KIND]: async (_p: unknown, ctx: JobContext) => {
          reachedFor(ctx.id).resolve();
          await report.promise;
          ctx.progress(55, 'reported by the worker');
          await finish.promise;
          return 'finished';
        },
      },
    });
    const { ids } = await queueFor(db.sql).enqueueMany([{ kind: KIND, queue }, { kind: KIND, queue }]);
    const [lost, kept] = ids as [string, string];
    await Promise.all([reachedFor(lost).promise, reachedFor(kept).promise]);
    // Someone else owns `lost` now (as after a reclaim and a new claim elsewhere).
    await db.sql`update leasehold.jobs set lease_token = gen_random_uuid(), lease_owner = 'other' where id = ${lost}`;

    // Both reports go out in one coalesced statement: the kept one lands, the lost one must not.
    report.resolve();
    await waitFor(async () => (await progressEvents(db.sql, kept)).length === 1, 'the progress of the job still held');
    expect(await jobRow(db.sql, kept)).toMatchObject({ progress: 55, progress_message: 'reported by the worker' });
    expect(await progressEvents(db.sql, lost)).toEqual([]);
    expect(await jobRow(db.sql, lost)).toMatchObject({ status: 'running', progress: null, progress_message: null, lease_owner: 'other' });
    finish.resolve();
  });
});
