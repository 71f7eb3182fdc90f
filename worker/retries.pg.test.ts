import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import type { RetryPolicy } from '#shared/jobs/backoff.js';
import { JobAborted, PermanentError, RetryError } from '#shared/jobs/job-errors.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { rejectOnAbort } from '../test/helpers/deferred.js';
import { WorkerPool, eventTypes, jobRow, queueFor } from '../test/helpers/engine.js';
import { insertJob } from '../test/helpers/job-factory.js';
import { waitFor } from '../test/helpers/wait.js';
import type { WorkerOptions } from './worker-settings.js';

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

let queueSeq = 0;
const freshQueue = () => `retries-${++queueSeq}`;
/** Retries almost at once: for tests about what happens on retry, not when. */
const FAST: RetryPolicy = { initialMs: 20, factor: 2, maxMs: 10_000, jitter: 0 };
/** Steps far enough apart that scheduling latency under load cannot blur them: 400 ms, 800 ms. */
const SPACED: RetryPolicy = { initialMs: 400, factor: 2, maxMs: 10_000, jitter: 0 };
/** The default-like schedule: a retry by backoff would not come within the test. */
const SLOW: RetryPolicy = { initialMs: 60_000, factor: 2, maxMs: 600_000, jitter: 0 };

function startWorker(queue: string, opts: Pick<WorkerOptions, 'handlers' | 'kinds'> & { concurrency?: number }) {
  return pool.start({
    sql: db.sql,
    handlers: opts.handlers,
    kinds: opts.kinds,
    settings: {
      queues: [{ name: queue }],
      concurrency: opts.concurrency ?? 4,
      pollMs: 50,
      heartbeatMs: 200,
      leaseMs: 3_000,
      reclaimMs: 500,
      shutdownGraceMs: 300,
      abortGraceMs: 100,
    },
  });
}

async function until(sql: Sql, id: string, status: string, timeoutMs = 5_000) {
  return waitFor(
    async () => {
      const r = await jobRow(sql, id);
      return r.status === status && r;
    },
    `job ${id} to be ${status}`,
    timeoutMs,
  );
}

async function events(sql: Sql, id: string) {
  return sql<{ type: string; attempt: number; data: Record<string, unknown> | null }[]>`
    select type, attempt, data from leasehold.job_events where job_id = ${id} order by id`;
}

/** The run_at each job.retrying event announced, in ms. */
async function retryTimes(sql: Sql, id: string): Promise<number[]> {
  return (await events(sql, id)).filter((e) => e.type === 'job.retrying').map((e) => Date.parse(String(e.data!.run_at)));
}

async function deadLetters(sql: Sql, id: string) {
  return sql`select * from leasehold.dead_letters where job_id = ${id} order by failed_at`;
}

describe('retries', () => {
  test("a throwing handler is retried on the kind's backoff schedule, then dead-lettered with every error", async () => {
    const queue = freshQueue();
    const startedAt: number[] = [];
    const thrownAt: number[] = [];
    await startWorker(queue, {
      kinds: { 'test.flaky': { retry: SPACED } },
      handlers: {
        'test.flaky': (_p: unknown, ctx) => {
          startedAt[ctx.attempt] = Date.now();
          thrownAt[ctx.attempt] = Date.now();
          throw new Error(`boom ${ctx.attempt}`);
        },
      },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.flaky', queue, maxAttempts: 3 });
    const row = await until(db.sql, id, 'failed');

    const [retry1, retry2] = await retryTimes(db.sql, id);
    // Attempt n fails → run_at = failure + initialMs · factor^(n-1): 400 ms, then 800 ms, where the
    // failure is taken somewhere between the throw and the recorded error's `at` (its write).
    const [at1, at2] = (row.errors as { at: string }[]).map((e) => Date.parse(e.at));
    expect(retry1! - 400).toBeGreaterThanOrEqual(thrownAt[1]!);
    expect(retry1! - 400).toBeLessThanOrEqual(at1!);
    expect(retry2! - 800).toBeGreaterThanOrEqual(thrownAt[2]!);
    expect(retry2! - 800).toBeLessThanOrEqual(at2!);
    // No attempt started before its run_at.
    expect(startedAt[2]).toBeGreaterThanOrEqual(retry1! - 1);
    expect(startedAt[3]).toBeGreaterThanOrEqual(retry2! - 1);

    expect(row).toMatchObject({ attempts: 3, last_error: 'boom 3', lease_token: null });
    expect(row.finished_at).toBeInstanceOf(Date);
    expect(await eventTypes(db.sql, id)).toEqual([
      'job.queued',
      'job.running',
      'job.retrying',
      'job.running',
      'job.retrying',
      'job.running',
      'job.failed',
    ]);
    const letters = await deadLetters(db.sql, id);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ kind: 'test.flaky', queue, attempts: 3, max_attempts: 3, last_error: 'boom 3' });
    expect(letters[0]!.errors).toEqual([1, 2, 3].map((n) =>
      expect.objectContaining({ attempt: n, code: 'handler_error', message: `boom ${n}`, stack: expect.stringContaining(`boom ${n}`) }),
    ));
  });

  test('a kind without a policy of its own retries on the default schedule: about a minute first', async () => {
    const queue = freshQueue();
    let thrownAt = 0;
    await startWorker(queue, {
      handlers: { 'test.default-policy': () => ((thrownAt = Date.now()), Promise.reject(new Error('once'))) },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.default-policy', queue });
    const [retryAt] = await waitFor(async () => {
      const times = await retryTimes(db.sql, id);
      return times.length === 1 && times;
    }, 'the job.retrying event');
    const row = await jobRow(db.sql, id);
    const at = Date.parse((row.errors as { at: string }[])[0]!.at);
    // DEFAULT_RETRY: 60 s ± 20 % jitter after the failure (between the throw and the error's write).
    expect(retryAt! - thrownAt).toBeGreaterThanOrEqual(48_000);
    expect(retryAt! - at).toBeLessThanOrEqual(72_000);
    expect(row).toMatchObject({ status: 'queued', attempts: 1, last_error: 'once', finished_at: null });
  });

  test('PermanentError fails the job at once, attempts left or not, into dead_letters with the whole history', async () => {
    const queue = freshQueue();
    let calls = 0;
    await startWorker(queue, {
      kinds: { 'test.doomed': { retry: FAST } },
      handlers: {
        'test.doomed': (_p: unknown, ctx) => {
          calls++;
          if (ctx.attempt === 1) throw new Error('transient');
          throw new PermanentError('the input can never work', 'bad_input');
        },
      },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.doomed', queue, maxAttempts: 5 });
    const row = await until(db.sql, id, 'failed');
    expect(row).toMatchObject({ attempts: 2, max_attempts: 5, last_error: 'the input can never work' });
    expect(calls).toBe(2);
    expect(await eventTypes(db.sql, id)).toEqual(['job.queued', 'job.running', 'job.retrying', 'job.running', 'job.failed']);
    const letters = await deadLetters(db.sql, id);
    expect(letters).toHaveLength(1);
    expect(letters[0]!.errors).toEqual([
      expect.objectContaining({ attempt: 1, code: 'handler_error', message: 'transient' }),
      expect.objectContaining({ attempt: 2, code: 'bad_input', message: 'the input can never work' }),
    ]);
  });

  test('the history keeps every failure, the ten latest with their stacks; long messages, stacks and codes are cut', async () => {
    const queue = freshQueue();
    const long = 'x'.repeat(5_000);
    await startWorker(queue, {
      kinds: { 'test.chatty': { retry: { ...FAST, initialMs: 5, factor: 1 } } },
      handlers: {
        'test.chatty': (_p: unknown, ctx) => {
          if (ctx.attempt < 12) throw new Error(`failure ${ctx.attempt}`);
          const e = new PermanentError(`${ctx.attempt}: ${long}`, 'c'.repeat(500));
          e.stack = `Error: ${long}`;
          throw e;
        },
      },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.chatty', queue, maxAttempts: 12 });
    const row = await until(db.sql, id, 'failed', 30_000);
    const errors = row.errors as { attempt: number; code: string; message: string; stack?: string }[];
    expect(errors.map((e) => e.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(errors.map((e) => 'stack' in e)).toEqual([false, false, ...Array<boolean>(10).fill(true)]);
    expect(errors[0]).toMatchObject({ code: 'handler_error', message: 'failure 1' });
    expect(errors[2]!.stack).toContain('failure 3');
    const last = errors[11]!;
    expect([last.message.length, last.stack!.length, last.code.length]).toEqual([2_000, 2_000, 100]);
    expect(last.message).toMatch(/^12: x+…$/);
    expect(row.last_error).toBe(last.message);
    const [letter] = await deadLetters(db.sql, id);
    expect(letter!.errors).toEqual(errors);
  });

  test.each([
    ['afterMs', () => new RetryError('rate limited', { afterMs: 300 })],
    ['at', () => new RetryError('rate limited', { at: new Date(Date.now() + 300) })],
  ])('RetryError({%s}) sets the next run_at instead of the backoff schedule', async (_how, makeError) => {
    const queue = freshQueue();
    const startedAt: number[] = [];
    let thrownAt = 0;
    await startWorker(queue, {
      kinds: { 'test.snooze': { retry: SLOW } },
      handlers: {
        'test.snooze': (_p: unknown, ctx) => {
          startedAt[ctx.attempt] = Date.now();
          if (ctx.attempt > 1) return 'done';
          thrownAt = Date.now();
          throw makeError();
        },
      },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.snooze', queue });
    const row = await until(db.sql, id, 'succeeded');
    const [retryAt] = await retryTimes(db.sql, id);
    // The error's time, not the kind's minute-long backoff: 300 ms after the throw.
    const at = Date.parse((row.errors as { at: string }[])[0]!.at);
    expect(retryAt! - 300).toBeGreaterThanOrEqual(thrownAt);
    expect(retryAt! - 300).toBeLessThanOrEqual(at);
    expect(startedAt[2]).toBeGreaterThanOrEqual(retryAt! - 1);
    expect(row).toMatchObject({ attempts: 2, result: 'done', last_error: 'rate limited' });
    expect(row.errors).toEqual([expect.objectContaining({ attempt: 1, code: 'retry', message: 'rate limited' })]);
  });

  test("a handler past its kind's timeout is aborted with reason 'timeout' and retried", async () => {
    const queue = freshQueue();
    const reasons: unknown[] = [];
    let startedAt = 0;
    let abortedAt = 0;
    await startWorker(queue, {
      kinds: { 'test.slow': { timeoutMs: 150, retry: FAST } },
      handlers: {
        'test.slow': async (_p: unknown, ctx) => {
          if (ctx.attempt > 1) return 'fast enough';
          startedAt = Date.now();
          ctx.signal.addEventListener('abort', () => ((abortedAt = Date.now()), reasons.push(ctx.signal.reason)));
          return rejectOnAbort(ctx.signal);
        },
      },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.slow', queue });
    const row = await until(db.sql, id, 'succeeded');
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(JobAborted);
    expect((reasons[0] as JobAborted).reason).toBe('timeout');
    expect(abortedAt - startedAt).toBeGreaterThanOrEqual(140);
    expect(row).toMatchObject({ attempts: 2, result: 'fast enough' });
    expect(row.errors).toEqual([expect.objectContaining({ attempt: 1, code: 'timeout', message: 'timed out after 150 ms' })]);
  });

  test('a handler that ignores its timeout still gives its slot back and the job is retried', async () => {
    const queue = freshQueue();
    await startWorker(queue, {
      concurrency: 1,
      kinds: { 'test.stuck': { timeoutMs: 100, retry: FAST } },
      handlers: {
        // The first attempt never settles and never looks at its signal.
        'test.stuck': (_p: unknown, ctx) => (ctx.attempt === 1 ? new Promise(() => {}) : 'unstuck'),
      },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.stuck', queue });
    const row = await until(db.sql, id, 'succeeded');
    expect(row).toMatchObject({ attempts: 2, result: 'unstuck' });
    expect(row.errors).toEqual([expect.objectContaining({ attempt: 1, code: 'timeout' })]);
  });

  test('an invalid payload of a registered kind fails permanently without running the handler', async () => {
    const queue = freshQueue();
    let calls = 0;
    await startWorker(queue, { handlers: { 'system.sleep': () => void calls++ } });
    // Inserted behind the API's back (enqueue validates): the worker validates again.
    const id = await insertJob(db.sql, { kind: 'system.sleep', queue, payload: { ms: 'soon' }, maxAttempts: 3 });
    const row = await until(db.sql, id, 'failed');
    expect(calls).toBe(0);
    expect(row.attempts).toBe(1);
    expect(row.last_error).toMatch(/^invalid payload/);
    expect(row.errors).toEqual([expect.objectContaining({ attempt: 1, code: 'invalid_payload' })]);
    expect(await deadLetters(db.sql, id)).toHaveLength(1);
  });
});

describe('requeue after a terminal failure', () => {
  test('requeue_dead_letter gives the job a fresh attempt budget, and it then succeeds', async () => {
    const queue = freshQueue();
    let calls = 0;
    await startWorker(queue, {
      kinds: { 'test.recovers': { retry: FAST } },
      handlers: {
        // Fails three times in a row, then works: more failures than one budget of two allows.
        'test.recovers': () => {
          if (++calls <= 3) throw new Error(`failure ${calls}`);
          return { call: calls };
        },
      },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.recovers', queue, maxAttempts: 2 });
    await until(db.sql, id, 'failed');
    const [letter] = await deadLetters(db.sql, id);
    expect(letter).toMatchObject({ attempts: 2, requeued_at: null });

    const requeue = async () =>
      (await db.sql<{ job: string | null }[]>`select leasehold.requeue_dead_letter(${letter!.id}::uuid) as job`)[0]!.job;
    expect(await requeue()).toBe(id);
    // A second requeue of the same dead letter does nothing.
    expect(await requeue()).toBeNull();

    const row = await until(db.sql, id, 'succeeded');
    // Third call failed and was retried (attempt 1 of the new budget), the fourth succeeded.
    expect(calls).toBe(4);
    expect(row).toMatchObject({ attempts: 2, result: { call: 4 } });
    expect((row.errors as { message: string }[]).map((e) => e.message)).toEqual(['failure 1', 'failure 2', 'failure 3']);
    const letters = await deadLetters(db.sql, id);
    expect(letters).toHaveLength(1);
    expect(letters[0]!.requeued_at).toBeInstanceOf(Date);
    const evs = await events(db.sql, id);
    expect(evs.map((e) => `${e.type}#${e.attempt}`)).toEqual([
      'job.queued#0',
      'job.running#1',
      'job.retrying#1',
      'job.running#2',
      'job.failed#2',
      'job.queued#0',
      'job.running#1',
      'job.retrying#1',
      'job.running#2',
      'job.succeeded#2',
    ]);
    expect(evs[5]!.data).toEqual({ reason: 'requeue', by: expect.any(String), dead_letter_id: letter!.id });
  });

  test('retry_job requeues a failed or cancelled job at once, and refuses one that is not', async () => {
    const queue = freshQueue();
    const [failed, cancelled, succeeded] = await Promise.all([
      insertJob(db.sql, { kind: 'test.retried', queue, status: 'failed', attempts: 3, maxAttempts: 3, runAt: new Date(Date.now() - 60_000) }),
      insertJob(db.sql, { kind: 'test.retried', queue, status: 'cancelled', attempts: 1, cancelRequestedAt: new Date() }),
      insertJob(db.sql, { kind: 'test.retried', queue, status: 'succeeded', attempts: 1 }),
    ]);
    const retry = async (id: string) =>
      (await db.sql<{ ok: boolean }[]>`select leasehold.retry_job(${id}::uuid) as ok`)[0]!.ok;
    expect(await retry(succeeded)).toBe(false);
    expect(await retry('00000000-0000-7000-8000-000000000000')).toBe(false);
    expect(await retry(failed)).toBe(true);
    expect(await retry(cancelled)).toBe(true);
    expect(await retry(failed)).toBe(false);
    expect(await jobRow(db.sql, failed)).toMatchObject({ status: 'queued', attempts: 0, finished_at: null });
    expect(await jobRow(db.sql, cancelled)).toMatchObject({ status: 'queued', attempts: 0, cancel_requested_at: null });

    const attempts: number[] = [];
    await startWorker(queue, { handlers: { 'test.retried': (_p: unknown, ctx) => (attempts.push(ctx.attempt), 'again') } });
    for (const id of [failed, cancelled]) expect(await until(db.sql, id, 'succeeded')).toMatchObject({ attempts: 1, result: 'again' });
    expect(attempts).toEqual([1, 1]);
    expect((await jobRow(db.sql, succeeded)).status).toBe('succeeded');
  });
});
