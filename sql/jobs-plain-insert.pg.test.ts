import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';

// Operators insert jobs by hand (docs/operators.md): jobs.id defaults to leasehold.uuid_v7(), so a
// plain insert needs no id of its own and still sorts by creation time, as retention expects.

let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('insert into leasehold.jobs (kind) values (…) makes a queued job with a UUIDv7 id and its job.queued event', async () => {
  const [job] = await db.sql<{ id: string; status: string; queue: string; tenant_id: string }[]>`
    insert into leasehold.jobs (kind) values ('system.noop') returning id, status::text, queue, tenant_id`;
  expect(job).toEqual({ id: expect.stringMatching(V7), status: 'queued', queue: 'default', tenant_id: '00000000-0000-0000-0000-000000000000' });
  expect(await db.sql`select type, attempt from leasehold.job_events where job_id = ${job!.id}`).toEqual([{ type: 'job.queued', attempt: 0 }]);
  const [{ floor }] = await db.sql`select ${job!.id}::uuid < leasehold.uuid_v7_floor(now() + interval '1 second') as floor`;
  expect(floor).toBe(true);
});

test('many rows in one statement, and COPY without an id column, each get their own id in creation order', async () => {
  const rows = await db.sql<{ id: string }[]>`
    insert into leasehold.jobs (kind, payload) select 'system.noop', jsonb_build_object('n', n) from generate_series(1, 50) n returning id`;
  expect(new Set(rows.map((r) => r.id)).size).toBe(50);
  for (const r of rows) expect(r.id).toMatch(V7);

  const reserved = await db.sql.reserve();
  try {
    const copy = await reserved`copy leasehold.jobs (kind, queue) from stdin`.writable();
    await new Promise<void>((resolve, reject) => {
      copy.on('error', reject).on('finish', resolve);
      copy.end('system.noop\tcopied\nsystem.noop\tcopied\n');
    });
  } finally {
    reserved.release();
  }
  const copied = await db.sql<{ id: string }[]>`select id from leasehold.jobs where queue = 'copied' order by id`;
  expect(copied).toHaveLength(2);
  for (const r of copied) expect(r.id).toMatch(V7);
  expect(copied[0]!.id > rows.map((r) => r.id).sort().at(-1)!).toBe(true);
});
