import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { queueFor, testLog } from '../../test/helpers/engine.js';
import { waitFor } from '../../test/helpers/wait.js';
import { EventHub } from './event-hub.js';
import { READ_JOB_VIEWS } from './event-sql.js';

let db: TestDatabase;
let session: Sql;
let hub: EventHub;

beforeAll(async () => {
  db = await createTestDatabase();
  // One connection: every statement of the hub, and the check below, run in the same session.
  session = db.connect({ max: 1 });
  hub = new EventHub({ sql: session, log: testLog, pollMs: 3_600_000, gapTimeoutMs: 2_000, keepAliveMs: 60_000, clientBufferBytes: 1 << 20 });
  await hub.start();
});
afterAll(async () => {
  await hub?.close();
  await db?.drop();
});

describe('EventHub', () => {
  test("reads each batch's jobs with a plan made for that call, not one cached while the table was small", async () => {
    const tenantId = '7e57e7e5-0000-4000-8000-000000000001';
    const sub = hub.subscribe(tenantId, {}, { endOnTerminal: false });
    try {
      // Eight batches, each read by the hub on the one connection: a prepared statement would have
      // switched to a generic plan after its fifth run (a sequential scan while `jobs` holds a few
      // rows, which then stays cached as the table grows: 300–425 ms for 1,000 ids among 60,000).
      for (let i = 0; i < 8; i++) {
        const { id } = await queueFor(db.sql).enqueue({ kind: 'test.noop', queue: 'hub-plans', tenantId });
        const [row] = await db.sql<{ eventId: number }[]>`
          select max(id)::float8 as "eventId" from leasehold.job_events where job_id = ${id}`;
        const eventId = row!.eventId;
        hub.wake();
        await waitFor(() => hub.cursor >= eventId, `the hub to read batch ${i + 1}`);
      }
      const cached = await session<{ n: number }[]>`
        select count(*)::int as n from pg_prepared_statements where statement = ${READ_JOB_VIEWS}`;
      expect(cached[0]!.n).toBe(0);
    } finally {
      sub.close();
    }
  });
});
