import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CLAIM_JOBS, FAIL_JOBS, PREPARED } from '#shared/jobs/queue-sql.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { runCli } from '../test/helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { deferred } from '../test/helpers/deferred.js';
import { waitFor } from '../test/helpers/wait.js';

// Retrying a job and requeueing its dead letter used to lock the two rows in opposite orders (the
// retry: job, then dead letter; a requeue: dead letter, then job). Raced on one job, the two
// deadlocked and PostgreSQL's 40P01 was answered as a 500 (5 of 20 races on each side).

let db: TestDatabase;
let api: TestApi;
let t: { tenantId: string; key: string };
beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' });
  t = await api.tenant('retry-requeue', ['admin']);
});
afterAll(() => db.drop());

interface DeadLettered {
  jobId: string;
  dl: string;
  queue: string;
}

/** A job of its own queue, claimed and failed for good by the worker's own statements. */
async function deadLettered(): Promise<DeadLettered> {
  const queue = `rr-${randomUUID().slice(0, 8)}`;
  const r = await api.request(t.key, 'POST', '/v1/jobs', { kind: 'system.noop', queue });
  const { id } = (await r.json()) as { id: string };
  const token = randomUUID();
  await db.sql.unsafe(CLAIM_JOBS, [[queue], [1], ['system.noop'], 1, 'w', token, 30_000, false], PREPARED);
  await db.sql.unsafe(FAIL_JOBS, [JSON.stringify([{ id, lease_token: token, outcome: 'permanent', message: 'boom', error: { message: 'boom' }, retry_at: null }])], PREPARED);
  const [dl] = await db.sql<{ id: string }[]>`select id from leasehold.dead_letters where job_id = ${id}`;
  return { jobId: id, dl: dl!.id, queue };
}

/** How many times the job was put in its queue: its insert, plus each requeue. */
async function queuedEvents(jobId: string): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`
    select count(*)::int as n from leasehold.job_events where job_id = ${jobId} and type = 'job.queued'`;
  return row!.n;
}

/** Some session of this database waits for a row lock. */
async function someoneWaitsForALock(): Promise<boolean> {
  const [row] = await db.sql<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`;
  return row!.n > 0;
}

describe('retry and dead-letter requeue of one job, at once', () => {
  test('raced through the routes 25 times: one 202 and one 409 every time, never a 500 or a 503', async () => {
    for (let i = 0; i < 25; i++) {
      const { jobId, dl } = await deadLettered();
      const [retry, requeue] = await Promise.all([
        api.request(t.key, 'POST', `/v1/jobs/${jobId}/retry`),
        api.request(t.key, 'POST', `/v1/dead-letters/${dl}/requeue`),
      ]);
      const statuses = [retry.status, requeue.status];
      expect(statuses.sort(), `race ${i}: ${await retry.text()} ${await requeue.text()}`).toEqual([202, 409]);
      expect(await queuedEvents(jobId)).toBe(2);
      const [row] = await db.sql`select status::text, attempts from leasehold.jobs where id = ${jobId}`;
      expect(row).toEqual({ status: 'queued', attempts: 0 });
    }
  }, 120_000);

  // The retry route holds the job row (its first statement) when a requeue arrives, and only then
  // writes the dead letter. Each requeuer must wait for the job, or skip it, before it takes the
  // dead letter: holding the dead letter while it waits for the job is the deadlock.
  const cli = (args: string[]) => runCli(args, { DATABASE_URL: db.url, LOG_LEVEL: 'warn' });
  const requeuers: [string, (d: DeadLettered) => Promise<unknown>, unknown][] = [
    [
      'POST /v1/dead-letters/:id/requeue',
      async (d) => {
        const r = await api.request(t.key, 'POST', `/v1/dead-letters/${d.dl}/requeue`);
        return { status: r.status, code: ((await r.json()) as { code?: string }).code };
      },
      { status: 409, code: 'invalid_state' },
    ],
    [
      'leasehold.requeue_dead_letter()',
      async (d) => (await db.sql`select leasehold.requeue_dead_letter(${d.dl}::uuid) as job_id`)[0]!.job_id,
      null,
    ],
    [
      'leasehold.requeue_dead_letters()',
      async (d) => (await db.sql`select leasehold.requeue_dead_letters(p_queue => ${d.queue}) as n`)[0]!.n,
      0,
    ],
    [
      'leasehold dlq requeue <id>',
      async (d) => {
        const run = await cli(['dlq', 'requeue', d.dl, '--json']);
        return { code: run.code, requeued: run.json().requeued, stderr: run.stderr };
      },
      { code: 1, requeued: false, stderr: expect.stringContaining('already requeued') },
    ],
    [
      'leasehold dlq requeue --queue',
      async (d) => {
        const run = await cli(['dlq', 'requeue', '--queue', d.queue, '--json']);
        return { code: run.code, requeued: run.json().requeued };
      },
      { code: 0, requeued: 0 },
    ],
  ];

  test.each(requeuers)('%s while the retry route holds the job: the retry wins, the requeue finds nothing to do', async (_name, requeue, lost) => {
    const d = await deadLettered();
    const a = db.connect({ max: 1 });
    const locked = deferred();
    const go = deferred();
    const retry = a.begin(async (tx) => {
      await tx`select status from leasehold.jobs where id = ${d.jobId}::uuid and tenant_id = ${t.tenantId}::uuid for update`;
      locked.resolve();
      await go.promise;
      const [r] = await tx<{ ok: boolean }[]>`select leasehold.retry_job(${d.jobId}::uuid, ${t.tenantId}::uuid, 'key:retry') as ok`;
      return r!.ok;
    });
    await locked.promise;
    let settled = false;
    const other = requeue(d).finally(() => (settled = true));
    // Blocked behind the job, or done without waiting (a bulk requeue skips rows others hold).
    await waitFor(async () => settled || (await someoneWaitsForALock()), 'the requeue to wait for the job or finish', 30_000);
    go.resolve();
    const [retried, outcome] = await Promise.all([retry, other]);
    expect(retried).toBe(true);
    expect(outcome).toEqual(lost);
    expect(await queuedEvents(d.jobId)).toBe(2);
  }, 180_000);
});
