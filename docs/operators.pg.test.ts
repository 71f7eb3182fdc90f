import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { seedOperatorFixture, type OperatorFixture } from '../test/helpers/operator-fixture.js';

const GUIDE = readFileSync(new URL('./operators.md', import.meta.url), 'utf8');
const BLOCKS = [...GUIDE.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!);

let db: TestDatabase;
let f: OperatorFixture;
beforeAll(async () => {
  db = await createTestDatabase();
  f = await seedOperatorFixture(db.sql);
  await db.sql`insert into leasehold.workers (id, host, pid, queues, kinds, concurrency)
               values ('worker-a', 'host-1', 4242, '{default}', '{system.noop,system.sleep}', 10)`;
  await db.sql`insert into leasehold.uploads (tenant_id, storage_key, content_type, size_bytes, created_by, expires_at)
               values ('00000000-0000-0000-0000-000000000000', 'uploads/00000000-0000-0000-0000-000000000000/0190b000-0000-7000-8000-000000000001/a.png',
                       'image/png', 68, 'key:docs', now() + interval '15 minutes')`;
  await db.sql`insert into leasehold.uploads_daily (tenant_id, day, uploads, bytes)
               values ('00000000-0000-0000-0000-000000000000', (now() at time zone 'utc')::date, 1, 68)`;
});
afterAll(() => db.drop());

/** The block with its placeholders replaced by rows of the fixture that the statement can act on. */
function fill(block: string): string {
  const jobId = block.includes('retry_job(') ? f.failed : block.includes('extend_lease(') ? f.running : f.queued;
  return block
    .replaceAll("'<job-id>'", `'${jobId}'`)
    .replaceAll("'<dead-letter-id>'", `'${f.deadLetter}'`)
    .replaceAll("'<queue>'", "'default'")
    .replaceAll("'<kind>'", "'system.noop'");
}

/** Result rows as plain objects. */
type Rows = Record<string, unknown>[];
class Rollback extends Error {}

/**
 * Runs a block as psql would (simple protocol, several statements allowed), hands the rows of
 * its last statement and the transaction to `check`, then rolls everything back.
 */
async function runRolledBack(sql: Sql, text: string, check: (rows: Rows, tx: Sql) => Promise<void>): Promise<void> {
  await sql
    .begin(async (tx) => {
      const result = (await tx.unsafe(text)) as unknown as Rows | Rows[];
      const rows = Array.isArray(result[0]) ? (result.at(-1) as Rows) : (result as Rows);
      await check(rows, tx as unknown as Sql);
      throw new Rollback();
    })
    .catch((err: unknown) => {
      if (!(err instanceof Rollback)) throw err;
    });
}

const column = (rows: Rows, key: string) => rows.map((r) => r[key]);

/** What a block that contains the key must show against the fixture: the guide's promises. */
const PROMISES: [string, (rows: Rows, tx: Sql) => void | Promise<void>][] = [
  ['from leasehold.queue_summary', (rows) => {
    expect(rows).toContainEqual(expect.objectContaining({ queue: 'default', kind: 'system.noop', ready: 1, scheduled: 1, succeeded_1h: 1, failed_1h: 1 }));
    expect(rows).toContainEqual(expect.objectContaining({ queue: 'default', kind: 'system.sleep', running: 2 }));
  }],
  // worker-a serves queue default with 10 slots and holds one lease: nothing blocks the queued job.
  ['from leasehold.job_diagnosis\nwhere job_id', (rows) => expect(rows).toEqual([expect.objectContaining({ reason: 'ready' })])],
  ['group by queue, reason', (rows) => expect(rows).toContainEqual(expect.objectContaining({ queue: 'images', reason: 'no_worker', jobs: '1' }))],
  ['from leasehold.live_workers\norder by id', (rows) => expect(rows).toEqual([expect.objectContaining({ id: 'worker-a', holding: 1, free_slots: 9 })])],
  ['as live_workers', (rows) => expect(rows).toContainEqual(expect.objectContaining({ name: 'default', live_workers: '1' }))],
  ['from leasehold.active_leases', (rows) => expect(column(rows, 'job_id')).toEqual([f.expired, f.running])],
  ['order by stuck_for desc', (rows) => {
    expect(rows).toContainEqual(expect.objectContaining({ job_id: f.expired, problem: 'lease_expired', lease_owner: 'worker-dead' }));
    expect(rows).toContainEqual(expect.objectContaining({ job_id: f.overdue, problem: 'overdue', detail: expect.stringMatching(/^no_worker: /) }));
  }],
  ["set leasehold.stuck_after = '1 minute'", (rows) => expect(column(rows, 'job_id')).toContain(f.overdue)],
  // The fixture inserts rows directly; the jobs_inserted trigger records each one's first event.
  ['from leasehold.job_events', (rows) => expect(rows).toEqual([expect.objectContaining({ type: 'job.queued', attempt: 0 })])],
  ['requeued_at is null\norder by', (rows) => expect(column(rows, 'id')).toEqual([f.deadLetter])],
  ['jsonb_array_elements(d.errors)', (rows) => expect(column(rows, 'message')).toEqual(['boom 1', 'boom 2', 'boom 3'])],
  ['from leasehold.dead_letter_summary', (rows) => expect(rows).toEqual([expect.objectContaining({ queue: 'default', kind: 'system.noop', last_error: 'boom 3', open: 1 })])],
  ['requeue_dead_letter(', (rows) => expect(Object.values(rows[0]!)).toEqual([f.failed])],
  ['requeue_dead_letters(', async (rows, tx) => {
    expect(Object.values(rows[0]!)).toEqual([1]);
    expect(await tx`select actor, action from leasehold.admin_actions`).toEqual([{ actor: 'ops:alice', action: 'requeue_dead_letters' }]);
  }],
  ['retry_job(', (rows) => expect(Object.values(rows[0]!)).toEqual([true])],
  ['cancel_job(', (rows) => expect(Object.values(rows[0]!)).toEqual(['cancelled'])],
  ['extend_lease(', async (rows, tx) => {
    expect(Object.values(rows[0]!)[0]).toBeInstanceOf(Date);
    // Not a transition: no job event, one admin_actions row naming the worker that holds the lease.
    expect(await tx`select type from leasehold.job_events where job_id = ${f.running}`).toEqual([{ type: 'job.running' }]);
    expect(await tx`select action, target, result ->> 'worker' as worker from leasehold.admin_actions`)
      .toEqual([{ action: 'extend_lease', target: f.running, worker: 'worker-a' }]);
  }],
  ['pause_queue(', async (_rows, tx) =>
    expect(await tx`select paused_at is not null as paused from leasehold.queues where name = 'default'`).toEqual([{ paused: true }])],
  ['resume_queue(', async (rows, tx) => {
    expect(Object.values(rows[0]!)).toEqual([true]);
    expect(await tx`select paused_at from leasehold.queues where name = 'default'`).toEqual([{ paused_at: null }]);
  }],
  // The block runs after a pause in the same transaction (see below): the pause is listed.
  ['from leasehold.admin_actions', (rows) => expect(rows).toEqual([expect.objectContaining({ action: 'pause_queue', target: 'default' })])],
  ['finished_jobs_past_retention', (rows) => expect(rows).toEqual([{ finished_jobs_past_retention: '0' }])],
  ['insert into leasehold.schedules', async (_rows, tx) =>
    expect(await tx`select name, kind, queue, enabled from leasehold.schedules`).toEqual([{ name: 'nightly-report', kind: 'system.noop', queue: 'default', enabled: true }])],
  ['from leasehold.schedules s', (rows) => expect(rows).toEqual([])],
  ['where t.job_id is null', (rows) => expect(rows).toEqual([])],
  ['from leasehold.uploads u', (rows) => expect(rows).toEqual([expect.objectContaining({ tenant: 'system', content_type: 'image/png', size_bytes: '68', created_by: 'key:docs', received_at: null, used_at: null })])],
  ['from leasehold.uploads_daily d', (rows) => expect(rows).toEqual([{ tenant: 'system', uploads: 1, bytes: '68' }])],
];

describe('docs/operators.md', () => {
  test('has SQL blocks for every task the guide promises, and only placeholders it knows', () => {
    expect(BLOCKS.length).toBeGreaterThanOrEqual(PROMISES.length);
    for (const [key] of PROMISES) expect(BLOCKS.filter((b) => fill(b).includes(key)), `a block with ${JSON.stringify(key)}`).not.toEqual([]);
    for (const block of BLOCKS) expect(fill(block)).not.toMatch(/<[a-z-]+>/);
  });

  test.each(BLOCKS.map((b, i) => [i + 1, b.split('\n')[0]!, b] as const))('block %i (%s) runs and does what the guide says', async (_i, _first, block) => {
    const text = fill(block);
    const promises = PROMISES.filter(([key]) => text.includes(key));
    // Resuming only does something to a paused queue: pause it first, in the same transaction.
    const setup = text.includes('resume_queue(') || text.includes('from leasehold.admin_actions') ? "select leasehold.pause_queue('default');\n" : '';
    await runRolledBack(db.sql, setup + text, async (rows, tx) => {
      for (const [, check] of promises) await check(rows, tx);
    });
  });
});
