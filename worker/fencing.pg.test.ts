import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { JobAborted, PermanentError } from '#shared/jobs/job-errors.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { deferred, rejectOnAbort } from '../test/helpers/deferred.js';
import { WorkerPool, eventTypes, jobRow, queueFor, testLog } from '../test/helpers/engine.js';
import { insertJobs } from '../test/helpers/job-factory.js';
import { waitFor } from '../test/helpers/wait.js';
import { claimsSettled, loseLease, zombieSettings } from '../test/helpers/zombie.js';
import { Completer, type FlushReport } from './completer.js';
import type { ClaimedJob, HeldJob } from './held-job.js';
import { startHeartbeat } from './heartbeat.js';

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

const KIND = 'test.fenced';
let queueSeq = 0;
/** A queue of the test's own, so no worker of another test claims its jobs. */
const freshQueue = () => `fencing-${++queueSeq}`;

async function succeededEvents(sql: Sql, id: string): Promise<number> {
  return (await eventTypes(sql, id)).filter((t) => t === 'job.succeeded').length;
}

/** A HeldJob as the worker keeps it, for a row the factory inserted (by default, its outcome being written). */
async function held(id: string, token: string, state: HeldJob['state'] = 'settling'): Promise<HeldJob> {
  const job = (await jobRow(db.sql, id)) as unknown as ClaimedJob;
  return { job, token, state, leaseDeadline: Date.now() + 60_000 };
}

describe('fencing: a worker whose lease was reclaimed cannot write', () => {
  test("a zombie's success is refused while the new owner still runs the job", async () => {
    const queue = freshQueue();
    const gateA = deferred();
    const gateB = deferred();
    const startedA = deferred();
    const startedB = deferred();
    // Enqueued before the zombie starts: its claim at start takes the job, and no NOTIFY of the
    // enqueue can wake it later (claimsSettled).
    const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue });
    const a = await pool.start({
      sql: db.sql,
      id: 'zombie-A',
      settings: zombieSettings(queue),
      handlers: { [KIND]: async () => (startedA.resolve(), await gateA.promise, { by: 'A' }) },
    });
    await startedA.promise;
    await claimsSettled(a);
    const claimedByA = await jobRow(db.sql, id);
    expect(claimedByA).toMatchObject({ status: 'running', lease_owner: 'zombie-A', attempts: 1 });

    await loseLease(db.sql, id);
    const b = await pool.start({
      sql: db.sql,
      id: 'owner-B',
      settings: { ...zombieSettings(queue), pollMs: 50 },
      handlers: { [KIND]: async () => (startedB.resolve(), await gateB.promise, { by: 'B' }) },
    });
    await startedB.promise;
    const claimedByB = await jobRow(db.sql, id);
    expect(claimedByB).toMatchObject({ status: 'running', lease_owner: 'owner-B', attempts: 2 });
    expect(claimedByB.lease_token).not.toBe(claimedByA.lease_token);

    // The zombie finishes first: its write must be refused, the job left to B.
    gateA.resolve();
    await waitFor(() => a.counters.fenced === 1, "the zombie's outcome to be fenced");
    expect(a.counters.succeeded).toBe(1);
    expect(await jobRow(db.sql, id)).toMatchObject({
      status: 'running',
      lease_owner: 'owner-B',
      lease_token: claimedByB.lease_token,
      result: null,
    });

    gateB.resolve();
    const done = await waitFor(async () => {
      const r = await jobRow(db.sql, id);
      return r.status === 'succeeded' && r;
    }, 'B to finish the job');
    expect(done.result).toEqual({ by: 'B' });
    expect(done.attempts).toBe(2);
    expect(b.counters.fenced).toBe(0);
    expect(await eventTypes(db.sql, id)).toEqual([
      'job.queued',
      'job.running',
      'job.retrying',
      'job.running',
      'job.succeeded',
    ]);
  });

  test.each([
    ['returns a result', async () => ({ by: 'A' })],
    ['throws', async () => Promise.reject(new Error('zombie failure'))],
    ['throws PermanentError', async () => Promise.reject(new PermanentError('zombie gives up'))],
  ])("a zombie that %s after the new owner finished leaves B's result alone", async (_what, finish) => {
    const queue = freshQueue();
    const gateA = deferred();
    const startedA = deferred();
    const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue, maxAttempts: 2 });
    const a = await pool.start({
      sql: db.sql,
      id: 'zombie-A',
      settings: zombieSettings(queue),
      handlers: { [KIND]: async () => (startedA.resolve(), await gateA.promise, finish()) },
    });
    await startedA.promise;
    await claimsSettled(a);
    await loseLease(db.sql, id);

    await pool.start({
      sql: db.sql,
      id: 'owner-B',
      settings: { ...zombieSettings(queue), pollMs: 50 },
      handlers: { [KIND]: () => ({ by: 'B' }) },
    });
    const finished = await waitFor(async () => {
      const r = await jobRow(db.sql, id);
      return r.status === 'succeeded' && r;
    }, 'B to finish the job');

    gateA.resolve();
    await waitFor(() => a.counters.fenced === 1, "the zombie's outcome to be fenced");
    const after = await jobRow(db.sql, id);
    expect(after).toMatchObject({ status: 'succeeded', result: { by: 'B' }, attempts: 2, last_error: finished.last_error });
    expect(after.errors).toEqual(finished.errors);
    expect(after.finished_at).toEqual(finished.finished_at);
    expect(await succeededEvents(db.sql, id)).toBe(1);
    expect(await eventTypes(db.sql, id)).toEqual([
      'job.queued',
      'job.running',
      'job.retrying',
      'job.running',
      'job.succeeded',
    ]);
    const letters = await db.sql`select 1 from leasehold.dead_letters where job_id = ${id}`;
    expect(letters).toHaveLength(0);
  });

  test("the heartbeat aborts the handler with 'lease_lost' once the lease is gone, and nothing is written", async () => {
    const queue = freshQueue();
    const started = deferred<AbortSignal>();
    const a = await pool.start({
      sql: db.sql,
      id: 'heartbeating-A',
      settings: { ...zombieSettings(queue), heartbeatMs: 50 },
      handlers: { [KIND]: async (_p: unknown, ctx) => (started.resolve(ctx.signal), await rejectOnAbort(ctx.signal)) },
    });
    // One attempt: the reclaimer fails the job for good. A requeued job could be claimed again by
    // this very worker the moment the abort frees its slot, and its new attempt would then race
    // the checks below.
    const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue, maxAttempts: 1 });
    const signal = await started.promise;
    expect(signal.aborted).toBe(false);

    await loseLease(db.sql, id);
    await waitFor(() => signal.aborted, 'the handler to be aborted');
    expect(signal.reason).toBeInstanceOf(JobAborted);
    expect((signal.reason as JobAborted).reason).toBe('lease_lost');
    await waitFor(() => a.running === 0, 'the aborted handler to end');
    expect(a.counters).toMatchObject({ leaseLost: 1, succeeded: 0, failed: 0, handedBack: 0 });

    // The reclaimer's record stands: the aborted attempt wrote no outcome of its own.
    const row = await jobRow(db.sql, id);
    expect(row).toMatchObject({ status: 'failed', attempts: 1, rescues: 1, lease_token: null, result: null });
    expect((row.errors as { code: string }[]).map((e) => e.code)).toEqual(['lease_expired']);
    expect(await eventTypes(db.sql, id)).toEqual(['job.queued', 'job.running', 'job.failed']);
  });

  test('a worker whose heartbeats cannot get through stops its handler before the lease expires in the database', async () => {
    const queue = freshQueue();
    const workerId = 'cut-off-A';
    // Every heartbeat of this worker fails (the statement also records the worker as alive).
    await db.sql.unsafe(`
      create or replace function public.test_fail_heartbeat() returns trigger language plpgsql as $$
      begin raise exception 'database unreachable (test)'; end $$`);
    await db.sql.unsafe(`
      create trigger test_fail_heartbeat before insert or update on leasehold.workers
      for each row when (new.id = '${workerId}') execute function public.test_fail_heartbeat()`);
    try {
      const { id } = await queueFor(db.sql).enqueue({ kind: KIND, queue });
      let abortedAt = 0;
      const started = deferred<AbortSignal>();
      await pool.start({
        sql: db.sql,
        id: workerId,
        // Lease 2 s: the worker must give up 200 ms early (leaseBudgetMs), whatever its heartbeat interval.
        settings: { ...zombieSettings(queue), leaseMs: 2_000, heartbeatMs: 1_400 },
        handlers: {
          [KIND]: async (_p: unknown, ctx) => {
            started.resolve(ctx.signal);
            ctx.signal.addEventListener('abort', () => (abortedAt = Date.now()));
            await rejectOnAbort(ctx.signal);
          },
        },
      });
      const signal = await started.promise;
      const claimed = await jobRow(db.sql, id);
      await waitFor(() => signal.aborted, 'the handler to be aborted', 15_000);
      expect((signal.reason as JobAborted).reason).toBe('lease_lost');
      // The handler stopped before the database would let the reclaimer hand the job to anyone else.
      expect(abortedAt).toBeLessThan((claimed.lease_expires_at as Date).getTime());
    } finally {
      await db.sql.unsafe(`drop trigger test_fail_heartbeat on leasehold.workers`);
    }
  });
});

describe('fencing: each outcome is checked against its own lease token', () => {
  test("a stale attempt's success written in one batch with a later claim's cannot complete the job that claim now holds", async () => {
    // The worker lost job X's lease (claim T1) while its success waited in the completer (a failed
    // write, say), then claimed X again together with Z (claim T2). The retried batch now carries
    // X under T1 and Z under T2: X must be refused, for T2 belongs to the new attempt.
    const [stale, fresh] = [randomUUID(), randomUUID()];
    const queue = freshQueue();
    const [x, z] = await insertJobs(db.sql, [
      { kind: KIND, queue, status: 'running', leaseOwner: 'A', leaseToken: fresh, attempts: 2 },
      { kind: KIND, queue, status: 'running', leaseOwner: 'A', leaseToken: fresh, attempts: 1 },
    ]);
    const completer = new Completer(db.sql, 'A', testLog, () => {});
    completer.push(await held(x!, stale), { type: 'success', result: { attempt: 'stale' } });
    completer.push(await held(z!, fresh), { type: 'success', result: { attempt: 'fresh' } });
    await completer.drain();
    expect(await jobRow(db.sql, z!)).toMatchObject({ status: 'succeeded', result: { attempt: 'fresh' } });
    expect(await jobRow(db.sql, x!)).toMatchObject({ status: 'running', lease_token: fresh, result: null });
  });

  // Pushed in id order (the common case, written without a sort) and in reverse.
  test.each(['ascending', 'descending'] as const)('in a batch of many claims pushed in %s id order, each success is checked against its own token only', async (order) => {
    const queue = freshQueue();
    const tokens = Array.from({ length: 60 }, () => randomUUID());
    const inserted = await insertJobs(db.sql, tokens.map((t) => ({ kind: KIND, queue, status: 'running' as const, leaseOwner: 'A', leaseToken: t })));
    const ids = [...inserted].sort();
    const tokenOf = new Map(inserted.map((id, i) => [id, tokens[i]!]));
    const reports: FlushReport[] = [];
    const completer = new Completer(db.sql, 'A', testLog, (_, report) => reports.push(report));
    const pushes = ids.map((id, i) => ({ id, i, token: tokenOf.get(id)! }));
    if (order === 'descending') pushes.reverse();
    // Every fifth under a token of another job of the batch. Pushed in one turn, so one batch.
    const helds = await Promise.all(pushes.map(({ id, i, token }) => held(id, i % 5 === 0 ? tokenOf.get(ids[(i + 1) % ids.length]!)! : token)));
    helds.forEach((h, k) => completer.push(h, { type: 'success', result: { i: pushes[k]!.i } }));
    await completer.drain();
    const rows = await db.sql<{ id: string; status: string; result: { i: number } | null }[]>`
      select id, status::text, result from leasehold.jobs where id = any(${ids}::uuid[])`;
    const byId = new Map(rows.map((r) => [r.id, r]));
    ids.forEach((id, i) => {
      if (i % 5 === 0) expect(byId.get(id)).toMatchObject({ status: 'running', result: null });
      else expect(byId.get(id)).toMatchObject({ status: 'succeeded', result: { i } });
    });
    expect(reports.reduce((n, r) => n + r.fenced, 0)).toBe(12);
    expect(reports.flatMap((r) => r.fencedJobs.map((j) => j.id)).sort()).toEqual(ids.filter((_, i) => i % 5 === 0).sort());
  });

  test('two successes for one job in a batch: the later claim\'s is written, the earlier one is refused', async () => {
    const [stale, fresh] = [randomUUID(), randomUUID()];
    const [x] = await insertJobs(db.sql, [{ kind: KIND, queue: freshQueue(), status: 'running', leaseOwner: 'A', leaseToken: fresh, attempts: 2 }]);
    const reports: FlushReport[] = [];
    const completer = new Completer(db.sql, 'A', testLog, (_, report) => reports.push(report));
    completer.push(await held(x!, stale), { type: 'success', result: { attempt: 'stale' } });
    completer.push(await held(x!, fresh), { type: 'success', result: { attempt: 'fresh' } });
    await completer.drain();
    expect(await jobRow(db.sql, x!)).toMatchObject({ status: 'succeeded', result: { attempt: 'fresh' } });
    expect(reports.reduce((n, r) => n + r.fenced, 0)).toBe(1);
    expect(reports.reduce((n, r) => n + r.written, 0)).toBe(1);
    expect(await succeededEvents(db.sql, x!)).toBe(1);
  });

  test('a stale failure written in one batch with a later claim cannot fail the job that claim now holds', async () => {
    const [stale, fresh] = [randomUUID(), randomUUID()];
    const queue = freshQueue();
    const [x, z] = await insertJobs(db.sql, [
      { kind: KIND, queue, status: 'running', leaseOwner: 'A', leaseToken: fresh, attempts: 3, maxAttempts: 3 },
      { kind: KIND, queue, status: 'running', leaseOwner: 'A', leaseToken: fresh, attempts: 3, maxAttempts: 3 },
    ]);
    const completer = new Completer(db.sql, 'A', testLog, () => {});
    completer.push(await held(x!, stale), { type: 'permanent', code: 'stale', message: 'stale attempt' });
    completer.push(await held(z!, fresh), { type: 'permanent', code: 'fresh', message: 'fresh attempt' });
    await completer.drain();
    expect(await jobRow(db.sql, z!)).toMatchObject({ status: 'failed', last_error: 'fresh attempt' });
    expect(await jobRow(db.sql, x!)).toMatchObject({ status: 'running', lease_token: fresh, last_error: null });
  });
});

describe('heartbeat: a missing lease means lost only for a job still running', () => {
  test('a job completed while the heartbeat ran is not reported lost; a running one whose lease went is', async () => {
    const queue = freshQueue();
    // Both rows already lost their leases by the time the heartbeat reads them: one because its
    // success was written meanwhile (the outcome was settling), one because it was reclaimed.
    const [completed, reclaimed] = await insertJobs(db.sql, [
      { kind: KIND, queue, status: 'succeeded' },
      { kind: KIND, queue, status: 'queued' },
    ]);
    const jobs = [await held(completed!, randomUUID(), 'settling'), await held(reclaimed!, randomUUID(), 'running')];
    const lost: string[] = [];
    const heartbeat = startHeartbeat({
      sql: db.sql,
      intervalMs: 60_000,
      leaseMs: 30_000,
      identity: { id: 'heartbeat-test', queues: [queue], kinds: [KIND], concurrency: 2 },
      log: testLog,
      held: () => jobs,
      onCancelRequested: () => {},
      onLeaseLost: (h) => lost.push(h.job.id),
    });
    await heartbeat.stop(); // waits for the first beat, sent at start
    expect(lost).toEqual([reclaimed]);
  });
});
