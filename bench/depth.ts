/**
 * `npm run bench:depth`: does claiming stay flat as the queue gets deep? The claim statement
 * workers run (CLAIM_JOBS, batches of 1 and of 50) is timed with 10,000 and with 1,000,000 ready
 * jobs queued, each depth in its own database on one server, bulk-loaded with COPY, after VACUUM
 * ANALYZE (as autovacuum would leave the tables) and a CHECKPOINT. Samples alternate between the
 * depths, so a noisy moment of the machine hits both alike. Each claimed batch goes back to the
 * queue (untimed), so the depth holds while sampling. Printed, not asserted.
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connect, type Sql } from '#shared/db/connect.js';
import { startEmbeddedPostgres } from '#shared/db/embedded.js';
import { migrate } from '#shared/db/migrator.js';
import { Notifier } from '#shared/jobs/notifier.js';
import { CLAIM_JOBS, PREPARED } from '#shared/jobs/queue-sql.js';
import { JobQueue } from '#shared/jobs/queue.js';
import { createLogger } from '#shared/log.js';
import { pct } from './stats.js';
import { yardstickMs } from './yardstick.js';

const { values: opts } = parseArgs({
  options: {
    depths: { type: 'string', default: '10000,1000000' },
    samples: { type: 'string', default: '300' },
    json: { type: 'boolean', default: false },
  },
});
const SAMPLES = Number(opts.samples);
const log = createLogger(process.env.LOG_LEVEL ?? 'warn', 'bench');

type Figure = { p50_ms: number; p99_ms: number; mean_ms: number };

/** Claims `batch` jobs and puts them back; returns the claim's milliseconds. */
async function claimOnce(sql: Sql, batch: number): Promise<number> {
  const t = performance.now();
  const claimed = await sql.unsafe<{ id: string }[]>(CLAIM_JOBS, [['default'], [batch], ['system.noop'], batch, 'bench-depth', randomUUID(), 30_000, true], PREPARED);
  const ms = performance.now() - t;
  if (claimed.length !== batch) throw new Error(`claimed ${claimed.length} of ${batch}`);
  // Untimed: back in the queue, so the depth stays what it says while sampling.
  await sql`update leasehold.jobs set status = 'queued', attempts = 0, lease_owner = null, lease_token = null, lease_expires_at = null
            where id = any(${claimed.map((c) => c.id)}::uuid[])`;
  return ms;
}

const summary = (times: number[]): Figure => ({
  p50_ms: +pct(times, 50).toFixed(3),
  p99_ms: +pct(times, 99).toFixed(3),
  mean_ms: +(times.reduce((a, b) => a + b, 0) / times.length).toFixed(3),
});

async function main() {
  const rootDir = path.resolve('.data/bench-depth');
  rmSync(rootDir, { recursive: true, force: true });
  const pg = await startEmbeddedPostgres({ rootDir, port: 54342, log });
  const admin = connect(pg.url, { max: 1, application: 'bench-depth' });
  const depths = opts.depths!.split(',').map(Number);
  const dbs: { depth: number; sql: Sql; loadS: number }[] = [];
  try {
    for (const depth of depths) {
      await admin.unsafe(`create database depth_${depth}`);
      const u = new URL(pg.url);
      u.pathname = `/depth_${depth}`;
      const sql = connect(u.toString(), { max: 1, application: 'bench-depth' });
      await migrate(sql);
      const queue = new JobQueue(sql, new Notifier(sql));
      const t0 = performance.now();
      for (let i = 0; i < depth; i += 100_000) {
        await queue.enqueueMany(Array.from({ length: Math.min(100_000, depth - i) }, () => ({ kind: 'system.noop', payload: {} })));
      }
      const loadS = (performance.now() - t0) / 1000;
      // The load's own aftermath must not overlap the timing: autovacuum of the new jobs and
      // job_events rows, and the checkpoint that ~1 GB of WAL brings on.
      await sql`vacuum analyze leasehold.jobs`;
      await sql`vacuum analyze leasehold.job_events`;
      dbs.push({ depth, sql, loadS });
    }
    await admin`checkpoint`;
    const results: Record<string, Record<string, Figure> & { load_s: number; claim_plans: { generic: number; custom: number } }> = {};
    for (const d of dbs) results[String(d.depth)] = { load_s: +d.loadS.toFixed(1) } as (typeof results)[string];
    for (const batch of [1, 50]) {
      const times = dbs.map(() => [] as number[]);
      for (let i = 0; i < SAMPLES + 20; i++) {
        for (const [k, d] of dbs.entries()) {
          const ms = await claimOnce(d.sql, batch);
          if (i >= 20) times[k]!.push(ms);
        }
      }
      dbs.forEach((d, k) => (results[String(d.depth)]![`claim_${batch}`] = summary(times[k]!)));
    }
    // Whether each depth's connection ended up with a generic plan for the claim (planned once) or
    // custom plans (planned at every call).
    const plans = await Promise.all(dbs.map((d) => d.sql<{ generic: number; custom: number }[]>`
      select generic_plans::int as generic, custom_plans::int as custom from pg_prepared_statements where statement = ${CLAIM_JOBS}`));
    dbs.forEach((d, k) => (results[String(d.depth)]!.claim_plans = plans[k]![0] ?? { generic: 0, custom: 0 }));
    const [{ version }] = (await admin`select current_setting('server_version') as version`) as unknown as [{ version: string }];
    const figures = { postgres: version, yardstick_ms: yardstickMs(), samples: SAMPLES, depths: results };
    if (opts.json) return void console.log(JSON.stringify(figures, null, 2));
    console.log(`PostgreSQL ${version}, ${SAMPLES} claims per figure, depths sampled alternately, machine yardstick ${figures.yardstick_ms} ms (350 = quiet)`);
    for (const [depth, r] of Object.entries(results)) {
      const f = (k: string) => `p50 ${r[k]!.p50_ms} ms  p99 ${r[k]!.p99_ms} ms  mean ${r[k]!.mean_ms} ms`;
      console.log(`${Number(depth).toLocaleString('en').padStart(10)} queued: claim 1: ${f('claim_1')}   claim 50: ${f('claim_50')}   (loaded in ${r.load_s} s; claim planned ${r.claim_plans.custom} times, generic plan used ${r.claim_plans.generic})`);
    }
    const [a, b] = Object.values(results);
    if (a && b) console.log(`deep / shallow, mean: claim 1 ${(b.claim_1!.mean_ms / a.claim_1!.mean_ms).toFixed(2)}×, claim 50 ${(b.claim_50!.mean_ms / a.claim_50!.mean_ms).toFixed(2)}×`);
  } finally {
    await Promise.all(dbs.map((d) => d.sql.end()));
    await admin.end();
    await pg.stop();
  }
}

await main();
