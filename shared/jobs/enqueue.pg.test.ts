import { uuidv7 } from './uuid.js';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { JobQueue, SYSTEM_TENANT, insertJobs } from '#shared/jobs/queue.js';
import { Notifier } from '#shared/jobs/notifier.js';
import { CLAIM_JOBS, INSERT_JOB_AND_WAKE } from '#shared/jobs/queue-sql.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { WorkerPool, eventTypes, jobRow, queueFor } from '../../test/helpers/engine.js';
import { interceptUnsafe } from '../../test/helpers/intercept-unsafe.js';
import { waitFor } from '../../test/helpers/wait.js';

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

async function countJobs(where: { queue: string }): Promise<{ jobs: number; queued_events: number }> {
  const [r] = await db.sql<{ jobs: number; queued_events: number }[]>`
    select (select count(*)::int from leasehold.jobs where queue = ${where.queue}) as jobs,
           (select count(*)::int from leasehold.job_events e join leasehold.jobs j on j.id = e.job_id
             where j.queue = ${where.queue} and e.type = 'job.queued') as queued_events`;
  return r!;
}

describe('enqueue', () => {
  test("with no other wake-up under way, an enqueue's NOTIFY rides in its own INSERT and arrives at commit", async () => {
    const got: string[] = [];
    const listener = db.connect({ max: 1 });
    try {
      await listener.listen('leasehold_jobs', (q) => void got.push(q));
      // A Notifier whose statements go nowhere: only a NOTIFY inside the INSERT can arrive.
      const dead = db.connect({ max: 1 });
      await dead.end();
      const producer = new JobQueue(db.sql, new Notifier(dead));
      const { id } = await producer.enqueue({ kind: 'test.wake', queue: 'inline-wake' });
      await waitFor(() => got.includes('inline-wake'), 'the wake-up from the INSERT itself');
      expect((await jobRow(db.sql, id)).status).toBe('queued');
      expect(await eventTypes(db.sql, id)).toEqual(['job.queued']);
    } finally {
      await listener.end();
    }
  });

  test('one job: defaults applied, one job.queued event', async () => {
    const before = new Date();
    const { id, created } = await queueFor(db.sql).enqueue({ kind: 'system.sleep', payload: { ms: 5 } });
    expect(created).toBe(true);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const row = await jobRow(db.sql, id);
    expect(row).toMatchObject({
      kind: 'system.sleep',
      queue: 'default',
      payload: { ms: 5 },
      status: 'queued',
      priority: 100,
      attempts: 0,
      max_attempts: 3,
      tenant_id: SYSTEM_TENANT,
      pattern_id: null,
      pattern_version: null,
      idempotency_key: null,
    });
    // run_at defaults to the INSERT's now(): within this test's own span of time.
    const [times] = await db.sql<{ run_at: Date; now: Date }[]>`select run_at, now() as now from leasehold.jobs where id = ${id}`;
    expect(times!.run_at.getTime()).toBeGreaterThanOrEqual(before.getTime() - 1_000);
    expect(times!.run_at.getTime()).toBeLessThanOrEqual(times!.now.getTime());
    expect(await eventTypes(db.sql, id)).toEqual(['job.queued']);
  });

  test('one job with every option set: each lands in its column, with its tenant list row and its own wake-up', async () => {
    const got: string[] = [];
    const listener = db.connect({ max: 1 });
    try {
      await listener.listen('leasehold_jobs', (q) => void got.push(q));
      const tenantId = uuidv7();
      const patternId = uuidv7();
      const runAt = new Date(Date.now() + 3_600_000);
      // The statements the producer sends, to see which form carried the job.
      const sent: string[] = [];
      const recording = interceptUnsafe(db.sql, (text, _params, run) => (sent.push(text), run()));
      const { id } = await new JobQueue(recording, new Notifier(db.sql)).enqueue({
        kind: 'test.options',
        queue: 'every-option',
        payload: { note: 'tab\there, quote " and unicode ✓' },
        tenantId,
        priority: -7,
        runAt,
        maxAttempts: 9,
        patternId,
        patternVersion: 4,
      });
      expect(await jobRow(db.sql, id)).toMatchObject({
        kind: 'test.options',
        queue: 'every-option',
        payload: { note: 'tab\there, quote " and unicode ✓' },
        tenant_id: tenantId,
        priority: -7,
        max_attempts: 9,
        pattern_id: patternId,
        pattern_version: 4,
        status: 'queued',
      });
      const [row] = await db.sql<{ run_at: Date; listed: boolean }[]>`
        select run_at, exists(select 1 from leasehold.tenant_jobs where tenant_id = ${tenantId} and job_id = ${id}) as listed
        from leasehold.jobs where id = ${id}`;
      expect(row!.run_at.getTime()).toBe(runAt.getTime());
      expect(row!.listed).toBe(true);
      expect(await eventTypes(db.sql, id)).toEqual(['job.queued']);
      expect(sent).toEqual([INSERT_JOB_AND_WAKE]);
      await waitFor(() => got.includes('every-option'), 'the wake-up for its queue');
    } finally {
      await listener.end();
    }
  });

  test('a registered kind rejects a bad payload before anything is written', async () => {
    const q = queueFor(db.sql);
    await expect(q.enqueue({ kind: 'system.sleep', payload: { ms: 'soon' }, queue: 'bad-payload' })).rejects.toThrow();
    expect(await countJobs({ queue: 'bad-payload' })).toEqual({ jobs: 0, queued_events: 0 });
  });

  test('a bulk of 25,000 in one call lands whole, with 25,000 job.queued events', async () => {
    const N = 25_000;
    const q = queueFor(db.sql);
    const tempFiles = async () => {
      await db.sql`select pg_stat_force_next_flush()`;
      const [r] = await db.sql<{ n: number }[]>`select temp_files::int as n from pg_stat_database where datname = current_database()`;
      return r!.n;
    };
    const tempBefore = await tempFiles();
    const t0 = Date.now();
    const { ids, created } = await q.enqueueMany(Array.from({ length: N }, (_, i) => ({ kind: 'test.bulk', queue: 'bulk', payload: { i } })));
    const ms = Date.now() - t0;
    // The insert trigger's transition table stayed in memory: no temporary file written and read back.
    expect(await tempFiles()).toBe(tempBefore);
    expect(ids).toHaveLength(N);
    expect(new Set(ids).size).toBe(N);
    expect(created.every(Boolean)).toBe(true);
    expect(await countJobs({ queue: 'bulk' })).toEqual({ jobs: N, queued_events: N });
    // Ids come back in input order.
    const [sample] = await db.sql<{ payload: { i: number } }[]>`select payload from leasehold.jobs where id = ${ids[17_345]!}`;
    expect(sample!.payload.i).toBe(17_345);
    // A generous bound (the bench aims at 120k/s); a per-row round trip would blow past it.
    expect(ms).toBeLessThan(10_000);

    // All or nothing: a row the database refuses at the very end of the statement (a duplicate
    // primary key, which no client-side check can see) leaves no trace of the rows before it.
    // This is the COPY error-after-last-write path (porsager/postgres#1173, patched in patches/).
    const dupe = uuidv7();
    const bad = Array.from({ length: N }, (_, i) => ({ kind: 'test.bulk', queue: 'bulk-bad', ...(i === 0 || i === N - 1 ? { id: dupe } : {}) }));
    await expect(q.enqueueMany(bad)).rejects.toThrow(/duplicate key/);
    expect(await countJobs({ queue: 'bulk-bad' })).toEqual({ jobs: 0, queued_events: 0 });
    // The pool is still usable afterwards: no connection was left inside an aborted COPY.
    await q.enqueueMany(Array.from({ length: 3_000 }, () => ({ kind: 'test.bulk', queue: 'bulk-after' })));
    expect(await countJobs({ queue: 'bulk-after' })).toEqual({ jobs: 3_000, queued_events: 3_000 });

    // What the table's constraints would refuse is refused before anything is sent, naming the field.
    const invalid = Array.from({ length: N }, (_, i) => ({ kind: 'test.bulk', queue: 'bulk-invalid', maxAttempts: i === N - 1 ? 0 : 3 }));
    await expect(q.enqueueMany(invalid)).rejects.toThrow(/maxAttempts must be an integer from 1 to 1000/);
    expect(await countJobs({ queue: 'bulk-invalid' })).toEqual({ jobs: 0, queued_events: 0 });
  });

  test('in a rolled-back transaction: no job, no event', async () => {
    const q = queueFor(db.sql);
    let id: string | undefined;
    await expect(
      db.sql.begin(async (tx) => {
        id = (await q.enqueueInTransaction(tx, [{ kind: 'test.tx', queue: 'tx-rollback' }])).ids[0];
        // Visible inside the transaction…
        const [r] = await tx<{ n: number }[]>`select count(*)::int as n from leasehold.jobs where id = ${id!}`;
        expect(r!.n).toBe(1);
        throw new Error('caller changed its mind');
      }),
    ).rejects.toThrow('caller changed its mind');
    // …and gone after the rollback, with its event and its queue registration.
    expect(id).toBeDefined();
    expect(await db.sql`select 1 from leasehold.jobs where id = ${id!}`).toHaveLength(0);
    expect(await db.sql`select 1 from leasehold.job_events where job_id = ${id!}`).toHaveLength(0);
    expect(await db.sql`select 1 from leasehold.queues where name = 'tx-rollback'`).toHaveLength(0);
  });

  test('in a committed transaction: the worker is woken by the NOTIFY alone', async () => {
    const ran: string[] = [];
    // The poll is an hour away, so only a wake-up can start the job in time.
    await pool.start({ sql: db.sql, settings: { pollMs: 3_600_000 }, handlers: { 'test.tx': (_p: unknown, ctx) => void ran.push(ctx.id) } });
    const q = queueFor(db.sql);
    // A queue the worker has never seen: the wake-up must make it read the queue list again.
    const [{ ids }] = await db.sql.begin(async (tx) => [await q.enqueueInTransaction(tx, [{ kind: 'test.tx', queue: 'tx-commit' }])] as const);
    const id = ids[0]!;
    const t0 = Date.now();
    await waitFor(async () => (await jobRow(db.sql, id)).status === 'succeeded', 'the committed job to run', 15_000);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(ran).toEqual([id]);

    // A known queue this time, and a rolled-back sibling the worker must never see.
    await db.sql
      .begin(async (tx) => {
        await q.enqueueInTransaction(tx, [{ kind: 'test.tx', queue: 'tx-commit', id: '01900000-0000-7000-8000-000000000001' }]);
        throw new Error('rollback');
      })
      .catch(() => {});
    const [{ ids: ids2 }] = await db.sql.begin(async (tx) => [await q.enqueueInTransaction(tx, [{ kind: 'test.tx', queue: 'tx-commit' }])] as const);
    await waitFor(async () => (await jobRow(db.sql, ids2[0]!)).status === 'succeeded', 'the second committed job to run', 15_000);
    expect(ran).toEqual([id, ids2[0]]);
  });

  test('idempotency keys: same tenant and key return the first id, created=false', async () => {
    const q = queueFor(db.sql);
    const tenant = '0190a000-0000-7000-8000-00000000abcd';
    await db.sql`insert into leasehold.tenants (id, slug, name) values (${tenant}, 'acme', 'Acme')`;
    const first = await q.enqueue({ kind: 'test.idem', queue: 'idem', idempotencyKey: 'order-1', payload: { v: 1 } });
    const again = await q.enqueue({ kind: 'test.idem', queue: 'idem', idempotencyKey: 'order-1', payload: { v: 2 } });
    expect(first.created).toBe(true);
    expect(again).toEqual({ id: first.id, created: false });
    // The first job is untouched by the second call.
    expect((await jobRow(db.sql, first.id)).payload).toEqual({ v: 1 });

    // Another tenant has its own key space.
    const other = await q.enqueue({ kind: 'test.idem', queue: 'idem', idempotencyKey: 'order-1', tenantId: tenant });
    expect(other.created).toBe(true);
    expect(other.id).not.toBe(first.id);

    // In bulk: an existing key, a new key given twice in the same call, and a job with no key.
    const bulk = await q.enqueueMany([
      { kind: 'test.idem', queue: 'idem', idempotencyKey: 'order-1' },
      { kind: 'test.idem', queue: 'idem', idempotencyKey: 'order-2' },
      { kind: 'test.idem', queue: 'idem', idempotencyKey: 'order-2' },
      { kind: 'test.idem', queue: 'idem' },
    ]);
    expect(bulk.created).toEqual([false, true, false, true]);
    expect(bulk.ids[0]).toBe(first.id);
    expect(bulk.ids[2]).toBe(bulk.ids[1]);
    expect(await countJobs({ queue: 'idem' })).toEqual({ jobs: 4, queued_events: 4 });
  });

  test('a delayed job waits for its run_at', async () => {
    const q = queueFor(db.sql);
    const far = new Date(Date.now() + 3_600_000);
    const later = await q.enqueue({ kind: 'test.delay', queue: 'delay', runAt: far });
    expect((await jobRow(db.sql, later.id)).run_at.getTime()).toBe(far.getTime());

    const started = new Map<string, number>();
    await pool.start({ sql: db.sql, settings: { pollMs: 50 }, handlers: { 'test.delay': (_p: unknown, ctx) => void started.set(ctx.id, Date.now()) } });
    const soonAt = new Date(Date.now() + 1_000);
    const soon = await q.enqueue({ kind: 'test.delay', queue: 'delay', runAt: soonAt });
    const now = await q.enqueue({ kind: 'test.delay', queue: 'delay' });
    await waitFor(async () => (await jobRow(db.sql, soon.id)).status === 'succeeded', 'the delayed job to run', 15_000);
    expect(started.get(soon.id)!).toBeGreaterThanOrEqual(soonAt.getTime());
    expect(started.get(now.id)!).toBeLessThan(soonAt.getTime());
    const row = await jobRow(db.sql, later.id);
    expect(row.status).toBe('queued');
    expect(started.has(later.id)).toBe(false);
  });

  test('priorities are stored and run lowest first', async () => {
    const q = queueFor(db.sql);
    const { ids } = await q.enqueueMany([
      { kind: 'test.prio', queue: 'prio' },
      { kind: 'test.prio', queue: 'prio', priority: 7 },
      { kind: 'test.prio', queue: 'prio', priority: -3 },
      { kind: 'test.prio', queue: 'prio', priority: 200 },
    ]);
    const prio = await db.sql<{ id: string; priority: number }[]>`select id, priority from leasehold.jobs where queue = 'prio'`;
    expect(Object.fromEntries(prio.map((r) => [r.id, r.priority]))).toEqual({ [ids[0]!]: 100, [ids[1]!]: 7, [ids[2]!]: -3, [ids[3]!]: 200 });

    // Four slots: the first claim takes all four jobs and they start in its order. (With fewer
    // slots, the two claims that follow a full one race in PostgreSQL like any two claimers, and
    // the later may lock the better job first: mergeByPriority's test covers what a worker does
    // with claims that come back that way.)
    const order: string[] = [];
    await pool.start({ sql: db.sql, settings: { concurrency: 4, pollMs: 3_600_000 }, handlers: { 'test.prio': (_p: unknown, ctx) => void order.push(ctx.id) } });
    await waitFor(() => order.length === 4, 'every job to run');
    expect(order).toEqual([ids[2], ids[1], ids[0], ids[3]]);
  });

  test('named queues are registered by the trigger, whatever the insert path', async () => {
    await queueFor(db.sql).enqueueMany([
      { kind: 'test.q', queue: 'alpha' },
      { kind: 'test.q', queue: 'beta' },
      { kind: 'test.q', queue: 'alpha' },
    ]);
    // Raw SQL an operator might run registers its queue too.
    await db.sql`insert into leasehold.jobs (id, kind, queue) values (leasehold.uuid_v7(), 'test.q', 'gamma')`;
    await db.sql`insert into leasehold.jobs (id, kind, queue) values (leasehold.uuid_v7(), 'test.q', 'alpha')`;
    const rows = await db.sql<{ name: string; paused_at: Date | null }[]>`
      select name, paused_at from leasehold.queues where name in ('alpha', 'beta', 'gamma') order by name`;
    expect(rows).toEqual([
      { name: 'alpha', paused_at: null },
      { name: 'beta', paused_at: null },
      { name: 'gamma', paused_at: null },
    ]);
  });

  test('queueLimits with idempotency keys, or for jobs of two tenants, is refused before anything is written: only the plain INSERT of one tenant admits queues', async () => {
    const limits = { queueLimits: { total: 1_000, perTenant: 100 } };
    const keyed = [{ kind: 'test.q', queue: 'bounded-keyed', tenantId: SYSTEM_TENANT, idempotencyKey: 'k-1' }];
    await expect(insertJobs(db.sql, keyed, limits)).rejects.toThrow(/queueLimits/);
    expect(await countJobs({ queue: 'bounded-keyed' })).toEqual({ jobs: 0, queued_events: 0 });
    const mixed = [{ kind: 'test.q', queue: 'bounded-mixed', tenantId: SYSTEM_TENANT }, { kind: 'test.q', queue: 'bounded-mixed' }];
    await expect(insertJobs(db.sql, mixed, limits)).rejects.toThrow(/one tenant/);
    expect(await countJobs({ queue: 'bounded-mixed' })).toEqual({ jobs: 0, queued_events: 0 });
  });

  test('the claim of one queue is an index scan on jobs_claim_idx at 50,000 queued rows', async () => {
    // 50,000 queued rows over five queues, plus finished rows the partial index must leave out.
    await db.sql`
      insert into leasehold.jobs (id, kind, queue, priority, run_at)
      select leasehold.uuid_v7(), 'test.scan', 'scan-' || (g % 5), g % 7, now() - (g % 1000) * interval '1 second'
      from generate_series(1, 50000) g`;
    await db.sql`
      insert into leasehold.jobs (id, kind, queue, status, finished_at)
      select leasehold.uuid_v7(), 'test.scan', 'scan-0', 'succeeded', now() from generate_series(1, 10000)`;
    await db.sql`analyze leasehold.jobs`;
    const [row] = await db.sql.unsafe<{ 'QUERY PLAN': [{ Plan: PlanNode }] }[]>(`explain (format json) ${CLAIM_JOBS}`, [
      ['scan-3'],
      [50],
      ['test.scan'],
      50,
      'explainer',
      '0190a000-0000-7000-8000-000000000000',
      30_000,
      true,
    ]);
    const nodes = flatten(row!['QUERY PLAN'][0].Plan);
    const onJobs = nodes.filter((n) => n['Relation Name'] === 'jobs');
    expect(onJobs.length).toBeGreaterThan(0);
    expect(onJobs.filter((n) => n['Node Type'] === 'Seq Scan')).toEqual([]);
    expect(onJobs.some((n) => /Index/.test(n['Node Type']) && n['Index Name'] === 'jobs_claim_idx')).toBe(true);
  });
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

function flatten(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(flatten)];
}
