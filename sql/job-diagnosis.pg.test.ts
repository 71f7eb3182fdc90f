import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { rejectOnAbort } from '../test/helpers/deferred.js';
import { WorkerPool, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';
import type { JobContext } from '../worker/handler.js';
import type { WorkerSettings } from '../worker/worker-settings.js';

// Every reason job_diagnosis gives, each produced by the engine itself: real workers with real
// heartbeats, a real failed attempt, a real pause. The governor's reason is produced for real in
// worker/governor-brake.pg.test.ts; here a stand-in checks its place in the order of reasons.
let db: TestDatabase;
const pool = new WorkerPool();
const ids: Record<string, string> = {};

const settings = (queues: string[], extra: Partial<WorkerSettings> = {}): Partial<WorkerSettings> => ({
  queues: queues.map((name) => ({ name })),
  pollMs: 50,
  heartbeatMs: 200,
  leaseMs: 5_000,
  reclaimMs: 500,
  shutdownGraceMs: 200,
  abortGraceMs: 100,
  ...extra,
});
const block = (_p: unknown, ctx: JobContext) => rejectOnAbort(ctx.signal);

async function diagnosis(id: string) {
  const [row] = await db.sql<{ reason: string; detail: string }[]>`select reason, detail from leasehold.job_diagnosis where job_id = ${id}`;
  return row;
}

beforeAll(async () => {
  db = await createTestDatabase();
  const q = queueFor(db.sql);
  await db.sql`select leasehold.pause_queue('diag-paused')`;
  // One busy worker (a slot, a prefetch of one), one whose handler fails, one serving system kinds.
  await pool.start({ sql: db.sql, handlers: { 'test.block': block }, settings: settings(['diag-busy'], { concurrency: 1, batchSize: 1 }) });
  await pool.start({
    sql: db.sql,
    handlers: { 'test.flaky': () => { throw new Error('upstream said 503'); } },
    kinds: { 'test.flaky': { maxAttempts: 3, retry: { initialMs: 3_600_000, factor: 1, maxMs: 3_600_000, jitter: 0 } } },
    settings: settings(['diag-flaky']),
  });
  await pool.start({ sql: db.sql, settings: settings(['diag-paused', 'diag-kind']) });
  // A live worker that has not claimed yet: its row, as its first heartbeat writes it.
  await db.sql`insert into leasehold.workers (id, host, pid, queues, kinds, concurrency)
               values ('idle-worker', 'h', 1, '{diag-ready}', '{system.noop}', 4)`;

  const one = async (kind: string, queue: string, extra: { runAt?: Date } = {}) =>
    (await q.enqueue({ kind, queue, payload: {}, ...extra })).id;
  ids.scheduled = await one('system.noop', 'diag-kind', { runAt: new Date(Date.now() + 3_600_000) });
  ids.backoff = await one('test.flaky', 'diag-flaky');
  ids.paused = await one('system.noop', 'diag-paused');
  ids.noWorker = await one('system.noop', 'diag-nobody');
  ids.noKind = await one('test.orphan', 'diag-kind');
  ids.ready = await one('system.noop', 'diag-ready');
  const busy = await Promise.all(Array.from({ length: 4 }, () => one('test.block', 'diag-busy')));
  await waitFor(async () => {
    const [r] = await db.sql`select count(*)::int as n from leasehold.jobs where id = any(${busy}::uuid[]) and status = 'running'`;
    return r!.n === 2;
  }, 'the busy worker to hold a running job and a prefetched one');
  const [waiting] = await db.sql<{ id: string }[]>`select id from leasehold.jobs where id = any(${busy}::uuid[]) and status = 'queued' order by id limit 1`;
  ids.full = waiting!.id;
  await waitFor(async () => {
    const [r] = await db.sql`select status::text, attempts from leasehold.jobs where id = ${ids.backoff!}`;
    return r!.status === 'queued' && r!.attempts === 1;
  }, 'the flaky job to fail its first attempt');
});
afterAll(async () => {
  await pool.stopAll();
  await db.drop();
});

test.each([
  ['scheduled', 'scheduled', /run_at is in the future: due in 00:5\d:\d\d/],
  ['backoff', 'retry_backoff', /attempt 1 of 3 failed \(upstream said 503\); waiting for the retry backoff: the next attempt is due in 00:5\d:\d\d/],
  ['paused', 'queue_paused', /queue diag-paused was paused at .*select leasehold\.resume_queue\('diag-paused'\)/],
  ['noWorker', 'no_worker', /no live worker serves queue diag-nobody \(4 live worker\(s\) in all\)/],
  ['noKind', 'no_worker_for_kind', /1 live worker\(s\) serve queue diag-kind, but none handles kind test\.orphan/],
  ['full', 'concurrency_full', /the 1 live worker\(s\) that serve queue diag-busy and kind test\.block have all 1 slots busy/],
  ['ready', 'ready', /nothing blocks it: 1 live worker\(s\) with 4 free slot\(s\) serve it/],
])('%s → %s', async (key, reason, detail) => {
  const d = await diagnosis(ids[key]!);
  expect(d?.reason).toBe(reason);
  expect(d?.detail).toMatch(detail);
});

test('a job stops being diagnosed as no_worker once a live worker serves its queue, and only while it is queued', async () => {
  await db.sql`update leasehold.workers set queues = '{diag-ready,diag-nobody}' where id = 'idle-worker'`;
  expect((await diagnosis(ids.noWorker!))?.reason).toBe('ready');
  // A stopped worker, or one not seen for over a minute, serves nothing.
  await db.sql`update leasehold.workers set last_seen_at = now() - interval '2 minutes' where id = 'idle-worker'`;
  expect((await diagnosis(ids.noWorker!))?.reason).toBe('no_worker');
  await db.sql`select leasehold.cancel_job(${ids.noWorker!})`;
  expect(await diagnosis(ids.noWorker!)).toBeUndefined();
});

test('the governor is one more branch: whatever diagnosis_governor_reason says comes before the concurrency check', async () => {
  await db.sql.begin(async (tx) => {
    await tx.unsafe(`create or replace function leasehold.diagnosis_governor_reason(p_kind text, p_tenant_id uuid) returns text
                     language sql stable as $$ select case when p_kind = 'test.block' then 'daily ceiling of $5.00 reached' end $$`);
    const [d] = await tx`select reason, detail from leasehold.job_diagnosis where job_id = ${ids.full!}`;
    expect(d).toEqual({ reason: 'governor', detail: 'the governor holds it back: daily ceiling of $5.00 reached' });
    const [other] = await tx`select reason from leasehold.job_diagnosis where job_id = ${ids.ready!}`;
    expect(other!.reason).not.toBe('governor');
    throw new Error('rollback');
  }).catch((err: Error) => expect(err.message).toBe('rollback'));
  expect((await diagnosis(ids.full!))?.reason).toBe('concurrency_full');
});

test('stuck_jobs lists jobs queued past leasehold.stuck_after with their diagnosis', async () => {
  const rows = await db.sql.begin(async (tx) => {
    await tx`set local leasehold.stuck_after = '0 seconds'`;
    return tx<{ job_id: string; problem: string; detail: string }[]>`select job_id, problem, detail from leasehold.stuck_jobs`;
  });
  expect(rows).toContainEqual(expect.objectContaining({ job_id: ids.paused, problem: 'overdue', detail: expect.stringMatching(/^queue_paused: /) }));
  expect(rows.map((r) => r.job_id)).not.toContain(ids.scheduled);
  // At the default of five minutes, nothing enqueued by this test is overdue yet.
  const defaults = await db.sql<{ job_id: string }[]>`select job_id from leasehold.stuck_jobs`;
  expect(defaults.map((r) => r.job_id)).not.toContain(ids.paused);
});
