import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SYSTEM_TENANT } from '#shared/jobs/queue.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { eventTypes, queueFor } from '../../test/helpers/engine.js';
import { uuidv7 } from './uuid.js';

// Bulks from 2,000 jobs on go through COPY (copy-jobs.ts), which leaves out the optional columns
// no job of the bulk sets: the table's defaults must then give exactly what INSERT would have.
let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());

const BULK = 2_500;

interface Stored {
  id: string;
  tenant_id: string;
  queue: string;
  priority: number;
  max_attempts: number;
  pattern_id: string | null;
  pattern_version: number | null;
  payload: unknown;
  run_at_is_created_at: boolean;
  events: number;
}

async function stored(ids: string[]): Promise<Map<string, Stored>> {
  const rows = await db.sql<Stored[]>`
    select j.id, j.tenant_id, j.queue, j.priority, j.max_attempts, j.pattern_id, j.pattern_version, j.payload,
           j.run_at = j.created_at as run_at_is_created_at,
           (select count(*)::int from leasehold.job_events e where e.job_id = j.id and e.type = 'job.queued') as events
    from leasehold.jobs j where j.id = any(${ids}::uuid[])`;
  return new Map(rows.map((r) => [r.id, r]));
}

describe('bulk COPY', () => {
  test('a bulk that sets no optional field gets the same row values as a small INSERT', async () => {
    const q = queueFor(db.sql);
    const small = await q.enqueueMany([{ kind: 'system.sleep', payload: { ms: 1 } }]);
    const bulk = await q.enqueueMany(Array.from({ length: BULK }, () => ({ kind: 'system.sleep', payload: { ms: 1 } })));
    const rows = await stored([...small.ids, ...bulk.ids]);
    expect(rows.size).toBe(BULK + 1);
    const { id: _id, ...expected } = rows.get(small.ids[0]!)!;
    expect(expected).toEqual({
      tenant_id: SYSTEM_TENANT,
      queue: 'default',
      priority: 100,
      max_attempts: 3,
      pattern_id: null,
      pattern_version: null,
      payload: { ms: 1 },
      run_at_is_created_at: true,
      events: 1,
    });
    for (const id of bulk.ids) expect({ ...rows.get(id)!, id: undefined }).toEqual({ ...expected, id: undefined });
  });

  test('one job setting an optional field makes COPY send that column; the others keep the defaults', async () => {
    const tenant = '0190b000-0000-7000-8000-0000000c0de5';
    const pattern = uuidv7();
    await db.sql`insert into leasehold.tenants (id, slug, name) values (${tenant}, 'copy-columns', 'Copy columns')`;
    const runAt = new Date(Date.now() + 3_600_000);
    const jobs = Array.from({ length: BULK }, (_, i) => ({ kind: 'test.copy', queue: 'copy-columns', payload: { i } }));
    Object.assign(jobs[10]!, { tenantId: tenant });
    Object.assign(jobs[20]!, { priority: 7 });
    Object.assign(jobs[30]!, { runAt });
    Object.assign(jobs[40]!, { patternId: pattern, patternVersion: 2 });
    const { ids } = await queueFor(db.sql).enqueueMany(jobs);
    const rows = await stored(ids);
    const at = (i: number) => rows.get(ids[i]!)!;
    expect(at(10)).toMatchObject({ tenant_id: tenant, priority: 100, run_at_is_created_at: true, pattern_id: null });
    expect(at(20)).toMatchObject({ tenant_id: SYSTEM_TENANT, priority: 7, run_at_is_created_at: true });
    expect(at(30)).toMatchObject({ tenant_id: SYSTEM_TENANT, priority: 100, run_at_is_created_at: false });
    expect(at(40)).toMatchObject({ pattern_id: pattern, pattern_version: 2, priority: 100, run_at_is_created_at: true });
    expect(at(0)).toMatchObject({ tenant_id: SYSTEM_TENANT, priority: 100, run_at_is_created_at: true, pattern_id: null, pattern_version: null, max_attempts: 3, events: 1 });
    const [far] = await db.sql<{ run_at: Date }[]>`select run_at from leasehold.jobs where id = ${ids[30]!}`;
    expect(far!.run_at.getTime()).toBe(runAt.getTime());
    // The tenant's job list (tenant_jobs) holds its one job; the system tenant's jobs get no rows.
    const listed = await db.sql<{ job_id: string }[]>`select job_id from leasehold.tenant_jobs where job_id = any(${ids}::uuid[])`;
    expect(listed.map((r) => r.job_id)).toEqual([ids[10]]);
  });

  test("COPY's special characters in text and JSON survive the trip", async () => {
    const nasty = ['tab\there', 'new\nline', 'carriage\rreturn', 'back\\slash', '\\N', 'end\\', 'ünïcødé ✓', '\\.'];
    const jobs = Array.from({ length: BULK }, (_, i) => ({ kind: 'test.copy', queue: 'copy-text', payload: { s: nasty[i % nasty.length], i } }));
    const { ids } = await queueFor(db.sql).enqueueMany(jobs);
    const rows = await stored(ids);
    ids.forEach((id, i) => expect(rows.get(id)!.payload).toEqual({ s: nasty[i % nasty.length], i }));
  });

  test('a row PostgreSQL refuses while rows are still being sent leaves nothing, and the pool stays usable', async () => {
    const q = queueFor(db.sql);
    const N = 60_000;
    const dupe = uuidv7();
    // The duplicate comes early: the server's error arrives while most rows are still to be built.
    const jobs = Array.from({ length: N }, (_, i) => ({ kind: 'test.copy', queue: 'copy-refused', ...(i === 0 || i === 1_000 ? { id: dupe } : {}) }));
    await expect(q.enqueueMany(jobs)).rejects.toThrow(/duplicate key/);
    const [r] = await db.sql<{ jobs: number; events: number }[]>`
      select (select count(*)::int from leasehold.jobs where queue = 'copy-refused') as jobs,
             (select count(*)::int from leasehold.job_events where job_id = ${dupe}) as events`;
    expect(r).toEqual({ jobs: 0, events: 0 });
    const after = await q.enqueueMany(Array.from({ length: BULK }, () => ({ kind: 'test.copy', queue: 'copy-after' })));
    expect((await stored(after.ids)).size).toBe(BULK);
  });

  test('a job inserted by plain SQL in any state gets the event of that state, attempt and all', async () => {
    const ids = ['queued', 'running', 'succeeded', 'failed', 'cancelled'].map(() => uuidv7());
    await db.sql`
      insert into leasehold.jobs (id, kind, status, attempts, lease_token)
      select id, 'test.states', status::leasehold.job_status, 2, case when status = 'running' then gen_random_uuid() end
      from unnest(${ids}::uuid[], array['queued', 'running', 'succeeded', 'failed', 'cancelled']) as x(id, status)`;
    const events = await db.sql<{ job_id: string; type: string; attempt: number }[]>`
      select job_id, type, attempt from leasehold.job_events where job_id = any(${ids}::uuid[])`;
    expect(new Map(events.map((e) => [e.job_id, `${e.type}/${e.attempt}`]))).toEqual(
      new Map(ids.map((id, i) => [id, `job.${['queued', 'running', 'succeeded', 'failed', 'cancelled'][i]}/2`])),
    );
    expect(await eventTypes(db.sql, ids[0]!)).toEqual(['job.queued']);
  });
});
