import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, eventTypes, jobRow, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

describe('worker', () => {
  test('runs an enqueued job once and records every transition', async () => {
    const seen: unknown[] = [];
    await pool.start({
      sql: db.sql,
      handlers: { 'test.echo': async (p: unknown) => (seen.push(p), { echoed: p }) },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.echo', payload: { n: 1 } });
    const row = await waitFor(async () => {
      const r = await jobRow(db.sql, id);
      return r.status === 'succeeded' && r;
    }, 'job to succeed');
    expect(seen).toEqual([{ n: 1 }]);
    expect(row.result).toEqual({ echoed: { n: 1 } });
    expect(row.attempts).toBe(1);
    expect(row.lease_token).toBeNull();
    expect(await eventTypes(db.sql, id)).toEqual(['job.queued', 'job.running', 'job.succeeded']);
  });

  test('a starting worker forgets workers unseen for a week and keeps the rest', async () => {
    await db.sql`
      insert into leasehold.workers (id, host, pid, kinds, concurrency, last_seen_at, stopped_at) values
        ('gone-8d', 'h', 1, '{}', 1, now() - interval '8 days', null),
        ('stopped-8d', 'h', 2, '{}', 1, now() - interval '8 days', now() - interval '8 days'),
        ('recent-1d', 'h', 3, '{}', 1, now() - interval '1 day', now() - interval '1 day')`;
    await pool.start({ sql: db.sql });
    const ids = (await db.sql<{ id: string }[]>`select id from leasehold.workers`).map((r) => r.id);
    expect(ids).toContain('recent-1d');
    expect(ids).not.toContain('gone-8d');
    expect(ids).not.toContain('stopped-8d');
  });

  test('a claim that fails retries by itself soon after, without waiting for a NOTIFY or the poll', async () => {
    // Claims fail (their UPDATE raises) while the flag is set: a database that is back but was
    // down when the wake-up arrived, as after a restart.
    await db.sql.unsafe(`
      create table claim_fault (on_ boolean not null);
      insert into claim_fault values (true);
      create function claim_fault() returns trigger language plpgsql as $$
      begin
        if (select on_ from claim_fault) and new.status = 'running' then raise exception 'injected claim failure'; end if;
        return new;
      end $$;
      create trigger claim_fault before update on leasehold.jobs for each row execute function claim_fault();`);
    try {
      const ran: string[] = [];
      await pool.start({
        sql: db.sql,
        settings: { pollMs: 3_600_000 },
        handlers: { 'test.after-fault': (_p: unknown, ctx) => void ran.push(ctx.id) },
      });
      const { id } = await queueFor(db.sql).enqueue({ kind: 'test.after-fault' });
      await waitFor(async () => (await db.sql`select 1 from leasehold.job_events where type = 'job.queued' and job_id = ${id}`).length > 0, 'the job');
      await new Promise((r) => setTimeout(r, 300)); // let the woken claim fail a few times
      expect(ran).toEqual([]);
      await db.sql`update claim_fault set on_ = false`;
      await waitFor(() => ran.includes(id), 'the job to run once claims work again', 5_000);
    } finally {
      await db.sql.unsafe('drop trigger claim_fault on leasehold.jobs; drop function claim_fault(); drop table claim_fault;');
    }
  });
});
