import { Logger, makeWorkerUtils, run, type WorkerUtils } from 'graphile-worker';
import pg from 'pg';
import { timeDrain, idleLatency, type QueueSystem } from './system.js';

/**
 * graphile-worker 0.18 in the fast configuration its documentation recommends: its own `pg` pool,
 * a local queue of concurrency + 1 jobs fetched in one statement, and batched completion with no
 * delay (`completeJobBatchDelay: 0`). It writes no event rows; completed jobs are deleted.
 */
export function graphileSystem(url: string): QueueSystem {
  const admin = new pg.Pool({ connectionString: url, max: 4 });
  admin.on('error', (err) => console.error('graphile-worker admin pool:', err.message));
  admin.on('connect', (client) => client.on('error', (err) => console.error('graphile-worker admin client:', err.message)));
  let utils: WorkerUtils;
  const pending = () => admin.query('select count(*)::int as n from graphile_worker._private_jobs').then((r) => r.rows[0].n as number);
  const start = async (concurrency: number, noop: () => void) => {
    // A pool of its own per run, sized as its docs ask (a connection per concurrent job, plus one).
    const pgPool = new pg.Pool({ connectionString: url, max: concurrency + 2 });
    pgPool.on('error', (err) => console.error('graphile-worker pool:', err.message));
    pgPool.on('connect', (client) => client.on('error', (err) => console.error('graphile-worker client:', err.message)));
    const runner = await run({
      pgPool,
      concurrency,
      noHandleSignals: true,
      pollInterval: 1_000,
      logger: quietLogger,
      taskList: { noop: async () => noop() },
      preset: { worker: { localQueue: { size: concurrency + 1 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
    });
    return {
      async stop() {
        await runner.stop();
        // Its shutdown does not wait for the pool it was given.
        await pgPool.end();
      },
    };
  };
  return {
    name: 'graphile-worker',
    async setup() {
      utils = await makeWorkerUtils({ pgPool: admin, logger: quietLogger });
      await utils.migrate();
    },
    async reset() {
      await admin.query('truncate graphile_worker._private_jobs, graphile_worker._private_job_queues');
      await admin.query('vacuum analyze graphile_worker._private_jobs');
    },
    async bulk(n) {
      await utils.addJobs(Array.from({ length: n }, () => ({ identifier: 'noop', payload: {} })));
    },
    async fill(n) {
      await this.bulk(n);
      await admin.query('analyze graphile_worker._private_jobs');
    },
    drain(n, concurrency) {
      return timeDrain(n, (ran) => start(concurrency, ran), async () => (await pending()) === 0);
    },
    latency(samples) {
      return idleLatency(samples, (started) => start(10, started), () => utils.addJob('noop', {}));
    },
    async close() {
      await utils.release();
      await admin.end();
    },
  };
}

// graphile-worker's Logger: a factory of scoped log functions; only errors are shown.
const quietLogger = new Logger(() => (level: string, message: string) => {
  if (level === 'error') console.error(`graphile-worker: ${message}`);
});
