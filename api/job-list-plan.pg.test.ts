import { afterAll, beforeAll, expect, test } from 'vitest';
import { ensureTenant } from '#shared/auth/tenants.js';
import { SYSTEM_TENANT } from '#shared/jobs/queue.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { queueFor } from '../test/helpers/engine.js';
import { listJobs } from './job-view.js';

// GET /v1/jobs walks tenant_jobs, not an index on jobs (which every transition would have to
// maintain): the plan must stay an index walk, with jobs reached by primary key, at any size.
let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());

test("a tenant's job list is an index walk of tenant_jobs, jobs joined by primary key, at 60,000 jobs", async () => {
  const small = await ensureTenant(db.sql, 'small');
  const big = await ensureTenant(db.sql, 'big');
  const q = queueFor(db.sql);
  // The small tenant's jobs are the oldest: a plan that walked jobs by id would pass every big one.
  const mine = await q.enqueueMany(Array.from({ length: 5_000 }, () => ({ kind: 'system.noop', tenantId: small.id })));
  await q.enqueueMany(Array.from({ length: 55_000 }, () => ({ kind: 'system.noop', tenantId: big.id })));
  await db.sql`analyze leasehold.jobs`;
  await db.sql`analyze leasehold.tenant_jobs`;

  const page = await listJobs(db.sql, small.id, {}, 50);
  expect(page).toHaveLength(51);
  expect(page.map((j) => j.id)).toEqual([...mine.ids].reverse().slice(0, 51));

  // The statement listJobs sends (with a status filter), explained.
  const plan = await db.sql.begin(async (tx) => {
    await tx`set local enable_seqscan = on`;
    const rows = await tx.unsafe<{ 'QUERY PLAN': string }[]>(
      `explain select j.* from leasehold.tenant_jobs t
       cross join lateral (select * from leasehold.jobs j where j.id = t.job_id and j.status = 'queued' offset 0) j
       where t.tenant_id = $1::uuid order by t.job_id desc limit 51`,
      [small.id],
    );
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  });
  expect(plan).toMatch(/Index (Only )?Scan Backward using tenant_jobs_pkey/);
  expect(plan).toMatch(/Index Scan using jobs_pkey on jobs/);
  expect(plan).not.toMatch(/Seq Scan/);
});

test("the system tenant's jobs, which have no tenant_jobs rows, are listed from jobs newest first, filtered and paged", async () => {
  const q = queueFor(db.sql);
  const other = await ensureTenant(db.sql, 'other');
  const system = await q.enqueueMany(Array.from({ length: 120 }, () => ({ kind: 'system.noop' })));
  await q.enqueueMany(Array.from({ length: 30 }, () => ({ kind: 'system.noop', tenantId: other.id })));
  expect((await db.sql`select 1 from leasehold.tenant_jobs where job_id = any(${system.ids}::uuid[])`).length).toBe(0);
  // The other test of this file names its tenants: these are the system tenant's only jobs.
  const newest = [...system.ids].reverse();
  const first = await listJobs(db.sql, SYSTEM_TENANT, {}, 50);
  expect(first.map((j) => j.id)).toEqual(newest.slice(0, 51));
  const second = await listJobs(db.sql, SYSTEM_TENANT, { cursor: first[49]!.id }, 50);
  expect(second.map((j) => j.id)).toEqual(newest.slice(50, 101));
  await db.sql`update leasehold.jobs set status = 'cancelled', finished_at = now() where id = any(${system.ids.slice(0, 10)}::uuid[])`;
  const cancelled = await listJobs(db.sql, SYSTEM_TENANT, { status: 'cancelled' }, 50);
  expect(cancelled.map((j) => j.id)).toEqual(system.ids.slice(0, 10).reverse());
});
