import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { CLAIM_JOBS } from '#shared/jobs/queue-sql.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, jobRow, queueFor } from '../test/helpers/engine.js';
import { interceptUnsafe } from '../test/helpers/intercept-unsafe.js';
import { waitFor } from '../test/helpers/wait.js';

// An idle worker serving every queue claimed from all of them on each wake-up: with 1,000 queues
// (the default MAX_QUEUES) each such claim took p50 5.4–5.8 ms, against 0.6–0.8 for one queue.

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

/** The pool, recording the queue list of every claim sent through it; each statement runs as sent. */
function recordingClaims(sql: Sql): { sql: Sql; claims: string[][] } {
  const claims: string[][] = [];
  const recording = interceptUnsafe(sql, (text, params, run) => {
    if (text === CLAIM_JOBS) claims.push([...(params![0] as string[])]);
    return run();
  });
  return { sql: recording, claims };
}

/** Lets the claims of a worker's start (its first claim, and the one its LISTEN's set-up asks for) go by. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

const statusOf = async (id: string) => (await jobRow(db.sql, id)).status as string;

/** How many of the jobs `ids` are in `status`. */
const countIn = async (ids: string[], status: string) =>
  (await db.sql`select 1 from leasehold.jobs where id = any(${ids}) and status = ${status}::leasehold.job_status`).length;

test('a wake-up makes an idle worker claim from the queue it names; a job that came without one waits for the poll', async () => {
  const names = Array.from({ length: 300 }, (_, i) => `wake-${i}`);
  await db.sql`insert into leasehold.queues (name) select unnest(${names}::text[]) on conflict do nothing`;
  const { sql, claims } = recordingClaims(db.sql);
  const pollMs = 4_000;
  const startedAt = Date.now();
  await pool.start({ sql, settings: { queues: 'all', pollMs } });
  // The first claim, at start, looks at every queue.
  await waitFor(() => claims.length >= 1, 'the first claim');
  expect(claims[0]!.length).toBeGreaterThanOrEqual(300);
  await settle();
  const before = claims.length;

  // A plain INSERT sends no wake-up; the producer's job does, naming its queue.
  const [quiet] = await db.sql<{ id: string }[]>`insert into leasehold.jobs (kind, queue) values ('system.noop', 'wake-7') returning id`;
  const { id: woken } = await queueFor(db.sql).enqueue({ kind: 'system.noop', queue: 'wake-200' });
  await waitFor(async () => (await statusOf(woken)) === 'succeeded', 'the announced job to run');
  expect(claims[before]).toEqual(['wake-200']);
  // Asserted only while the poll is still ahead: on a very slow machine it may already have run.
  if (Date.now() - startedAt < pollMs - 500) expect(await statusOf(quiet!.id)).toBe('queued');

  // The poll looks at every queue again and finds it.
  await waitFor(async () => (await statusOf(quiet!.id)) === 'succeeded', 'the poll to run the quiet job', pollMs + 5_000);
  expect(claims.slice(before + 1).some((c) => c.length >= 300)).toBe(true);
});

test('jobs for two queues in one statement: each wake-up claims its own queue, and no claim looks at others', async () => {
  // Queues the worker knows from its start: a wake-up for a queue it does not know yet makes it
  // read the queue list again and claim from every queue.
  await db.sql`insert into leasehold.queues (name) values ('together-a'), ('together-b') on conflict do nothing`;
  const { sql, claims } = recordingClaims(db.sql);
  await pool.start({ sql, settings: { queues: 'all', pollMs: 60_000 } });
  await waitFor(() => claims.length >= 1, 'the first claim');
  await settle();
  const producer = queueFor(db.sql);
  const before = claims.length;

  const { ids } = await producer.enqueueMany([
    { kind: 'system.noop', queue: 'together-a' },
    { kind: 'system.noop', queue: 'together-b' },
  ]);
  await waitFor(async () => (await countIn(ids, 'succeeded')) === 2, 'both jobs');
  const after = claims.slice(before);
  expect(new Set(after.flat())).toEqual(new Set(['together-a', 'together-b']));
});

test("a worker with its own list of queues sends nothing when other queues' jobs wake it", async () => {
  const { sql, claims } = recordingClaims(db.sql);
  await pool.start({ sql, settings: { queues: [{ name: 'mine' }], pollMs: 60_000 } });
  await waitFor(() => claims.length >= 1, 'the first claim');
  await settle();
  const before = claims.length;
  const producer = queueFor(db.sql);
  for (let i = 0; i < 5; i++) await producer.enqueue({ kind: 'system.noop', queue: 'theirs' });
  await settle();
  expect(claims.length).toBe(before);

  // Its own queue's wake-up still claims at once.
  const { id } = await producer.enqueue({ kind: 'system.noop', queue: 'mine' });
  await waitFor(async () => (await statusOf(id)) === 'succeeded', 'its own job');
  expect(claims.slice(before)).toEqual([['mine']]);
});

test('a queue left out for lack of room is claimed again when its slot frees, whatever wake-ups came between', async () => {
  await pool.start({ sql: db.sql, settings: { queues: [{ name: 'capped', concurrency: 1 }, { name: 'open' }], concurrency: 2, pollMs: 60_000 } });
  const producer = queueFor(db.sql);
  const { ids } = await producer.enqueueMany(Array.from({ length: 6 }, () => ({ kind: 'system.sleep' as const, payload: { ms: 400 }, queue: 'capped' })));
  await waitFor(async () => (await countIn(ids, 'running')) > 0, 'the capped queue to be at its cap');
  // Past the claim that found 'capped' without room and every other queue empty: the worker idles.
  await new Promise((resolve) => setTimeout(resolve, 150));
  // A wake-up for the other queue now, while 'capped' waits for its slot.
  const { id } = await producer.enqueue({ kind: 'system.noop', queue: 'open' });
  await waitFor(async () => (await statusOf(id)) === 'succeeded', "the other queue's job");
  // Every capped job runs, one after the other, long before the poll.
  await waitFor(async () => (await countIn(ids, 'succeeded')) === 6, 'every capped job', 10_000);
});

/** `n` queued no-op jobs in `queue`, inserted as plain SQL: no wake-up announces them. */
const insertQuiet = async (queue: string, n: number): Promise<string[]> =>
  (await db.sql<{ id: string }[]>`
    insert into leasehold.jobs (kind, queue) select 'system.noop', ${queue} from generate_series(1, ${n}::int)
    returning id`).map((r) => r.id);

test("a backlog's claims lead with the busy queue, so they stop before the empty ones", async () => {
  const names = Array.from({ length: 300 }, (_, i) => `backlog-empty-${i}`);
  await db.sql`insert into leasehold.queues (name) select unnest(${names}::text[]) on conflict do nothing`;
  const ids = await insertQuiet('backlog-busy', 400);
  const { sql, claims } = recordingClaims(db.sql);
  // One job a claim: 400 jobs take hundreds of claims, every one of them behind a full one.
  await pool.start({ sql, settings: { queues: 'all', concurrency: 1, batchSize: 1, pollMs: 60_000 } });
  await waitFor(async () => (await countIn(ids, 'succeeded')) === 400, 'the backlog to drain', 20_000);

  const full = claims.slice(1).filter((c) => c.length > 300);
  expect(full.length).toBeGreaterThan(100);
  // Plain rotation would put the busy queue first in one claim of 301; a backlog's plans put it
  // first in seven of every eight (the eighth leads with the other queues).
  const leading = full.filter((c) => c[0] === 'backlog-busy').length;
  expect(leading / full.length).toBeGreaterThan(0.8);
});

test('a backlog of one queue does not starve a quiet queue whose job no wake-up announced', async () => {
  const names = Array.from({ length: 50 }, (_, i) => `starve-empty-${i}`);
  await db.sql`insert into leasehold.queues (name) select unnest(${[...names, 'starve-quiet']}::text[]) on conflict do nothing`;
  const busy = await insertQuiet('starve-busy', 1_000);
  // Claims of one row, so the busy queue alone fills each (a queue without room for more would
  // send the claim on to the others).
  await pool.start({ sql: db.sql, settings: { queues: 'all', concurrency: 10, batchSize: 1, pollMs: 60_000 } });
  // The backlog is under way, its claims led by the busy queue, when the quiet job arrives.
  await waitFor(async () => (await countIn(busy, 'succeeded')) >= 20, 'the backlog to start');
  const [quiet] = await insertQuiet('starve-quiet', 1);
  await waitFor(async () => (await statusOf(quiet!)) === 'succeeded', 'the quiet job', 20_000);
  // Found by the backlog claims that lead with the other queues (every eighth), not once the
  // backlog drained (some 980 jobs later), nor by the poll a minute away.
  const [row] = await db.sql<{ between: number }[]>`
    select count(*)::int as between from leasehold.jobs b, leasehold.jobs q
    where b.id = any(${busy}) and q.id = ${quiet!} and b.started_at > q.created_at and b.started_at < q.started_at`;
  expect(row!.between).toBeLessThan(300);
});

test('two busy queues take turns at the front of a backlog\'s claims', async () => {
  const a = await insertQuiet('turns-a', 200);
  const b = await insertQuiet('turns-b', 200);
  await pool.start({ sql: db.sql, settings: { queues: 'all', concurrency: 10, batchSize: 1, pollMs: 60_000 } });
  await waitFor(async () => (await countIn([...a, ...b], 'succeeded')) === 400, 'both backlogs', 20_000);
  // Of the first 100 jobs started, each queue had a fair share; served in one fixed order, one
  // queue would have had them all.
  const first = await db.sql<{ queue: string }[]>`
    select queue from leasehold.jobs where id = any(${[...a, ...b]}) order by started_at, id limit 100`;
  const fromA = first.filter((r) => r.queue === 'turns-a').length;
  expect(fromA).toBeGreaterThan(25);
  expect(fromA).toBeLessThan(75);
});
