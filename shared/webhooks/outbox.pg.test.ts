import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { COMPLETE_JOBS, FAIL_JOBS, PREPARED } from '#shared/jobs/queue-sql.js';
import { SYSTEM_TENANT } from '#shared/jobs/queue.js';
import { reclaimExpired } from '../../worker/reclaimer.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { insertJobs } from '../../test/helpers/job-factory.js';

// The outbox: every path that ends a job writes its deliveries, and their webhook.deliver jobs,
// in the transaction of the transition itself, and nothing when that transaction rolls back.

let db: TestDatabase;
let hook: string;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());
beforeEach(async () => {
  await db.sql`delete from leasehold.webhooks`;
  hook = randomUUID();
  await db.sql`
    insert into leasehold.webhooks (id, tenant_id, url, events, secret)
    values (${hook}, ${SYSTEM_TENANT}, 'https://example.com/hook', '{job.succeeded,job.failed,job.cancelled}', 'plain:whsec_AAAA')`;
});

interface Delivery {
  id: string;
  webhook_id: string | null;
  url: string | null;
  event: string;
  error: string | null;
  deliver_job_id: string;
  deliver_kind: string;
  deliver_queue: string;
  deliver_payload: { delivery_id: string };
}
const deliveriesOf = (jobId: string) => db.sql<Delivery[]>`
  select d.id, d.webhook_id, d.url, d.event, d.error, d.deliver_job_id, j.kind as deliver_kind, j.queue as deliver_queue,
         j.payload as deliver_payload
  from leasehold.webhook_deliveries d left join leasehold.jobs j on j.id = d.deliver_job_id
  where d.job_id = ${jobId} order by d.webhook_id nulls last`;

describe('the webhook outbox', () => {
  test('a success writes one delivery per subscription and one for the job\'s own webhook_url, each with its deliver job', async () => {
    const token = randomUUID();
    const [id] = await insertJobs(db.sql, [{ status: 'running', leaseToken: token, payload: { webhook_url: 'https://example.org/cb' } }]);
    const [row] = await db.sql.unsafe(COMPLETE_JOBS, [[id!], [token], '{}', false], PREPARED);
    expect(row).toMatchObject({ written: 1, webhooks: 2, fenced: null });
    const ds = await deliveriesOf(id!);
    expect(ds).toHaveLength(2);
    expect(ds[0]).toMatchObject({ webhook_id: hook, url: null, event: 'job.succeeded' });
    expect(ds[1]).toMatchObject({ webhook_id: null, url: 'https://example.org/cb', event: 'job.succeeded' });
    for (const d of ds) {
      expect(d).toMatchObject({ deliver_kind: 'webhook.deliver', deliver_queue: 'webhooks', deliver_payload: { delivery_id: d.id } });
    }
  });

  test('a rolled-back completion leaves neither deliveries nor deliver jobs', async () => {
    const token = randomUUID();
    const [id] = await insertJobs(db.sql, [{ status: 'running', leaseToken: token }]);
    const before = await db.sql`select count(*)::int as n from leasehold.jobs where kind = 'webhook.deliver'`;
    await db.sql
      .begin(async (tx) => {
        await tx.unsafe(COMPLETE_JOBS, [[id!], [token], '{}', false]);
        expect(await tx`select 1 from leasehold.webhook_deliveries where job_id = ${id!}`).toHaveLength(1);
        throw new Error('crash before commit');
      })
      .catch((err: Error) => expect(err.message).toBe('crash before commit'));
    expect(await deliveriesOf(id!)).toEqual([]);
    expect(await db.sql`select count(*)::int as n from leasehold.jobs where kind = 'webhook.deliver'`).toEqual(before);
    expect(await db.sql`select status from leasehold.jobs where id = ${id!}`).toEqual([{ status: 'running' }]);
  });

  test('a final failure from a worker carries the error; a retry writes nothing', async () => {
    const tokens = [randomUUID(), randomUUID()];
    const [last, more] = await insertJobs(db.sql, [
      { status: 'running', leaseToken: tokens[0], attempts: 3, maxAttempts: 3 },
      { status: 'running', leaseToken: tokens[1], attempts: 1, maxAttempts: 3 },
    ]);
    const input = [last, more].map((id, i) => ({ id, lease_token: tokens[i], outcome: 'retry', message: 'boom', error: { message: 'boom' }, retry_at: new Date().toISOString() }));
    await db.sql.unsafe(FAIL_JOBS, [JSON.stringify(input)], PREPARED);
    expect(await deliveriesOf(last!)).toMatchObject([{ event: 'job.failed', error: 'boom', webhook_id: hook }]);
    expect(await deliveriesOf(more!)).toEqual([]);
  });

  test('the reclaimer failing a job out of attempts, and cancel_job() on a queued one, write theirs too', async () => {
    const [stale] = await insertJobs(db.sql, [{ status: 'running', attempts: 3, maxAttempts: 3, leaseExpiresAt: new Date(Date.now() - 1_000) }]);
    const [queued] = await insertJobs(db.sql, [{ status: 'queued', payload: { webhook_url: 'https://example.org/cb' } }]);
    const report = await reclaimExpired(db.sql);
    expect(report.failed).toBe(1);
    expect(await deliveriesOf(stale!)).toMatchObject([{ event: 'job.failed', error: expect.stringContaining('lease expired') }]);
    await db.sql`select leasehold.cancel_job(${queued!})`;
    // The subscription asked for job.cancelled; the job's own webhook_url gets succeeded and failed only.
    expect(await deliveriesOf(queued!)).toMatchObject([{ event: 'job.cancelled', webhook_id: hook, url: null }]);
  });

  test("a job's own webhook_url: a delivery when it succeeds or fails for good, none when it is cancelled", async () => {
    await db.sql`delete from leasehold.webhooks`;
    const url = 'https://example.org/own';
    const tokens = [randomUUID(), randomUUID(), randomUUID()];
    const [ok, bad, stopped] = await insertJobs(db.sql, tokens.map((leaseToken) => ({ status: 'running', leaseToken, payload: { webhook_url: url } })));
    const [queued] = await insertJobs(db.sql, [{ status: 'queued', payload: { webhook_url: url } }]);
    const deliverJobs = () => db.sql`select count(*)::int as n from leasehold.jobs where kind = 'webhook.deliver'`;
    const before = await deliverJobs();

    // A worker's cancellation and cancel_job() on a queued job: nothing to send.
    const cancelled = [{ id: stopped, lease_token: tokens[2], outcome: 'cancelled', message: 'cancelled', error: null, retry_at: null }];
    expect(await db.sql.unsafe(FAIL_JOBS, [JSON.stringify(cancelled)], PREPARED)).toMatchObject([{ id: stopped, status: 'cancelled' }]);
    expect((await db.sql`select leasehold.cancel_job(${queued!})::text as s`)[0]!.s).toBe('cancelled');
    expect(await deliveriesOf(stopped!)).toEqual([]);
    expect(await deliveriesOf(queued!)).toEqual([]);
    expect(await deliverJobs()).toEqual(before);

    const [row] = await db.sql.unsafe(COMPLETE_JOBS, [[ok!], [tokens[0]!], '{}', false], PREPARED);
    expect(row).toMatchObject({ written: 1, webhooks: 1 });
    const failed = [{ id: bad, lease_token: tokens[1], outcome: 'permanent', message: 'boom', error: { message: 'boom' }, retry_at: null }];
    await db.sql.unsafe(FAIL_JOBS, [JSON.stringify(failed)], PREPARED);
    expect(await deliveriesOf(ok!)).toMatchObject([{ event: 'job.succeeded', webhook_id: null, url, deliver_kind: 'webhook.deliver' }]);
    expect(await deliveriesOf(bad!)).toMatchObject([{ event: 'job.failed', webhook_id: null, url, error: 'boom', deliver_kind: 'webhook.deliver' }]);
  });

  test('disabled subscriptions, subscriptions to other events and webhook.deliver jobs themselves get none', async () => {
    await db.sql`update leasehold.webhooks set events = '{job.failed}'`;
    const other = randomUUID();
    await db.sql`
      insert into leasehold.webhooks (id, tenant_id, url, events, secret, disabled_at)
      values (${other}, ${SYSTEM_TENANT}, 'https://example.com/off', '{job.succeeded}', 'plain:whsec_AAAA', now())`;
    const tokens = [randomUUID(), randomUUID()];
    const ids = await insertJobs(db.sql, [
      { status: 'running', leaseToken: tokens[0] },
      { status: 'running', leaseToken: tokens[1], kind: 'webhook.deliver', attempts: 3, maxAttempts: 3 },
    ]);
    const [row] = await db.sql.unsafe(COMPLETE_JOBS, [[ids[0]!], [tokens[0]!], '{}', false], PREPARED);
    expect(row).toMatchObject({ written: 1, webhooks: 0 });
    expect(await deliveriesOf(ids[0]!)).toEqual([]);
    const input = [{ id: ids[1], lease_token: tokens[1], outcome: 'permanent', message: 'gone', error: { message: 'gone' }, retry_at: null }];
    await db.sql.unsafe(FAIL_JOBS, [JSON.stringify(input)], PREPARED);
    expect(await deliveriesOf(ids[1]!)).toEqual([]);
  });
});
