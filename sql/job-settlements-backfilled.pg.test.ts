import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { connect, type Sql } from '#shared/db/connect.js';
import { migrate, readMigrations } from '#shared/db/migrator.js';
import { withDatabase } from '../test/helpers/db.js';

// Migration 0010 on a database whose paid jobs were settled by 0004's governor_settle: a job that
// has ended is recorded as counted in spend_daily at what its calls cost, so a retry after the
// migration does not count it again; nothing already in spend_daily changes.

const name = `t_0010_${randomBytes(5).toString('hex')}`;
let sql: Sql;
beforeAll(async () => {
  const admin = connect(inject('pgAdminUrl'), { max: 1 });
  await admin.unsafe(`create database ${name} template template0`).finally(() => admin.end());
  sql = connect(withDatabase(inject('pgAdminUrl'), name), { max: 2 });
});
afterAll(async () => {
  await sql.end({ timeout: 5 });
  const admin = connect(inject('pgAdminUrl'), { max: 1 });
  await admin.unsafe(`drop database if exists ${name} with (force)`).finally(() => admin.end());
});

/** A paid job of the (unmetered) system tenant, queued with an estimate of 5,000 µ$. */
async function paidJob(): Promise<string> {
  const id = randomUUID();
  await sql`insert into leasehold.jobs (id, kind, queue, status, estimate_micros) values (${id}, 'manifest.extract', 'ai', 'queued', 5000)`;
  return id;
}

/** Ends the job failed, after a model call costing `cost` (none when null), and settles it as the worker does. */
async function failWith(id: string, cost: number | null): Promise<void> {
  await sql.begin(async (tx) => {
    if (cost !== null) {
      await tx`select leasehold.record_cost(${id}::uuid, '00000000-0000-0000-0000-000000000000'::uuid, 'manifest.extract', 1, 'openai',
        'gpt-4o-mini', 'gpt-4o-mini', '2026-11-05', 1000, 0, 0, 1000, 150000, 75000, 150000, 600000, ${cost}::bigint)`;
    }
    const [j] = await tx`update leasehold.jobs set status = 'failed', finished_at = now() where id = ${id}
      returning id, tenant_id, kind, estimate_micros`;
    await tx`select leasehold.governor_settle(array[${j!.id}]::uuid[], array[${j!.tenant_id}]::uuid[], array[${j!.kind}], array[${j!.estimate_micros}]::bigint[])`;
  });
}

const counted = async () => (await sql`
  select settled_jobs, settled_estimate_micros::int as estimated, settled_actual_micros::int as actual
  from leasehold.spend_daily where kind = 'manifest.extract'`)[0];

test('0010 records the paid jobs that have ended as counted; one retried after it is not counted again', async () => {
  const all = readMigrations();
  await migrate(sql, all.filter((m) => m.version < '0010'));
  const ended = await paidJob();
  await failWith(ended, 1000);
  // Retried before the migration and not ended again yet: nothing says what was counted for it.
  const inFlight = await paidJob();
  await failWith(inFlight, null);
  await sql`select leasehold.retry_job(${inFlight}::uuid)`;
  const free = randomUUID();
  await sql`insert into leasehold.jobs (id, kind, status, finished_at) values (${free}, 'system.noop', 'succeeded', now())`;
  const before = await counted();
  expect(before).toEqual({ settled_jobs: 2, estimated: 10_000, actual: 1000 });

  expect(await migrate(sql, all)).toEqual(all.filter((m) => m.version >= '0010').map((m) => `${m.version}_${m.name}`));
  expect(await sql`select job_id, settlements, actual_micros::int as actual from leasehold.job_settlements`)
    .toEqual([{ job_id: ended, settlements: 1, actual: 1000 }]);
  expect(await counted()).toEqual(before);

  // Retried and failed again with no new call: neither the job nor its cost counts again.
  await sql`select leasehold.retry_job(${ended}::uuid)`;
  await failWith(ended, null);
  expect(await counted()).toEqual(before);
  // The job in flight counts once more when it ends (as the migration says), and from then on once.
  await failWith(inFlight, 300);
  expect(await counted()).toEqual({ settled_jobs: 3, estimated: 15_000, actual: 1300 });
  await sql`select leasehold.retry_job(${inFlight}::uuid)`;
  await failWith(inFlight, 200);
  expect(await counted()).toEqual({ settled_jobs: 3, estimated: 15_000, actual: 1500 });
});
