import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { WorkerPool, queueFor } from '../test/helpers/engine.js';
import { OwnCluster } from '../test/helpers/own-cluster.js';
import { waitFor } from '../test/helpers/wait.js';

let cluster: OwnCluster;
const workers = new WorkerPool();

beforeAll(async () => {
  cluster = await OwnCluster.start('restart');
});
afterEach(async () => {
  await workers.stopAll();
  await cluster.endPools();
});
afterAll(async () => {
  await cluster?.remove();
});

async function counts(sql: Sql): Promise<{ jobs: number; succeeded: number }> {
  const [r] = await sql<{ jobs: number; succeeded: number }[]>`
    select count(*)::int as jobs, count(*) filter (where status = 'succeeded')::int as succeeded from leasehold.jobs`;
  return r!;
}

describe('PostgreSQL restart', () => {
  test('a worker survives a restart mid-run: it reconnects, LISTEN included, and every job succeeds exactly once', async () => {
    const workerSql = cluster.open(10);
    const producerSql = cluster.open(4);
    const checkSql = cluster.open(1);
    const runs = new Map<string, number>();
    const worker = await workers.start({
      sql: workerSql,
      // The poll is an hour away: after the restart only the worker's own reconnection (its
      // re-LISTEN, and the NOTIFYs that follow) can get jobs claimed again.
      settings: { concurrency: 10, leaseMs: 3_000, heartbeatMs: 500, reclaimMs: 250, pollMs: 3_600_000 },
      handlers: {
        'test.restart': async (_p: unknown, ctx) => {
          runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1);
          await sleep(20, undefined, { signal: ctx.signal });
        },
      },
      kinds: { 'test.restart': { queue: 'restart', maxAttempts: 20, retry: { initialMs: 50, factor: 1, maxMs: 50, jitter: 0 } } },
    });

    // A producer that keeps going through the outage: a failed batch may or may not have committed,
    // so the table is the truth for "every job", and acknowledged ids must all be in it.
    const acked = new Set<string>();
    let producerErrors = 0;
    let producing = true;
    const q = queueFor(producerSql);
    const producer = (async () => {
      while (producing) {
        try {
          for (const id of (await q.enqueueMany(Array.from({ length: 25 }, () => ({ kind: 'test.restart', queue: 'restart' })))).ids) acked.add(id);
        } catch {
          producerErrors++;
        }
        await sleep(15);
      }
    })();

    try {
      // Mid-run: handlers running, a backlog queued (the producer outpaces 10 × 20 ms handlers).
      await waitFor(async () => {
        const c = await counts(checkSql);
        return c.succeeded >= 100 && c.jobs - c.succeeded >= 50 && worker.running > 0;
      }, 'the run to get going with a backlog');

      await cluster.stop();
      await waitFor(() => producerErrors > 0, 'the producer to notice the outage');
      await cluster.restart();

      // The producer's pool reconnects; work enqueued after the restart gets done.
      const ackedAtRestart = acked.size;
      await waitFor(() => acked.size >= ackedAtRestart + 200, 'the producer to enqueue again', 15_000);
    } finally {
      producing = false;
      await producer;
    }

    await waitFor(async () => {
      const c = await counts(checkSql);
      return c.jobs === c.succeeded && c;
    }, 'every job to succeed', 15_000);

    const jobs = await checkSql<{ id: string; status: string }[]>`select id, status::text from leasehold.jobs`;
    const ids = new Set(jobs.map((j) => j.id));
    // None lost: every acknowledged enqueue is a job, and every job succeeded.
    for (const id of acked) expect(ids.has(id)).toBe(true);
    expect(jobs.every((j) => j.status === 'succeeded')).toBe(true);
    // Exactly once to completion: one job.succeeded event per job, none without its job.
    const [ev] = await checkSql<{ events: number; jobs: number; max_per_job: number }[]>`
      select count(*)::int as events, count(distinct job_id)::int as jobs,
             coalesce(max(n), 0)::int as max_per_job
      from (select job_id, count(*) over (partition by job_id) as n from leasehold.job_events where type = 'job.succeeded') e`;
    expect(ev).toEqual({ events: jobs.length, jobs: jobs.length, max_per_job: 1 });
    // The handler ran for every job (a re-run after the outage is allowed; a second success is not).
    for (const id of ids) expect(runs.get(id) ?? 0).toBeGreaterThanOrEqual(1);

    // The listener reconnected too: with the poll an hour away, a new job starts at once.
    const t0 = Date.now();
    const { id } = await q.enqueue({ kind: 'test.restart', queue: 'restart' });
    await waitFor(async () => {
      const [r] = await checkSql<{ status: string }[]>`select status::text from leasehold.jobs where id = ${id}`;
      return r!.status === 'succeeded';
    }, 'a job enqueued after the restart to run', 3_000);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(runs.get(id)).toBe(1);
  });
});
