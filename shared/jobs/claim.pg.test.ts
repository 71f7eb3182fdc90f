import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { CLAIM_JOBS } from '#shared/jobs/queue-sql.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { WorkerPool, jobRow, queueFor } from '../../test/helpers/engine.js';
import { waitFor } from '../../test/helpers/wait.js';

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

/** Runs CLAIM_JOBS once for one queue, as a worker would. */
function claim(sql: Sql, queue: string, kinds: string[], limit: number, owner = 'claimer', token: string = randomUUID(), asyncCommit = true) {
  return sql.unsafe<{ id: string; priority: number; waited_ms: number; attempts: number }[]>(CLAIM_JOBS, [
    [queue],
    [limit],
    kinds,
    limit,
    owner,
    token,
    30_000,
    asyncCommit,
  ]);
}

describe('claim', () => {
  test('at 100,000 queued jobs the claim keeps one generic plan instead of being planned at every call', async () => {
    // The plan cache keeps a generic plan only while it costs about what a custom one does. A limit
    // the planner cannot know made the claim's cost grow with the queue's depth, and a deep queue
    // paid for planning (~0.4 ms) at every claim: 1.5–2× a single-job claim at 1,000,000 queued.
    await queueFor(db.sql).enqueueMany(Array.from({ length: 100_000 }, () => ({ kind: 'test.deep', queue: 'deep' })));
    await db.sql`analyze leasehold.jobs`;
    const conn = db.connect({ max: 1 });
    try {
      for (let i = 0; i < 10; i++) {
        const rows = await conn.unsafe(CLAIM_JOBS, [['deep'], [1], ['test.deep'], 1, 'deep', randomUUID(), 30_000, true], { prepare: true });
        expect(rows).toHaveLength(1);
      }
      const [plans] = await conn<{ generic: number; custom: number }[]>`
        select generic_plans::int as generic, custom_plans::int as custom from pg_prepared_statements where statement = ${CLAIM_JOBS}`;
      // Five custom plans first, as PostgreSQL always tries; the generic one from then on.
      expect(plans).toEqual({ generic: 5, custom: 5 });
    } finally {
      await conn.end();
    }
  });

  test('a claim commits without waiting for the WAL flush, and leaves the connection\'s setting alone', async () => {
    await queueFor(db.sql).enqueueMany([{ kind: 'test.async', queue: 'async', payload: {} }]);
    const conn = db.connect({ max: 1 });
    try {
      const inside = await conn.begin(async (tx) => {
        const rows = await claim(tx as unknown as Sql, 'async', ['test.async'], 1);
        expect(rows).toHaveLength(1);
        return (await tx<{ s: string }[]>`select current_setting('synchronous_commit') as s`)[0]!.s;
      });
      expect(inside).toBe('off');
      const [after] = await conn<{ s: string }[]>`select current_setting('synchronous_commit') as s`;
      expect(after!.s).toBe('on');
      // WORKER_ASYNC_CLAIMS=false: the claim keeps the connection's setting.
      await queueFor(db.sql).enqueueMany([{ kind: 'test.async', queue: 'async', payload: {} }]);
      const durable = await conn.begin(async (tx) => {
        expect(await claim(tx as unknown as Sql, 'async', ['test.async'], 1, 'claimer', randomUUID(), false)).toHaveLength(1);
        return (await tx<{ s: string }[]>`select current_setting('synchronous_commit') as s`)[0]!.s;
      });
      expect(durable).toBe('on');
    } finally {
      await conn.end();
    }
  });

  test('8 concurrent claimers never claim a job twice', async () => {
    const N = 2_000;
    const { ids } = await queueFor(db.sql).enqueueMany(
      Array.from({ length: N }, (_, i) => ({ kind: 'test.race', queue: 'race', payload: { i } })),
    );
    // One connection each, so the claims really run side by side in separate backends.
    const claimers = Array.from({ length: 8 }, () => db.connect({ max: 1 }));
    const claims: { owner: string; token: string; ids: string[] }[] = [];
    try {
      await Promise.all(
        claimers.map(async (sql, c) => {
          for (;;) {
            const token = randomUUID();
            const rows = await claim(sql, 'race', ['test.race'], 7, `claimer-${c}`, token);
            if (rows.length === 0) return;
            claims.push({ owner: `claimer-${c}`, token, ids: rows.map((r) => r.id) });
          }
        }),
      );
    } finally {
      await Promise.all(claimers.map((c) => c.end()));
    }

    const claimed = claims.flatMap((c) => c.ids);
    expect(claimed).toHaveLength(N);
    expect(new Set(claimed).size).toBe(N);
    expect(new Set(claimed)).toEqual(new Set(ids));
    // More than one claimer took part, or the test proved nothing about concurrency.
    expect(new Set(claims.map((c) => c.owner)).size).toBeGreaterThan(1);

    // The table agrees: each job is running under the lease of the one claim that returned it.
    const rows = await db.sql<{ id: string; status: string; attempts: number; lease_owner: string; lease_token: string }[]>`
      select id, status::text, attempts, lease_owner, lease_token from leasehold.jobs where queue = 'race'`;
    const byClaim = new Map(claims.flatMap((c) => c.ids.map((id) => [id, c] as const)));
    for (const r of rows) {
      expect(r.status).toBe('running');
      expect(r.attempts).toBe(1);
      expect(r.lease_owner).toBe(byClaim.get(r.id)!.owner);
      expect(r.lease_token).toBe(byClaim.get(r.id)!.token);
    }
    const [ev] = await db.sql<{ events: number; jobs: number }[]>`
      select count(*)::int as events, count(distinct e.job_id)::int as jobs
      from leasehold.job_events e join leasehold.jobs j on j.id = e.job_id
      where j.queue = 'race' and e.type = 'job.running'`;
    expect(ev).toEqual({ events: N, jobs: N });
  });

  test('claims in priority order, then run_at; a future run_at is not claimed', async () => {
    const now = Date.now();
    const at = (s: number) => new Date(now + s * 1_000);
    const q = queueFor(db.sql);
    const jobs = [
      { name: 'p5-early', priority: 5, runAt: at(-30) },
      { name: 'p1-late', priority: 1, runAt: at(-10) },
      { name: 'p100-earliest', priority: 100, runAt: at(-60) },
      { name: 'p1-early', priority: 1, runAt: at(-20) },
      { name: 'p5-late', priority: 5, runAt: at(-5) },
      { name: 'p0-future', priority: 0, runAt: at(3_600) },
    ];
    const { ids } = await q.enqueueMany(jobs.map((j) => ({ kind: 'test.order', queue: 'order', priority: j.priority, runAt: j.runAt })));
    const nameOf = new Map(ids.map((id, i) => [id, jobs[i]!.name]));

    const order: string[] = [];
    for (;;) {
      const rows = await claim(db.sql, 'order', ['test.order'], 1);
      if (rows.length === 0) break;
      order.push(nameOf.get(rows[0]!.id)!);
    }
    expect(order).toEqual(['p1-early', 'p1-late', 'p5-early', 'p5-late', 'p100-earliest']);

    // A batch claim returns them in the same order too.
    const batch = await q.enqueueMany(jobs.slice(0, 5).map((j) => ({ kind: 'test.order', queue: 'order2', priority: j.priority, runAt: j.runAt })));
    const names2 = new Map(batch.ids.map((id, i) => [id, jobs[i]!.name]));
    const rows = await claim(db.sql, 'order2', ['test.order'], 10);
    expect(rows.map((r) => names2.get(r.id))).toEqual(['p1-early', 'p1-late', 'p5-early', 'p5-late', 'p100-earliest']);

    // Whatever plan the update takes: an index scan of jobs_pkey over the picked ids returns them
    // in id (insertion) order, which must not leak into the order a batch is handed out in.
    const forced = await q.enqueueMany(jobs.slice(0, 5).map((j) => ({ kind: 'test.order', queue: 'order3', priority: j.priority, runAt: j.runAt })));
    const names3 = new Map(forced.ids.map((id, i) => [id, jobs[i]!.name]));
    // (On a small table the update reads jobs_claim_idx in claim order; without it, jobs_pkey.)
    const rows3 = await db.sql.begin(async (tx) => {
      await tx`drop index leasehold.jobs_claim_idx`;
      const rows = await claim(tx as unknown as Sql, 'order3', ['test.order'], 10);
      throw Object.assign(new Error('rollback'), { rows });
    }).catch((err: Error & { rows?: { id: string }[] }) => err.rows ?? Promise.reject(err));
    expect(rows3.map((r) => names3.get(r.id))).toEqual(['p1-early', 'p1-late', 'p5-early', 'p5-late', 'p100-earliest']);

    const future = await jobRow(db.sql, ids[5]!);
    expect(future.status).toBe('queued');
    expect(future.attempts).toBe(0);
  });

  test('claims only the kinds asked for', async () => {
    const q = queueFor(db.sql);
    const { ids } = await q.enqueueMany([
      { kind: 'test.kind-a', queue: 'kinds' },
      { kind: 'test.kind-b', queue: 'kinds', priority: 1 },
      { kind: 'test.kind-a', queue: 'kinds' },
    ]);
    const rows = await claim(db.sql, 'kinds', ['test.kind-a'], 10);
    expect(rows.map((r) => r.id).sort()).toEqual([ids[0], ids[2]].sort());
    expect((await jobRow(db.sql, ids[1]!)).status).toBe('queued');

    // A worker is no different: it leaves a kind it has no handler for queued.
    const ran: string[] = [];
    await pool.start({
      sql: db.sql,
      settings: { pollMs: 50 },
      handlers: { 'test.kind-c': (_p: unknown, ctx) => void ran.push(ctx.id) },
    });
    const more = await q.enqueueMany([
      { kind: 'test.kind-b', queue: 'kinds2', priority: 1 },
      { kind: 'test.kind-c', queue: 'kinds2' },
    ]);
    await waitFor(async () => (await jobRow(db.sql, more.ids[1]!)).status === 'succeeded', 'the handled kind to run');
    expect(ran).toEqual([more.ids[1]]);
    const unhandled = await jobRow(db.sql, more.ids[0]!);
    expect(unhandled.status).toBe('queued');
    expect(unhandled.attempts).toBe(0);
  });

  test('a worker skips a paused queue and resumes it', async () => {
    const q = queueFor(db.sql);
    await db.sql`insert into leasehold.queues (name, paused_at) values ('paused', now())`;
    const held = await q.enqueue({ kind: 'test.pause', queue: 'paused' });
    const ran: string[] = [];
    await pool.start({
      sql: db.sql,
      settings: { pollMs: 50 },
      handlers: { 'test.pause': (_p: unknown, ctx) => void ran.push(ctx.id) },
    });
    // Both queues are served by one worker with queues=all; the paused job is older and so would
    // come first in any claim that did not skip its queue.
    const open = await q.enqueue({ kind: 'test.pause', queue: 'open' });
    await waitFor(async () => (await jobRow(db.sql, open.id)).status === 'succeeded', 'the open queue to run');
    const later = await q.enqueue({ kind: 'test.pause', queue: 'paused' });
    const open2 = await q.enqueue({ kind: 'test.pause', queue: 'open' });
    await waitFor(async () => (await jobRow(db.sql, open2.id)).status === 'succeeded', 'the open queue to run again');
    expect(ran).toEqual([open.id, open2.id]);
    for (const id of [held.id, later.id]) {
      const row = await jobRow(db.sql, id);
      expect(row.status).toBe('queued');
      expect(row.attempts).toBe(0);
    }

    await db.sql`update leasehold.queues set paused_at = null where name = 'paused'`;
    await waitFor(async () => {
      const [r] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from leasehold.jobs where id in (${held.id}, ${later.id}) and status = 'succeeded'`;
      return r!.n === 2;
    }, 'the resumed queue to run');
  });

  test('pause_queue stops a running worker at its next claim and resume_queue wakes it, no poll needed', async () => {
    const q = queueFor(db.sql);
    const ran: string[] = [];
    await pool.start({
      sql: db.sql,
      // An hour: only the claim's own pause check and resume's NOTIFY can explain what follows.
      settings: { pollMs: 3_600_000 },
      handlers: { 'test.live-pause': (_p: unknown, ctx) => void ran.push(ctx.id) },
    });
    const first = await q.enqueue({ kind: 'test.live-pause', queue: 'live-pause' });
    await waitFor(() => ran.includes(first.id), 'the queue to run before the pause');

    await db.sql`select leasehold.pause_queue('live-pause')`;
    // The worker still lists the queue as open; these enqueues NOTIFY it, and it claims.
    const during = await q.enqueueMany([1, 2, 3].map(() => ({ kind: 'test.live-pause', queue: 'live-pause' })));
    const other = await q.enqueue({ kind: 'test.live-pause', queue: 'live-open' });
    await waitFor(() => ran.includes(other.id), 'a job of another queue, enqueued after them, to run');
    for (const id of during.ids) expect((await jobRow(db.sql, id)).status).toBe('queued');

    expect((await db.sql`select leasehold.resume_queue('live-pause') as resumed`)[0]!.resumed).toBe(true);
    await waitFor(() => during.ids.every((id) => ran.includes(id)), 'the resumed queue to run', 15_000);
    expect((await db.sql`select leasehold.resume_queue('live-pause') as resumed`)[0]!.resumed).toBe(false);
  });

  test('per-queue concurrency caps running jobs in that queue only', async () => {
    const current = new Map<string, number>();
    const max = new Map<string, number>();
    await pool.start({
      sql: db.sql,
      settings: { concurrency: 10, pollMs: 50, queues: [{ name: 'narrow', concurrency: 2 }, { name: 'wide' }] },
      handlers: {
        'test.slot': async (_p: unknown, ctx) => {
          const n = (current.get(ctx.queue) ?? 0) + 1;
          current.set(ctx.queue, n);
          max.set(ctx.queue, Math.max(max.get(ctx.queue) ?? 0, n));
          // Hold the slot long enough for the worker to try to start everything it has claimed.
          await sleep(40);
          current.set(ctx.queue, current.get(ctx.queue)! - 1);
        },
      },
    });
    const { ids } = await queueFor(db.sql).enqueueMany([
      ...Array.from({ length: 12 }, () => ({ kind: 'test.slot', queue: 'narrow' })),
      ...Array.from({ length: 12 }, () => ({ kind: 'test.slot', queue: 'wide' })),
    ]);
    await waitFor(async () => {
      const [r] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from leasehold.jobs where id = any(${ids}::uuid[]) and status = 'succeeded'`;
      return r!.n === ids.length;
    }, 'every job to succeed');
    expect(max.get('narrow')).toBe(2);
    // The cap is the narrow queue's own: the other queue used more of the worker at once.
    expect(max.get('wide')).toBeGreaterThan(2);
    expect(max.get('wide')).toBeLessThanOrEqual(10);
  });

  // Regression: a claim that skipped a full queue and found the others empty counted as "drained",
  // so the full queue's next jobs waited for the poll once its slot opened.
  test('a queue left out of a claim for lack of room is claimed again when a slot opens, not at the poll', async () => {
    await db.sql`insert into leasehold.queues (name) values ('idle') on conflict do nothing`;
    const ran: string[] = [];
    await pool.start({
      sql: db.sql,
      settings: { concurrency: 10, pollMs: 3_600_000, queues: [{ name: 'capped', concurrency: 1 }, { name: 'idle' }] },
      handlers: { 'test.capped': (_p: unknown, ctx) => void ran.push(ctx.id) },
    });
    const { ids } = await queueFor(db.sql).enqueueMany(Array.from({ length: 6 }, () => ({ kind: 'test.capped', queue: 'capped' })));
    await waitFor(() => ran.length === 6, 'all six jobs to run with the poll an hour away', 15_000);
    expect(ran).toEqual(ids);
  });
});
