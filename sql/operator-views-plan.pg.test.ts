import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { queueFor } from '../test/helpers/engine.js';

// The operator views must stay cheap while workers run: none may read the whole jobs table. At
// 100,000 jobs (97 % finished, most of their events older than an hour), each plan must reach
// jobs only through the partial indexes of live rows (jobs_claim_idx, jobs_lease_expiry_idx) or by
// primary key, and job_events only through its primary key range or job_events_job_idx.
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  const q = queueFor(db.sql);
  const jobs = Array.from({ length: 100_000 }, (_, i) => (i % 3 ? { kind: 'system.noop', queue: `q${i % 4}` } : { kind: 'system.sleep', payload: { ms: 1 }, queue: `q${i % 4}` }));
  const { ids } = await q.enqueueMany(jobs);
  const finished = ids.slice(0, 97_000);
  const running = ids.slice(97_000, 97_200);
  await db.sql`update leasehold.jobs set status = 'succeeded', attempts = 1, finished_at = now() where id = any(${finished}::uuid[])`;
  await db.sql`update leasehold.jobs set status = 'running', attempts = 1, lease_owner = 'w1', lease_token = gen_random_uuid(),
                                           lease_expires_at = now() + interval '30 seconds', heartbeat_at = now()
               where id = any(${running}::uuid[])`;
  await db.sql`insert into leasehold.job_events (job_id, tenant_id, type, attempt)
               select id, tenant_id, 'job.succeeded', 1 from leasehold.jobs where id = any(${finished}::uuid[])`;
  // All but the newest 2,000 events happened two days ago (ids keep growing with time).
  await db.sql`update leasehold.job_events set created_at = now() - interval '2 days'
               where id <= (select max(id) - 2000 from leasehold.job_events)`;
  await db.sql`insert into leasehold.workers (id, host, pid, queues, kinds, concurrency) values ('w1', 'h', 1, null, '{system.noop,system.sleep}', 10)`;
  await db.sql`vacuum analyze leasehold.jobs`;
  await db.sql`vacuum analyze leasehold.job_events`;
}, 120_000);
afterAll(() => db.drop());

async function plan(query: string): Promise<string> {
  const rows = await db.sql.unsafe<{ 'QUERY PLAN': string }[]>(`explain ${query}`);
  return rows.map((r) => r['QUERY PLAN']).join('\n');
}

test.each([
  ['queue_summary', 'select * from leasehold.queue_summary', [/jobs_claim_idx/, /jobs_lease_expiry_idx/, /job_events_pkey/, /jobs_pkey/]],
  ['active_leases', 'select * from leasehold.active_leases', [/jobs_lease_expiry_idx/, /job_events_job_idx/]],
  ['job_diagnosis (all)', 'select * from leasehold.job_diagnosis', [/jobs_claim_idx/]],
  ['job_diagnosis (one job)', `select * from leasehold.job_diagnosis where job_id = '00000000-0000-7000-8000-000000000000'`, [/jobs_pkey/]],
  ['stuck_jobs', 'select * from leasehold.stuck_jobs', [/jobs_lease_expiry_idx/, /jobs_claim_idx/]],
  ['live_workers', 'select * from leasehold.live_workers', [/jobs_lease_expiry_idx/]],
])('%s reads no whole table of jobs or events', async (_name, query, uses) => {
  const text = await plan(query);
  if (process.env.SHOW_PLAN) console.log(text);
  expect(text).not.toMatch(/Seq Scan on (jobs|job_events)\b/);
  for (const index of uses) expect(text).toMatch(index);
});

test('queue_summary answers at 100,000 jobs in well under a second, with the right numbers', async () => {
  const t0 = performance.now();
  const rows = await db.sql`select queue, kind, ready, running, succeeded_1h from leasehold.queue_summary order by queue, kind`;
  const ms = performance.now() - t0;
  expect(rows.reduce((n, r) => n + r.ready, 0)).toBe(2_800);
  expect(rows.reduce((n, r) => n + r.running, 0)).toBe(200);
  // Only the 2,000 newest events fall in the last hour; all of them are job.succeeded.
  expect(rows.reduce((n, r) => n + r.succeeded_1h, 0)).toBe(2_000);
  expect(ms).toBeLessThan(1_000);
});
