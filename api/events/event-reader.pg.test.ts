import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { Notifier } from '#shared/jobs/notifier.js';
import { JobQueue } from '#shared/jobs/queue.js';
import { PREPARED } from '#shared/jobs/queue-sql.js';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { deferred } from '../../test/helpers/deferred.js';
import { testLog } from '../../test/helpers/engine.js';
import { waitFor } from '../../test/helpers/wait.js';
import { EventReader, type EventBatch } from './event-reader.js';
import { EVENT_STATEMENTS } from './event-sql.js';

let db: TestDatabase;
let other: Sql;
const readers: EventReader[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  other = db.connect({ max: 2 });
  // The insert trigger registers new queue names: with the queue known, an open writer's insert
  // does not make the next one wait on that unique key.
  await db.sql`insert into leasehold.queues (name) values ('default') on conflict do nothing`;
});
afterEach(async () => {
  await Promise.all(readers.splice(0).map((r) => r.stop()));
});
afterAll(() => db?.drop());

/** A reader that records what it delivers; the poll is an hour away unless asked. */
async function reader(gapTimeoutMs: number): Promise<{ r: EventReader; delivered: number[]; late: number[] }> {
  const delivered: number[] = [];
  const late: number[] = [];
  const r = new EventReader({
    sql: db.sql,
    log: testLog,
    pollMs: 3_600_000,
    gapTimeoutMs,
    onBatch: async (b: EventBatch) => {
      delivered.push(...b.rows.map((e) => e.id));
      late.push(...b.late.map((e) => e.id));
    },
  });
  await r.start();
  readers.push(r);
  return { r, delivered, late };
}

/** Inserts one job (its trigger writes the event) through `sql`; returns the event id. */
async function insertJob(sql: Sql): Promise<number> {
  await sql`insert into leasehold.jobs (id, kind) values (${uuidv7()}, 'test.gap')`;
  const [e] = await sql<{ id: number }[]>`select max(id)::float8 as id from leasehold.job_events`;
  return e!.id;
}

/**
 * Opens a transaction on `other` that inserts a job (taking an event id) and stays open until
 * `finish` says commit or rollback.
 */
async function openWriter(): Promise<{ eventId: number; finish(how: 'commit' | 'rollback'): Promise<void> }> {
  const taken = deferred<number>();
  const end = deferred<'commit' | 'rollback'>();
  const tx = other
    .begin(async (t) => {
      await t`insert into leasehold.jobs (id, kind) values (${uuidv7()}, 'test.gap')`;
      const [e] = await t<{ id: number }[]>`select max(id)::float8 as id from leasehold.job_events`;
      taken.resolve(e!.id);
      if ((await end.promise) === 'rollback') throw new Error('rolled back on purpose');
    })
    .catch((err: Error) => {
      if (err.message !== 'rolled back on purpose') throw err;
    });
  const eventId = await taken.promise;
  return {
    eventId,
    async finish(how) {
      end.resolve(how);
      await tx;
    },
  };
}

describe('EventReader: ids that commit out of order', () => {
  test('every statement prepares against the real schema', async () => {
    for (const [name, text] of Object.entries(EVENT_STATEMENTS)) {
      await expect(db.sql.unsafe(text, [], PREPARED).describe(), name).resolves.toBeDefined();
    }
  });

  test('a lower id still open holds the higher ones back, then both go out in id order', async () => {
    const { r, delivered } = await reader(60_000);
    const open = await openWriter();
    const after = await insertJob(db.sql);
    expect(after).toBeGreaterThan(open.eventId);
    r.wake();
    // The later id is committed and visible, but must wait for the open one below it.
    await new Promise((res) => setTimeout(res, 300));
    expect(delivered).toEqual([]);
    await open.finish('commit');
    r.wake();
    await waitFor(() => delivered.length === 2, 'both events');
    expect(delivered).toEqual([open.eventId, after]);
  });

  test('a rolled-back id is skipped for good once its transaction is over', async () => {
    const { r, delivered } = await reader(60_000);
    const open = await openWriter();
    const after = await insertJob(db.sql);
    r.wake();
    await new Promise((res) => setTimeout(res, 200));
    expect(delivered).toEqual([]);
    await open.finish('rollback');
    // No NOTIFY comes from a rollback: the reader's own short re-read while holding finds it.
    await waitFor(() => delivered.length === 1, 'the later event');
    expect(delivered).toEqual([after]);
    expect(r.cursor).toBeGreaterThanOrEqual(after);
  });

  test('a hole older than the gap timeout is passed, and its event is delivered late when it commits', async () => {
    const { r, delivered, late } = await reader(300);
    const open = await openWriter();
    const after = await insertJob(db.sql);
    r.wake();
    await waitFor(() => delivered.includes(after), 'the later event, once the hole timed out', 15_000);
    expect(delivered).not.toContain(open.eventId);
    expect(r.isWatched(open.eventId)).toBe(true);
    await open.finish('commit');
    r.wake();
    await waitFor(() => late.includes(open.eventId), 'the late event');
    expect(r.isWatched(open.eventId)).toBe(false);
    expect(delivered).toEqual([after]);
  });

  test('an id left open when the reader starts is watched and delivered when it commits', async () => {
    const open = await openWriter();
    const after = await insertJob(db.sql);
    const { r, delivered, late } = await reader(60_000);
    expect(r.cursor).toBeGreaterThanOrEqual(after);
    expect(r.isWatched(open.eventId)).toBe(true);
    await open.finish('commit');
    r.wake();
    await waitFor(() => late.includes(open.eventId), 'the event committed after start');
    expect(delivered).toEqual([]);
  });
});

describe('EventReader: wake-ups', () => {
  test("a new job's event arrives on the producer's wake-up for workers, whichever way it was enqueued, with no poll", async () => {
    const { delivered } = await reader(60_000);
    const queue = new JobQueue(db.sql, new Notifier(db.sql));
    const eventOf = async (jobId: string) =>
      (await db.sql<{ id: number }[]>`select id::float8 as id from leasehold.job_events where job_id = ${jobId}`)[0]!.id;
    // Well inside the listener check (10 s), whose probe would wake the reader anyway.
    const arrives = (jobId: string, how: string) => eventOf(jobId).then((id) => waitFor(() => delivered.includes(id), how, 3_000));

    // The INSERT that carries its own NOTIFY (nothing else of this producer is waking).
    await arrives((await queue.enqueue({ kind: 'test.wake' })).id, 'the inline wake-up');
    // A chunked insert in a transaction, then the coalesced wake-up after its commit.
    const many = Array.from({ length: 1_500 }, () => ({ kind: 'test.wake' }));
    await arrives((await queue.enqueueMany(many)).ids.at(-1)!, 'the wake-up after commit');
    // Inside the caller's transaction: the NOTIFY commits with it.
    const inTx = await db.sql.begin((tx) => queue.enqueueInTransaction(tx, [{ kind: 'test.wake' }]));
    await arrives(inTx.ids[0]!, "the wake-up in the caller's transaction");
  });
});
