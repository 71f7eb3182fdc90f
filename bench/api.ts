/**
 * `npm run bench:api`: HTTP throughput of ingest, and of POST /v1/jobs, over loopback, beside a
 * bare Hono route on the same server for the ratio. The API runs as a real `leasehold api` child
 * process (so the load generator does not share its event loop) against an embedded PostgreSQL on
 * this machine.
 * Printed, not asserted.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { createApiKey } from '#shared/auth/api-keys.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { connect } from '#shared/db/connect.js';
import { startEmbeddedPostgres } from '#shared/db/embedded.js';
import { freePort } from '#shared/db/free-port.js';
import { migrate } from '#shared/db/migrator.js';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { createLogger } from '#shared/log.js';
import { yardstickMs } from './yardstick.js';

const { values: opts } = parseArgs({
  options: {
    connections: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
  },
});
const connections = Number(opts.connections);
const duration = Number(opts.seconds);
const log = createLogger(process.env.LOG_LEVEL ?? 'warn', 'bench');

interface Figure {
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  non_2xx: number;
  errors: number;
}

async function load(url: string, init: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string }): Promise<Figure> {
  const r = await autocannon({ url, connections, duration, ...init });
  return { requests_per_s: Math.round(r.requests.average), p50_ms: r.latency.p50, p99_ms: r.latency.p99, non_2xx: r.non2xx, errors: r.errors };
}

async function main() {
  rmSync('.data/bench-api', { recursive: true, force: true });
  const pg = await startEmbeddedPostgres({
    rootDir: '.data/bench-api',
    port: await freePort(),
    log,
    settings: process.env.BENCH_STATEMENTS ? { shared_preload_libraries: 'pg_stat_statements' } : {},
  });
  const sql = connect(pg.url, { max: 2 });
  const port = await freePort();
  const api = spawn(process.execPath, [...(process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []), 'scripts/leasehold.mjs', 'api'], {
    env: { ...process.env, DATABASE_URL: pg.url, PORT: String(port), LOG_LEVEL: 'warn', RATE_LIMIT_PER_S: '1000000', RATE_LIMIT_BURST: '1000000' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    await migrate(sql);
    if (process.env.BENCH_STATEMENTS) await sql`create extension if not exists pg_stat_statements`;
    const tenant = await ensureTenant(sql, 'bench');
    const { key } = await createApiKey(sql, { tenantId: tenant.id, name: 'bench', scopes: ['jobs:write', 'jobs:read'] });
    const patternId = uuidv7();
    await sql.begin(async (tx) => {
      await tx`insert into leasehold.patterns (id, tenant_id) values (${patternId}, ${tenant.id})`;
      await tx`insert into leasehold.pattern_versions (pattern_id, version, tenant_id, name, instructions, json_schema, format, is_active)
               values (${patternId}, 1, ${tenant.id}, 'shelf audit', 'List every product on the shelf.',
                       ${sql.json({ type: 'object', properties: { items: { type: 'array', items: { type: 'string' } } }, required: ['items'], additionalProperties: false })},
                       'json', true)`;
    });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      if ((await fetch(`${base}/health`).catch(() => undefined))?.ok) break;
      if (i > 300) throw new Error('the API did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    const warm = { method: 'GET' as const };
    await load(`${base}/health`, warm);
    const bare = await load(`${base}/health`, warm);
    const ingest = await load(`${base}/v1/patterns/${patternId}/ingest`, {
      method: 'POST' as const,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ image_url: 'https://images.example.com/shelf/aisle-7.jpg', metadata: { store: 'berlin-3' } }),
    });
    const [jobs] = await sql<{ n: number }[]>`select count(*)::int as n from leasehold.jobs where pattern_id = ${patternId}`;
    // One job per request through POST /v1/jobs: JobQueue.enqueue, with its wake-ups under load.
    const enqueue = await load(`${base}/v1/jobs`, {
      method: 'POST' as const,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'system.noop', payload: {} }),
    });
    if (process.env.BENCH_STATEMENTS) {
      console.table(await sql`
        select calls, round(total_exec_time::numeric, 1) as ms, round((total_exec_time / calls * 1000)::numeric) as us_per_call,
               left(regexp_replace(query, '\s+', ' ', 'g'), 100) as q
        from pg_stat_statements order by calls desc limit 14`);
    }
    const figures = { yardstick_ms: yardstickMs(), connections, seconds: duration, bare_route: bare, ingest, enqueue, ingest_vs_bare: +(ingest.requests_per_s / bare.requests_per_s).toFixed(3), jobs_created: jobs!.n };
    if (opts.json) console.log(JSON.stringify(figures, null, 2));
    else {
      const row = (name: string, f: Figure) =>
        console.log(`${name.padEnd(28)} ${f.requests_per_s.toLocaleString('en').padStart(8)} req/s   p50 ${f.p50_ms} ms   p99 ${f.p99_ms} ms   non-2xx ${f.non_2xx}   errors ${f.errors}`);
      console.log(`${connections} connections, ${duration} s each, loopback, PostgreSQL on this machine, machine yardstick ${figures.yardstick_ms} ms (350 = quiet)`);
      row('GET /health (bare Hono)', bare);
      row('POST …/ingest', ingest);
      row('POST /v1/jobs (system.noop)', enqueue);
      console.log(`ingest / bare = ${figures.ingest_vs_bare}; ${jobs!.n.toLocaleString('en')} jobs created`);
    }
  } finally {
    api.kill('SIGTERM');
    await new Promise((r) => api.once('exit', r));
    await sql.end();
    await pg.stop();
  }
}

await main();
