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
});
