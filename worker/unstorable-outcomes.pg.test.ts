import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { PermanentError } from '#shared/jobs/job-errors.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';

// A handler's result, error or progress message reaches PostgreSQL in statements that write a
// whole batch of jobs: one string it cannot store (U+0000, an unpaired surrogate) failed the whole
// batch, and the completer retried it for ever while every job in it stayed running.
let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

const statuses = async (ids: string[]) =>
  db.sql<{ id: string; status: string; result: unknown; last_error: string | null; progress_message: string | null }[]>`
    select id, status, result, last_error, progress_message from leasehold.jobs where id = any(${ids}::uuid[]) order by id`;

describe('text PostgreSQL cannot store, from handlers', () => {
  test('a result with U+0000 and an unpaired surrogate is written with U+FFFD, and the jobs beside it succeed', async () => {
    const queue = 'unstorable-results';
    await pool.start({
      sql: db.sql,
      settings: { queues: [{ name: queue }], concurrency: 10, pollMs: 50 },
      handlers: {
        'test.nul': () => ({ text: 'a\u0000b', lone: 'x\ud800y', pair: '\u{1F600}', ['k\u0000']: 1 }),
        'test.ok': () => ({ ok: true }),
      },
    });
    const { ids } = await queueFor(db.sql).enqueueMany([
      { kind: 'test.nul', queue },
      ...Array.from({ length: 5 }, () => ({ kind: 'test.ok', queue })),
    ]);
    await waitFor(async () => (await statuses(ids)).every((r) => r.status === 'succeeded'), 'every job to succeed');
    const [nul] = (await statuses(ids)).filter((r) => r.id === ids[0]);
    expect(nul!.result).toEqual({ text: 'a\uFFFDb', lone: 'x\uFFFDy', pair: '\u{1F600}', ['k\uFFFD']: 1 });
  });

  test('an error message with U+0000 fails its job (written with U+FFFD), and the jobs beside it fail too', async () => {
    const queue = 'unstorable-errors';
    await pool.start({
      sql: db.sql,
      settings: { queues: [{ name: queue }], concurrency: 10, pollMs: 50 },
      handlers: {
        'test.bad': () => {
          throw new PermanentError('broken\u0000input \udc00');
        },
        'test.also-bad': () => {
          throw new PermanentError('plain failure');
        },
      },
    });
    const { ids } = await queueFor(db.sql).enqueueMany([
      { kind: 'test.bad', queue },
      ...Array.from({ length: 3 }, () => ({ kind: 'test.also-bad', queue })),
    ]);
    await waitFor(async () => (await statuses(ids)).every((r) => r.status === 'failed'), 'every job to fail for good');
    const [bad] = (await statuses(ids)).filter((r) => r.id === ids[0]);
    expect(bad!.last_error).toBe('broken\uFFFDinput \uFFFD');
    const [dl] = await db.sql<{ last_error: string }[]>`select last_error from leasehold.dead_letters where job_id = ${ids[0]!}`;
    expect(dl!.last_error).toBe('broken\uFFFDinput \uFFFD');
  });

  test("a progress message with U+0000 is written with U+FFFD, and another job's progress in the same batch is kept", async () => {
    const queue = 'unstorable-progress';
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await pool.start({
      sql: db.sql,
      settings: { queues: [{ name: queue }], concurrency: 10, pollMs: 50 },
      handlers: {
        'test.progress': async (p: { nul: boolean }, ctx) => {
          ctx.progress(40, p.nul ? 'step\u0000one' : 'step two');
          await gate;
          return null;
        },
      },
    });
    const { ids } = await queueFor(db.sql).enqueueMany([
      { kind: 'test.progress', queue, payload: { nul: true } },
      { kind: 'test.progress', queue, payload: { nul: false } },
    ]);
    await waitFor(async () => (await statuses(ids)).every((r) => r.progress_message !== null), 'both progress messages');
    const rows = await statuses(ids);
    expect(Object.fromEntries(rows.map((r) => [r.id, r.progress_message]))).toEqual({ [ids[0]!]: 'step\uFFFDone', [ids[1]!]: 'step two' });
    release();
  });

  test('a result JSON cannot hold (a BigInt, a cycle) fails that job for good, and the jobs beside it succeed', async () => {
    const queue = 'unserialisable-results';
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    await pool.start({
      sql: db.sql,
      settings: { queues: [{ name: queue }], concurrency: 10, pollMs: 50 },
      handlers: {
        'test.bigint': () => ({ n: 1n }),
        'test.cycle': async () => cycle,
        'test.ok': () => ({ ok: true }),
      },
    });
    const { ids } = await queueFor(db.sql).enqueueMany([
      { kind: 'test.bigint', queue },
      { kind: 'test.cycle', queue },
      ...Array.from({ length: 3 }, () => ({ kind: 'test.ok', queue })),
    ]);
    await waitFor(async () => (await statuses(ids)).every((r) => r.status === 'succeeded' || r.status === 'failed'), 'every job to end');
    const byId = new Map((await statuses(ids)).map((r) => [r.id, r]));
    for (const id of ids.slice(0, 2)) {
      expect(byId.get(id)).toMatchObject({ status: 'failed', last_error: expect.stringContaining('cannot be stored as JSON') });
    }
    for (const id of ids.slice(2)) expect(byId.get(id)).toMatchObject({ status: 'succeeded', result: { ok: true } });
  });
});
