/**
 * `npm run bench:depth`: does claiming stay flat as the queue gets deep? The claim statement
 * workers run (CLAIM_JOBS, batches of 1 and of 50) is timed with 10,000 and with 1,000,000 ready
 * jobs queued (bulk-loaded with COPY), after ANALYZE, as autovacuum would leave the table.
 * Each claimed batch goes back to the queue (untimed), so the depth holds while sampling. Printed,
 * not asserted.
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connect } from '#shared/db/connect.js';
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

async function main() {
  const rootDir = path.resolve('.data/bench-depth');
  rmSync(rootDir, { recursive: true, force: true });
  const pg = await startEmbeddedPostgres({ rootDir, port: 54342, log });
  const sql = connect(pg.url, { max: 4, application: 'bench-depth' });
  try {
    await migrate(sql);
    const queue = new JobQueue(sql, new Notifier(sql));
    const results: Record<string, Record<string, { p50_ms: number; p99_ms: number; mean_ms: number }> & { load_s: number }> = {};
    for (const depth of opts.depths!.split(',').map(Number)) {
      await sql`truncate leasehold.jobs, leasehold.job_events`;
      const t0 = performance.now();
      for (let i = 0; i < depth; i += 100_000) {
        await queue.enqueueMany(Array.from({ length: Math.min(100_000, depth - i) }, () => ({ kind: 'system.noop', payload: {} })));
      }
      const loadS = (performance.now() - t0) / 1000;
      await sql`vacuum analyze leasehold.jobs`;
      const row: Record<string, { p50_ms: number; p99_ms: number; mean_ms: number }> = {};
      for (const batch of [1, 50]) {
        const times: number[] = [];
        for (let i = 0; i < SAMPLES + 20; i++) {
          const t = performance.now();
          const claimed = await sql.unsafe<{ id: string }[]>(CLAIM_JOBS, [['default'], [batch], ['system.noop'], batch, 'bench-depth', randomUUID(), 30_000, true], PREPARED);
          if (claimed.length !== batch) throw new Error(`claimed ${claimed.length} of ${batch}`);
          if (i >= 20) times.push(performance.now() - t);
          // Untimed: back in the queue, so the depth stays what it says while sampling.
          await sql`update leasehold.jobs set status = 'queued', attempts = 0, lease_owner = null, lease_token = null, lease_expires_at = null
                    where id = any(${claimed.map((c) => c.id)}::uuid[])`;
        }
        row[`claim_${batch}`] = { p50_ms: +pct(times, 50).toFixed(3), p99_ms: +pct(times, 99).toFixed(3), mean_ms: +(times.reduce((a, b) => a + b, 0) / times.length).toFixed(3) };
      }
      results[String(depth)] = { ...row, load_s: +loadS.toFixed(1) } as (typeof results)[string];
    }
    const [{ version }] = (await sql`select current_setting('server_version') as version`) as unknown as [{ version: string }];
    const figures = { postgres: version, yardstick_ms: yardstickMs(), samples: SAMPLES, depths: results };
    if (opts.json) return void console.log(JSON.stringify(figures, null, 2));
    console.log(`PostgreSQL ${version}, ${SAMPLES} claims per figure, machine yardstick ${figures.yardstick_ms} ms (350 = quiet)`);
    for (const [depth, r] of Object.entries(results)) {
      const f = (k: string) => `p50 ${r[k]!.p50_ms} ms  p99 ${r[k]!.p99_ms} ms  mean ${r[k]!.mean_ms} ms`;
      console.log(`${Number(depth).toLocaleString('en').padStart(10)} queued: claim 1: ${f('claim_1')}   claim 50: ${f('claim_50')}   (loaded in ${r.load_s} s)`);
    }
    const [a, b] = Object.values(results);
    if (a && b) console.log(`deep / shallow, mean: claim 1 ${(b.claim_1!.mean_ms / a.claim_1!.mean_ms).toFixed(2)}×, claim 50 ${(b.claim_50!.mean_ms / a.claim_50!.mean_ms).toFixed(2)}×`);
  } finally {
    await sql.end();
    await pg.stop();
  }
}

await main();
