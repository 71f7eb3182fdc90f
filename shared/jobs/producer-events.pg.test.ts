import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { Notifier } from '#shared/jobs/notifier.js';
import { JobQueue, SYSTEM_TENANT, insertJobs, type NewJob } from '#shared/jobs/queue.js';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { enqueueIngest } from '#shared/patterns/enqueue-ingest.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { insertPattern } from '../../test/helpers/governor.js';

// The producers' INSERT statements write their jobs' job.queued events, queue registrations and
// tenant_jobs rows themselves, and the jobs_inserted trigger skips them (migration 0018). Every
// other insert still goes through the trigger. Whichever writes them, each job gets the same rows
// exactly once, and the skip never outlives its own statement.

let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());

interface Written {
  /** Each job's job.queued events: type, attempt, tenant, data. */
  events: Record<string, { type: string; attempt: number; tenant_id: string; data: unknown }[]>;
  /** Jobs listed in tenant_jobs. */
  listed: string[];
  /** Which of the jobs' queues are registered. */
  queues: string[];
}

async function written(sql: Sql, ids: string[]): Promise<Written> {
  const events: Written['events'] = Object.fromEntries(ids.map((id) => [id, []]));
  for (const e of await sql<{ job_id: string; type: string; attempt: number; tenant_id: string; data: unknown }[]>`
    select job_id, type, attempt, tenant_id, data from leasehold.job_events where job_id = any(${ids}::uuid[]) order by id`) {
    events[e.job_id]!.push({ type: e.type, attempt: e.attempt, tenant_id: e.tenant_id, data: e.data });
  }
  const listed = (await sql<{ job_id: string }[]>`select job_id from leasehold.tenant_jobs where job_id = any(${ids}::uuid[])`).map((r) => r.job_id);
  const queues = (await sql<{ name: string }[]>`
    select name from leasehold.queues where name in (select queue from leasehold.jobs where id = any(${ids}::uuid[])) order by name`).map((r) => r.name);
  return { events, listed: listed.sort(), queues };
}

/** What the trigger writes for jobs of `tenant` in `queues`: the shape every producer must match. */
function expected(ids: string[], tenant: string, queues: string[]): Written {
  return {
    events: Object.fromEntries(ids.map((id) => [id, [{ type: 'job.queued', attempt: 0, tenant_id: tenant, data: null }]])),
    listed: tenant === SYSTEM_TENANT ? [] : [...ids].sort(),
    queues: [...queues].sort(),
  };
}

async function newTenant(): Promise<string> {
  const id = uuidv7();
  await db.sql`insert into leasehold.tenants (id, slug, name) values (${id}, ${`t-${id}`}, 'Producer events')`;
  return id;
}

const jobs = (n: number, queue: string, tenantId?: string): NewJob[] =>
  Array.from({ length: n }, (_, i) => ({ kind: 'test.events', queue: i % 2 ? `${queue}-odd` : queue, ...(tenantId && { tenantId }) }));

const producer = () => new JobQueue(db.sql, new Notifier(db.sql));

describe('each producer statement writes what the trigger would, once', () => {
  test('one job (INSERT_JOB_AND_WAKE), for the system tenant and for a tenant', async () => {
    const tenant = await newTenant();
    const a = await producer().enqueue({ kind: 'test.events', queue: 'one-system' });
    const b = await producer().enqueue({ kind: 'test.events', queue: 'one-tenant', tenantId: tenant });
    expect(await written(db.sql, [a.id])).toEqual(expected([a.id], SYSTEM_TENANT, ['one-system']));
    expect(await written(db.sql, [b.id])).toEqual(expected([b.id], tenant, ['one-tenant']));
  });

  test('a few jobs in two queues (INSERT_JOBS_AND_WAKE)', async () => {
    const tenant = await newTenant();
    const { ids } = await producer().enqueueMany(jobs(5, 'few', tenant));
    expect(await written(db.sql, ids)).toEqual(expected(ids, tenant, ['few', 'few-odd']));
  });

  test('a chunked insert in a transaction (INSERT_JOBS), beside a COPY and plain SQL that the trigger serves', async () => {
    const tenant = await newTenant();
    const ids = await db.sql.begin(async (tx) => {
      const statements = (await insertJobs(tx, jobs(1_500, 'chunked', tenant))).ids;
      const copied = (await insertJobs(tx, jobs(2_000, 'copied', tenant))).ids;
      const [plain] = await tx<{ id: string }[]>`
        insert into leasehold.jobs (kind, queue, tenant_id) values ('test.events', 'plain-after', ${tenant}) returning id`;
      return { statements, copied, plain: [plain!.id] };
    });
    expect(await written(db.sql, ids.statements)).toEqual(expected(ids.statements, tenant, ['chunked', 'chunked-odd']));
    expect(await written(db.sql, ids.copied)).toEqual(expected(ids.copied, tenant, ['copied', 'copied-odd']));
    expect(await written(db.sql, ids.plain)).toEqual(expected(ids.plain, tenant, ['plain-after']));
  });

  test('admitted queues (INSERT_JOBS_ADMITTED): written when admitted, nothing at all when refused', async () => {
    const tenant = await newTenant();
    const { ids } = await insertJobs(db.sql, jobs(3, 'admitted', tenant), { queueLimits: { total: 10_000, perTenant: 100 } });
    expect(await written(db.sql, ids)).toEqual(expected(ids, tenant, ['admitted', 'admitted-odd']));

    const refused = jobs(2, 'refused', tenant);
    await expect(insertJobs(db.sql, refused, { queueLimits: { total: 10_000, perTenant: 2 } })).rejects.toMatchObject({ status: expect.any(Number) });
    const [left] = await db.sql`
      select (select count(*)::int from leasehold.jobs where queue like 'refused%') as jobs,
             (select count(*)::int from leasehold.queues where name like 'refused%') as queues`;
    expect(left).toEqual({ jobs: 0, queues: 0 });
  });

  test('idempotency keys (INSERT_JOBS_IDEMPOTENT): a skipped key writes nothing more', async () => {
    const tenant = await newTenant();
    const first = await insertJobs(db.sql, [{ kind: 'test.events', queue: 'keyed', tenantId: tenant, idempotencyKey: 'k-1' }]);
    const again = await insertJobs(db.sql, [
      { kind: 'test.events', queue: 'keyed-elsewhere', tenantId: tenant, idempotencyKey: 'k-1' },
      { kind: 'test.events', queue: 'keyed', tenantId: tenant, idempotencyKey: 'k-2' },
    ]);
    expect(again.created).toEqual([false, true]);
    expect(again.ids[0]).toBe(first.ids[0]);
    expect(await written(db.sql, [...first.ids, again.ids[1]!])).toEqual(expected([...first.ids, again.ids[1]!], tenant, ['keyed']));
    // The skipped job's queue was not made for it.
    expect(await db.sql`select name from leasehold.queues where name = 'keyed-elsewhere'`).toEqual([]);
  });

  test('ingest (INGEST_JOBS): written for an active pattern, nothing for a missing one', async () => {
    const tenant = await newTenant();
    const pattern = await insertPattern(db.sql, tenant);
    const image = { url: 'https://example.com/a.png' };
    const result = await enqueueIngest(db.sql, tenant, pattern, [image, image]);
    expect(result.outcome).toBe('queued');
    const ids = result.outcome === 'queued' ? result.ids : [];
    expect(await written(db.sql, ids)).toEqual(expected(ids, tenant, [result.outcome === 'queued' ? result.queue : '']));
    expect(await enqueueIngest(db.sql, tenant, uuidv7(), [image])).toEqual({ outcome: 'not_found' });
  });
});

describe('the trigger is skipped for the producer statement alone', () => {
  test('after a producer statement in a transaction, the setting is off and a plain insert gets its event from the trigger', async () => {
    const out = await db.sql.begin(async (tx) => {
      const produced = (await insertJobs(tx, jobs(3, 'same-tx'))).ids;
      const [setting] = await tx<{ value: string | null }[]>`select current_setting('leasehold.events_written', true) as value`;
      const plain = await tx<{ id: string }[]>`
        insert into leasehold.jobs (kind, queue) select 'test.events', 'same-tx-plain' from generate_series(1, 2) returning id`;
      return { produced, setting: setting!.value, plain: plain.map((r) => r.id) };
    });
    expect(out.setting).toBe('off');
    expect(await written(db.sql, out.produced)).toEqual(expected(out.produced, SYSTEM_TENANT, ['same-tx', 'same-tx-odd']));
    expect(await written(db.sql, out.plain)).toEqual(expected(out.plain, SYSTEM_TENANT, ['same-tx-plain']));
  });

  test('a producer statement that fails inside a savepoint leaves no job, no event and the setting as it was', async () => {
    const out = await db.sql.begin(async (tx) => {
      const taken = uuidv7();
      await tx`insert into leasehold.jobs (id, kind, queue) values (${taken}, 'test.events', 'savepoint')`;
      // A second job with the same id: the whole statement fails after some rows went in.
      const clash: NewJob[] = [{ kind: 'test.events', queue: 'savepoint-failed' }, { kind: 'test.events', queue: 'savepoint-failed', id: taken }];
      const failed = await tx.savepoint((sp) => insertJobs(sp, clash)).then(() => null, (err: Error) => err);
      const [setting] = await tx<{ value: string | null }[]>`select current_setting('leasehold.events_written', true) as value`;
      const [plain] = await tx<{ id: string }[]>`insert into leasehold.jobs (kind, queue) values ('test.events', 'savepoint-after') returning id`;
      return { failed, setting: setting!.value, plain: [plain!.id] };
    });
    expect(out.failed).toBeInstanceOf(Error);
    expect(out.setting).not.toBe('on');
    const [left] = await db.sql`
      select (select count(*)::int from leasehold.jobs where queue = 'savepoint-failed') as jobs,
             (select count(*)::int from leasehold.queues where name = 'savepoint-failed') as queues`;
    expect(left).toEqual({ jobs: 0, queues: 0 });
    expect(await written(db.sql, out.plain)).toEqual(expected(out.plain, SYSTEM_TENANT, ['savepoint-after']));
  });
});
