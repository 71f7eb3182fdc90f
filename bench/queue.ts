/**
 * `npm run bench:queue`: figures for no-op jobs on this machine, printed, not asserted.
 *   bulk enqueue jobs/s · processing jobs/s at concurrency 10 and 50 · enqueue→handler-start
 *   latency p50/p95/p99 on an idle worker. job_events are written for every transition.
 * Uses DATABASE_URL when set, otherwise a fresh embedded PostgreSQL under .data/bench.
 * `--bulk-only` runs the bulk phase alone; `--checkpoint` starts every round with a CHECKPOINT, so
 * rounds reuse recycled WAL segments as a long-running server does, instead of creating and
 * zero-filling new ones (a fresh cluster creates ~5 a round of 100,000 jobs).
 */
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { connect, type Sql } from '#shared/db/connect.js';
import { startEmbeddedPostgres } from '#shared/db/embedded.js';
import { migrate } from '#shared/db/migrator.js';
import { createLogger } from '#shared/log.js';
import { pgCpuSeconds, postmasterPid } from './pg-cpu.js';
import { median, pct } from './stats.js';
import { yardstickMs } from './yardstick.js';
import { Notifier } from '#shared/jobs/notifier.js';
import { JobQueue } from '#shared/jobs/queue.js';
import { Worker } from '../worker/worker.js';
import { drained, noops, workerLatency } from './systems/leasehold.js';
import { benchServerSettings, describeWal, walInitZeroOption } from './server-settings.js';
import { until } from './systems/system.js';

const { values: opts } = parseArgs({
  options: {
    jobs: { type: 'string', default: '50000' },
    bulk: { type: 'string', default: '100000' },
    samples: { type: 'string', default: '400' },
    rounds: { type: 'string', default: '3' },
    'sync-commit': { type: 'string', default: 'on' },
    'bulk-only': { type: 'boolean', default: false },
    checkpoint: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    ...walInitZeroOption,
  },
});
const N = Number(opts.jobs);
const BULK = Number(opts.bulk);
const SAMPLES = Number(opts.samples);
const ROUNDS = Number(opts.rounds);
const syncCommit = opts['sync-commit'] !== 'off';
const log = createLogger(process.env.LOG_LEVEL ?? 'warn', 'bench');
// With DATABASE_URL the server is not ours to configure.
const walNote = process.env.DATABASE_URL ? 'an external server (its own WAL settings)' : describeWal(opts['wal-init-zero']);

/** CPU microseconds per job spent by this process and by PostgreSQL while `fn` ran. */
async function cpuPerJob<T>(jobs: number, fn: () => Promise<T>): Promise<{ value: T; node_us: number; pg_us: number }> {
  const n0 = process.cpuUsage();
  const p0 = pgPid ? pgCpuSeconds(pgPid) : NaN;
  const value = await fn();
  const n1 = process.cpuUsage(n0);
  const p1 = pgPid ? pgCpuSeconds(pgPid) : NaN;
  // One decimal: bulk figures are a few µs, where whole µs hide a 20 % change.
  return { value, node_us: Math.round((n1.user + n1.system) / jobs * 10) / 10, pg_us: Math.round(((p1 - p0) * 1e7) / jobs) / 10 };
}
let pgPid: number | undefined;


async function reset(sql: Sql) {
  await sql`truncate leasehold.jobs, leasehold.job_events, leasehold.dead_letters, leasehold.workers`;
  await sql`vacuum analyze leasehold.jobs`;
  await sql`vacuum analyze leasehold.job_events`;
  if (opts.checkpoint) await sql`checkpoint`;
}

async function bulkEnqueue(sql: Sql, queue: JobQueue): Promise<Phase> {
  const rates: number[] = [];
  const cpu: { node_us: number; pg_us: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    await reset(sql);
    const jobs = noops(BULK);
    const t0 = performance.now();
    cpu.push(await cpuPerJob(BULK, () => queue.enqueueMany(jobs)));
    rates.push(BULK / ((performance.now() - t0) / 1000));
  }
  return summarise(rates, cpu);
}

/** One figure: median rate of the rounds, with the CPU cost per job of the median round. */
interface Phase {
  rate: number;
  node_us: number;
  pg_us: number;
}

function summarise(rates: number[], cpu: { node_us: number; pg_us: number }[]): Phase {
  const m = rates.indexOf(median(rates));
  return { rate: Math.round(rates[m]!), node_us: cpu[m]!.node_us, pg_us: cpu[m]!.pg_us };
}

async function drain(sql: Sql, workerSql: Sql, queue: JobQueue, concurrency: number): Promise<Phase> {
  const rates: number[] = [];
  const cpu: { node_us: number; pg_us: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    await reset(sql);
    await queue.enqueueMany(noops(N));
    await sql`analyze leasehold.jobs`;
    let done = 0;
    let resolveDone!: () => void;
    const allDone = new Promise<void>((r) => (resolveDone = r));
    const worker = new Worker({
      sql: workerSql,
      log,
      settings: { concurrency },
      handlers: { 'system.noop': () => (++done === N && resolveDone(), null) },
    });
    const t0 = performance.now();
    cpu.push(await cpuPerJob(N, async () => {
      await worker.start();
      await allDone;
      // Counted as processed once the outcome is written, not when the handler returns.
      await until(() => drained(sql));
    }));
    rates.push(N / ((performance.now() - t0) / 1000));
    await worker.stop();
    if (process.env.BENCH_DEBUG) console.error(`c=${concurrency}`, worker.counters, 'avg claim', (worker.counters.claimed / worker.counters.claims).toFixed(1), 'avg claim ms', (worker.counters.claimMs / worker.counters.claims).toFixed(2));
  }
  return summarise(rates, cpu);
}

async function latency(sql: Sql, workerSql: Sql, queue: JobQueue): Promise<number[]> {
  await reset(sql);
  return workerLatency(workerSql, log, queue, SAMPLES);
}

async function main() {
  let url = process.env.DATABASE_URL;
  let stop = async () => {};
  if (!url) {
    rmSync('.data/bench', { recursive: true, force: true });
    const pg = await startEmbeddedPostgres({
      rootDir: '.data/bench',
      port: 54339,
      log,
      settings: {
        ...benchServerSettings(opts['wal-init-zero']),
        ...(process.env.BENCH_STATEMENTS ? { shared_preload_libraries: 'pg_stat_statements' } : {}),
        ...(process.env.BENCH_PG ? Object.fromEntries(process.env.BENCH_PG.split(',').map((kv) => kv.split('='))) : {}),
      },
    });
    url = pg.url;
    stop = () => pg.stop();
    pgPid = postmasterPid('.data/bench/pg');
  }
  const sql = connect(url, { max: 4, application: 'bench-producer' });
  const workerSql = connect(url, { max: 10, application: 'bench-worker', synchronousCommit: syncCommit, worker: true });
  try {
    await migrate(sql);
    const [{ version }] = (await sql`select current_setting('server_version') as version`) as unknown as [{ version: string }];
    const notifier = new Notifier(sql);
    const queue = new JobQueue(sql, notifier);
    const bulk = await bulkEnqueue(sql, queue);
    if (opts['bulk-only']) {
      const y = yardstickMs();
      if (opts.json) console.log(JSON.stringify({ postgres: version, wal: walNote, yardstick_ms: y, bulk_enqueue: bulk, rounds: ROUNDS }, null, 2));
      else console.log(`PostgreSQL ${version}, ${walNote}, median of ${ROUNDS} rounds, machine yardstick ${y} ms (350 = quiet)\nbulk enqueue ${bulk.rate.toLocaleString('en').padStart(8)} jobs/s   cpu/job: node ${bulk.node_us} µs, postgres ${bulk.pg_us} µs`);
      return;
    }
    const c10 = await drain(sql, workerSql, queue, 10);
    if (process.env.BENCH_STATEMENTS) await sql`create extension if not exists pg_stat_statements`.then(() => sql`select pg_stat_statements_reset()`);
    const c50 = await drain(sql, workerSql, queue, 50);
    if (process.env.BENCH_STATEMENTS) {
      const rows = await sql`select calls, round(total_exec_time::numeric, 1) as ms, round((total_exec_time / calls)::numeric, 3) as ms_per_call, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 90) as q from pg_stat_statements order by total_exec_time desc limit 12`;
      console.table(rows);
    }
    const lat = await latency(sql, workerSql, queue);
    const figures = {
      postgres: version,
      wal: walNote,
      yardstick_ms: yardstickMs(),
      worker_synchronous_commit: syncCommit ? 'on' : 'off',
      bulk_enqueue: bulk,
      processing_c10: c10,
      processing_c50: c50,
      latency_ms: { p50: +pct(lat, 50).toFixed(2), p95: +pct(lat, 95).toFixed(2), p99: +pct(lat, 99).toFixed(2), samples: lat.length },
      rounds: ROUNDS,
      jobs_per_round: N,
    };
    if (opts.json) console.log(JSON.stringify(figures, null, 2));
    else {
      console.log(`PostgreSQL ${version}, ${figures.wal}, worker synchronous_commit=${figures.worker_synchronous_commit}, median of ${ROUNDS} rounds, machine yardstick ${figures.yardstick_ms} ms (350 = quiet)`);
      const row = (name: string, p: Phase) =>
        console.log(`${name.padEnd(22)} ${p.rate.toLocaleString('en').padStart(8)} jobs/s   cpu/job: node ${p.node_us} µs, postgres ${p.pg_us} µs`);
      row('bulk enqueue', bulk);
      row('processing, c=10', c10);
      row('processing, c=50', c50);
      console.log(`latency enqueue→start  p50 ${figures.latency_ms.p50} ms  p95 ${figures.latency_ms.p95} ms  p99 ${figures.latency_ms.p99} ms  (${lat.length} samples)`);
    }
  } finally {
    await sql.end();
    await workerSql.end();
    await stop();
  }
}

await main();
