import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { deferred } from '../test/helpers/deferred.js';
import { WorkerPool, queueFor } from '../test/helpers/engine.js';
import { insertJob } from '../test/helpers/job-factory.js';
import { waitFor } from '../test/helpers/wait.js';

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterAll(async () => {
  await pool.stopAll();
  await db.drop();
});

test('queue_summary: live depth per queue and kind, the oldest ready wait, and outcomes of the last minute and hour', async () => {
  const q = queueFor(db.sql);
  // Real outcomes first: a worker succeeds 6 jobs and fails 2 for good in queue "sum".
  await pool.start({
    sql: db.sql,
    handlers: { 'test.ok': () => 'ok', 'test.bad': () => { throw new Error('nope'); } },
    kinds: { 'test.bad': { maxAttempts: 1 } },
    settings: { queues: [{ name: 'sum' }], pollMs: 50, heartbeatMs: 200, leaseMs: 5_000 },
  });
  const done = await q.enqueueMany([
    ...Array.from({ length: 6 }, () => ({ kind: 'test.ok', queue: 'sum' })),
    ...Array.from({ length: 2 }, () => ({ kind: 'test.bad', queue: 'sum', maxAttempts: 1 })),
  ]);
  await waitFor(async () => {
    const [r] = await db.sql`select count(*)::int as n from leasehold.jobs where id = any(${done.ids}::uuid[]) and status in ('succeeded', 'failed')`;
    return r!.n === 8;
  }, 'eight outcomes');
  await pool.stopAll();
  // Then depth: ready, scheduled and running rows in queue "sum", and an event from two hours ago
  // that the last hour must not count.
  await insertJob(db.sql, { kind: 'test.ok', queue: 'sum', runAt: new Date(Date.now() - 90_000) });
  await insertJob(db.sql, { kind: 'test.ok', queue: 'sum' });
  await insertJob(db.sql, { kind: 'test.ok', queue: 'sum', runAt: new Date(Date.now() + 60_000) });
  await insertJob(db.sql, { kind: 'test.ok', queue: 'sum', status: 'running' });
  const old = await insertJob(db.sql, { kind: 'test.ok', queue: 'sum', status: 'succeeded' });
  await db.sql`update leasehold.job_events set created_at = now() - interval '2 hours' where job_id = ${old}`;
  // The back-dated event has the highest id, as a long transaction's event would: it must neither count
  // nor hide the hour before it from the id search.
  await db.sql`select leasehold.pause_queue('sum')`;

  const rows = await db.sql`select * from leasehold.queue_summary where queue = 'sum' order by kind`;
  expect(rows).toEqual([
    expect.objectContaining({
      queue: 'sum', kind: 'test.bad', paused: true, ready: 0, scheduled: 0, running: 0,
      succeeded_1h: 0, failed_1h: 2, failed_1m: 2, failure_rate_1h: '1.0000',
    }),
    expect.objectContaining({
      queue: 'sum', kind: 'test.ok', paused: true, ready: 2, scheduled: 1, running: 1,
      succeeded_1m: 6, succeeded_1h: 6, failed_1h: 0, per_s_1m: '0.10', failure_rate_1h: '0.0000',
    }),
  ]);
  // The oldest ready job has waited about 90 s.
  const [age] = await db.sql`select extract(epoch from oldest_ready_age)::int as s from leasehold.queue_summary where queue = 'sum' and kind = 'test.ok'`;
  expect(age!.s).toBeGreaterThanOrEqual(89);
  expect(age!.s).toBeLessThan(150);
});

test('job_event_id_at finds the first event at or after a moment by binary search', async () => {
  const [{ before, after, max }] = await db.sql`
    select leasehold.job_event_id_at(now() - interval '1 day') as before,
           leasehold.job_event_id_at(now() + interval '1 day') as after,
           (select max(id) from leasehold.job_events) as max`;
  const [{ min }] = await db.sql`select min(id) as min from leasehold.job_events`;
  expect([before, after]).toEqual([min, String(BigInt(max) + 1n)]);
  expect(before).not.toBe(after);
  // Spread events over an hour: the boundary is the first one at or after the moment asked for.
  await db.sql`update leasehold.job_events set created_at = now() - make_interval(secs => (${max}::bigint - id) * 10)`;
  const [{ found, expected }] = await db.sql`
    select leasehold.job_event_id_at(now() - interval '95 seconds') as found,
           (select min(id) from leasehold.job_events where created_at >= now() - interval '95 seconds') as expected`;
  expect(found).toBe(expected);
});

test('active_leases: holder, claim age from its job.running event, heartbeat and expiry; stuck_jobs: leases past expiry', async () => {
  const q = queueFor(db.sql);
  const gate = deferred();
  const w = await pool.start({
    sql: db.sql,
    handlers: { 'test.hold': () => gate.promise },
    settings: { queues: [{ name: 'leases' }], pollMs: 50, heartbeatMs: 200, leaseMs: 5_000 },
  });
  const { id } = await q.enqueue({ kind: 'test.hold', queue: 'leases' });
  await waitFor(async () => (await db.sql`select 1 from leasehold.active_leases where job_id = ${id}`).length, 'the lease');
  const [lease] = await db.sql`
    select worker, worker_live, attempt, claimed_at is not null as claimed, extract(epoch from lease_age) < 5 as young,
           extract(epoch from expires_in) between 0 and 5 as expiring, last_heartbeat is not null as beat
    from leasehold.active_leases where job_id = ${id}`;
  expect(lease).toEqual({ worker: w.id, worker_live: true, attempt: 1, claimed: true, young: true, expiring: true, beat: true });

  const expired = await insertJob(db.sql, { kind: 'test.hold', queue: 'leases', status: 'running', leaseOwner: 'gone-worker',
                                            leaseExpiresAt: new Date(Date.now() - 120_000) });
  const stuck = await db.sql`select job_id, problem, lease_owner, extract(epoch from stuck_for)::int as s, detail from leasehold.stuck_jobs where problem = 'lease_expired'`;
  expect(stuck).toEqual([expect.objectContaining({ job_id: expired, lease_owner: 'gone-worker', detail: expect.stringContaining('is any worker running?') })]);
  expect(stuck[0]!.s).toBeGreaterThanOrEqual(119);
  const [gone] = await db.sql`select worker_live from leasehold.active_leases where job_id = ${expired}`;
  expect(gone).toEqual({ worker_live: false });
  gate.resolve();
  await pool.stopAll();
});

test('dead_letter_summary groups open dead letters by queue, kind and last error', async () => {
  const rows = await db.sql`select queue, kind, last_error, open from leasehold.dead_letter_summary where queue = 'sum'`;
  expect(rows).toEqual([{ queue: 'sum', kind: 'test.bad', last_error: 'nope', open: 2 }]);
});
