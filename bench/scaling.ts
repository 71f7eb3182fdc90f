/**
 * `npm run bench:scaling`: 1, 2 and 4 `leasehold worker` processes on one PostgreSQL. For each
 * configuration the workers start and register first, then N no-op jobs land in one COPY, and the
 * clock runs from that commit until every outcome is written. Reported per configuration: jobs/s,
 * and the CPU PostgreSQL and the workers spent (µs per job, and cores busy on average), read from
 * /proc. Printed, not asserted; on a 2-core machine, PostgreSQL and the workers share the cores.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connect } from '#shared/db/connect.js';
import { startEmbeddedPostgres } from '#shared/db/embedded.js';
import { migrate } from '#shared/db/migrator.js';
import { Notifier } from '#shared/jobs/notifier.js';
import { JobQueue } from '#shared/jobs/queue.js';
import { createLogger } from '#shared/log.js';
import { pgCpuSeconds, postmasterPid, processCpuSeconds } from './pg-cpu.js';
import { drained } from './systems/leasehold.js';
import { benchServerSettings, describeWal, walInitZeroOption } from './server-settings.js';
import { until } from './systems/system.js';
import { yardstickMs } from './yardstick.js';

const { values: opts } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2,4' },
    jobs: { type: 'string', default: '100000' },
    concurrency: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    ...walInitZeroOption,
  },
});
const N = Number(opts.jobs);
const ROUNDS = Number(opts.rounds);
const log = createLogger(process.env.LOG_LEVEL ?? 'warn', 'bench');
const median = <T extends { rate: number }>(xs: T[]) => [...xs].sort((a, b) => a.rate - b.rate)[Math.floor(xs.length / 2)]!;

async function main() {
  const rootDir = path.resolve('.data/bench-scaling');
  rmSync(rootDir, { recursive: true, force: true });
  const pg = await startEmbeddedPostgres({ rootDir, port: 54343, log, settings: benchServerSettings(opts['wal-init-zero']) });
  const pgPid = postmasterPid(path.join(rootDir, 'pg'));
  const sql = connect(pg.url, { max: 4, application: 'bench-scaling' });
  const children: ChildProcess[] = [];
  try {
    await migrate(sql);
    const queue = new JobQueue(sql, new Notifier(sql));
    const rows: { workers: number; rate: number; pg_us: number; pg_cores: number; worker_us: number; worker_cores: number }[] = [];
    for (const count of opts.workers!.split(',').map(Number)) {
      const rounds: (typeof rows)[number][] = [];
      for (let r = 0; r < ROUNDS; r++) {
        await sql`truncate leasehold.jobs, leasehold.job_events, leasehold.dead_letters, leasehold.workers`;
        await sql`vacuum analyze leasehold.jobs`;
        const procs = Array.from({ length: count }, () =>
          spawn(process.execPath, ['scripts/leasehold.mjs', 'worker'], {
            env: { ...process.env, DATABASE_URL: pg.url, WORKER_CONCURRENCY: opts.concurrency!, LOG_LEVEL: 'warn' },
            stdio: ['ignore', 'ignore', 'inherit'],
          }),
        );
        children.push(...procs);
        while (((await sql`select count(*)::int as n from leasehold.workers where stopped_at is null`)[0]!.n as number) < count) {
          await new Promise((res) => setTimeout(res, 50));
        }
        const jobs = Array.from({ length: N }, () => ({ kind: 'system.noop', payload: {} }));
        await queue.enqueueMany(jobs);
        const t0 = performance.now();
        const pg0 = pgCpuSeconds(pgPid);
        const w0 = procs.reduce((s, p) => s + processCpuSeconds(p.pid!), 0);
        await until(() => drained(sql));
        const s = (performance.now() - t0) / 1000;
        const pgCpu = pgCpuSeconds(pgPid) - pg0;
        const wCpu = procs.reduce((sum, p) => sum + processCpuSeconds(p.pid!), 0) - w0;
        rounds.push({
          workers: count,
          rate: Math.round(N / s),
          pg_us: Math.round((pgCpu * 1e6) / N),
          pg_cores: +(pgCpu / s).toFixed(2),
          worker_us: Math.round((wCpu * 1e6) / N),
          worker_cores: +(wCpu / s).toFixed(2),
        });
        for (const p of procs) p.kill('SIGTERM');
        await Promise.all(procs.map((p) => new Promise((res) => (p.exitCode !== null ? res(null) : p.once('exit', res)))));
      }
      rows.push(median(rounds));
    }
    const figures = { wal: describeWal(opts['wal-init-zero']), yardstick_ms: yardstickMs(), jobs_per_round: N, concurrency_per_worker: Number(opts.concurrency), rounds: ROUNDS, configurations: rows };
    if (opts.json) return void console.log(JSON.stringify(figures, null, 2));
    console.log(`${N.toLocaleString('en')} no-op jobs, concurrency ${opts.concurrency} per worker process, ${figures.wal}, median of ${ROUNDS}, machine yardstick ${figures.yardstick_ms} ms (350 = quiet)`);
    console.log('| workers | jobs/s | PostgreSQL CPU/job | PostgreSQL cores busy | worker CPU/job | worker cores busy |');
    console.log('|---:|---:|---:|---:|---:|---:|');
    for (const r of rows) {
      console.log(`| ${r.workers} | ${r.rate.toLocaleString('en')} | ${r.pg_us} µs | ${r.pg_cores} | ${r.worker_us} µs | ${r.worker_cores} |`);
    }
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await sql.end();
    await pg.stop();
  }
}

await main();
