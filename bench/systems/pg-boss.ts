import { PgBoss } from 'pg-boss';
import pg from 'pg';
import { timeDrain, idleLatency, type QueueSystem } from './system.js';

const QUEUE = 'noop';

/**
 * pg-boss 12 in the fast configuration its documentation recommends: workers fetch `batchSize`
 * jobs per statement and keep fetching while batches come back full (`burstWhenBatchFull`),
 * LISTEN/NOTIFY wakes them (`useListenNotify`, queue `notify: true`), bulk enqueue through
 * `insert`. Concurrency C runs ceil(C / 50) local workers with batches of C / that: jobs in flight
 * never exceed C. Maintenance and scheduling are off, as a benchmark has no use for them. No event
 * rows.
 */
export function pgBossSystem(url: string): QueueSystem {
  const admin = new pg.Pool({ connectionString: url, max: 2 });
  admin.on('error', (err) => console.error('pg-boss admin pool:', err.message));
  const boss = new PgBoss({ connectionString: url, max: 10, useListenNotify: true, supervise: false, schedule: false });
  boss.on('error', (err: unknown) => console.error('pg-boss:', err));
  const pending = () =>
    admin.query(`select count(*)::int as n from pgboss.job where name = $1 and state in ('created', 'retry', 'active')`, [QUEUE]).then((r) => r.rows[0].n as number);
  const jobs = (n: number) => Array.from({ length: n }, () => ({ data: {} }));
  const work = async (concurrency: number, onJobs: (count: number) => void) => {
    const localConcurrency = Math.ceil(concurrency / 50);
    const batchSize = Math.max(1, Math.floor(concurrency / localConcurrency));
    await boss.work(
      QUEUE,
      { batchSize, localConcurrency, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 30 },
      async (batch: unknown[]) => onJobs(batch.length),
    );
    return { stop: () => boss.offWork(QUEUE, { wait: true }) };
  };
  return {
    name: 'pg-boss',
    async setup() {
      await boss.start();
      await boss.createQueue(QUEUE, { notify: true });
    },
    async reset() {
      await boss.deleteAllJobs(QUEUE);
      await admin.query('vacuum analyze pgboss.job');
    },
    async bulk(n) {
      // insert() writes one statement per call; its docs name it for bulk loads.
      for (let i = 0; i < n; i += 10_000) await boss.insert(QUEUE, jobs(Math.min(10_000, n - i)));
    },
    async fill(n) {
      await this.bulk(n);
      await admin.query('analyze pgboss.job');
    },
    drain(n, concurrency) {
      return timeDrain(n, (ran) => work(concurrency, ran), async () => (await pending()) === 0);
    },
    latency(samples) {
      return idleLatency(samples, (started) => work(10, started), () => boss.send(QUEUE, {}));
    },
    async close() {
      await boss.stop({ graceful: false });
      await admin.end();
    },
  };
}
