/**
 * `npm run load:ingest`: ingest over HTTP at a fixed rate for a fixed time (5 minutes by default).
 *   A real `leasehold api` and W `leasehold worker` processes; a local server hands out the image
 *   (FETCH_ALLOW_PRIVATE), the fake provider reads it. The client is open-loop: requests leave on
 *   schedule whatever the answers, and latency counts from the scheduled time, so a stall shows up
 *   instead of silently slowing the client (coordinated omission). Invariants: no error (every
 *   answer a 202 within the timeout), and a flat p99 (after the warm-up window, no window's p99
 *   above the limit set by the median window's). Prints p50/p99 per window and table sizes before and after.
 * DATABASE_URL when set, otherwise a fresh embedded PostgreSQL. Exits 1 when an invariant breaks.
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { createApiKey } from '#shared/auth/api-keys.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { solidPng } from '#shared/ai/fake-image.js';
import type { Sql } from '#shared/db/connect.js';
import { freePort } from '#shared/db/free-port.js';
import { openChaosDatabase, percentile, pollUntil, spawnLeasehold, stopProcess, Verdict, type LeaseholdProcess } from './harness.js';

const { values: opts } = parseArgs({
  options: {
    rate: { type: 'string', default: '100' },
    'duration-s': { type: 'string', default: '300' },
    'window-s': { type: 'string', default: '30' },
    workers: { type: 'string', default: '2' },
    'timeout-ms': { type: 'string', default: '10000' },
    // A window's p99 may be this many times the median window's p99, and at least this many ms above it.
    'p99-factor': { type: 'string', default: '3' },
    'p99-floor-ms': { type: 'string', default: '50' },
    // Windows printed but not judged: start-up (module loading, JIT, first connections).
    'warmup-windows': { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
const RATE = Number(opts.rate);
const DURATION_MS = Number(opts['duration-s']) * 1000;
const WINDOW_MS = Number(opts['window-s']) * 1000;
const TIMEOUT_MS = Number(opts['timeout-ms']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Bytes on disk (table, indexes, TOAST) and rows of every table in schema leasehold. */
async function tableSizes(sql: Sql): Promise<Record<string, { bytes: number; rows: number }>> {
  const rows = await sql<{ name: string; bytes: string; rows: string }[]>`
    select c.relname as name, pg_total_relation_size(c.oid)::text as bytes, greatest(c.reltuples, 0)::bigint::text as rows
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'leasehold' and c.relkind in ('r', 'p')
    order by pg_total_relation_size(c.oid) desc`;
  return Object.fromEntries(rows.map((r) => [r.name, { bytes: Number(r.bytes), rows: Number(r.rows) }]));
}

async function main() {
  const db = await openChaosDatabase('load-ingest');
  const { sql } = db;
  const verdict = new Verdict();
  const png = solidPng([200, 120, 40], 64);
  const images = createServer((_req, res) => res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length }).end(png));
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  const imageUrl = `http://127.0.0.1:${(images.address() as { port: number }).port}/shelf.png`;

  const { id: tenantId } = await ensureTenant(sql, `load-ingest-${process.pid}`);
  const { key } = await createApiKey(sql, { tenantId, name: 'load', scopes: ['jobs:write', 'jobs:read'] });
  const httpPort = await freePort();
  const base = `http://127.0.0.1:${httpPort}`;
  const env = { DATABASE_URL: db.url, FETCH_ALLOW_PRIVATE: 'true', RATE_LIMIT_PER_S: '1000000', RATE_LIMIT_BURST: '1000000', WORKER_CONCURRENCY: '20' };
  const procs: LeaseholdProcess[] = [spawnLeasehold(['api'], { ...env, PORT: String(httpPort) })];
  for (let i = 0; i < Number(opts.workers); i++) procs.push(spawnLeasehold(['worker'], env));
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };

  try {
    const up = await pollUntil(async () => (await fetch(`${base}/ready`).catch(() => undefined))?.status === 200, 60_000);
    if (!up) throw new Error(`the API did not become ready: ${procs[0]!.output().slice(-1000)}`);
    const created = await fetch(`${base}/v1/patterns`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        name: 'shelf audit',
        instructions: 'List every product on the shelf.',
        json_schema: { type: 'object', properties: { items: { type: 'array', items: { type: 'string' } } }, required: ['items'], additionalProperties: false },
      }),
    });
    if (created.status !== 201) throw new Error(`creating the pattern answered ${created.status}: ${await created.text()}`);
    const patternId = ((await created.json()) as { id: string }).id;
    const body = JSON.stringify({ image_url: imageUrl, metadata: { store: 'berlin-3' } });
    const before = await tableSizes(sql);

    // One slot per scheduled request: its window and its outcome.
    const windows: { latencies: number[]; errors: number; sent: number }[] = [];
    const errors = new Map<string, number>();
    const inFlight = new Set<Promise<void>>();
    const start = performance.now();
    const total = Math.round((DURATION_MS / 1000) * RATE);
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const w = Math.floor((due - start) / WINDOW_MS);
      const win = (windows[w] ??= { latencies: [], errors: 0, sent: 0 });
      win.sent++;
      const p = (async () => {
        let failure: string | undefined;
        try {
          const res = await fetch(`${base}/v1/patterns/${patternId}/ingest`, { method: 'POST', headers, body, signal: AbortSignal.timeout(TIMEOUT_MS) });
          await res.arrayBuffer();
          if (res.status !== 202) failure = `HTTP ${res.status}`;
        } catch (err) {
          failure = (err as Error).name === 'TimeoutError' ? `no answer within ${TIMEOUT_MS} ms` : (err as Error).message;
        }
        if (failure) {
          win.errors++;
          errors.set(failure, (errors.get(failure) ?? 0) + 1);
        } else win.latencies.push(performance.now() - due);
      })().finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await Promise.all(inFlight);
    const elapsedS = (performance.now() - start) / 1000;

    // The backlog the workers still have when the load stops, and how long they take to clear it.
    const backlog = async () => (await sql<{ n: number }[]>`select count(*)::int as n from leasehold.jobs where tenant_id = ${tenantId} and status in ('queued', 'running')`)[0]!.n;
    const backlogAtEnd = await backlog();
    const t = performance.now();
    await pollUntil(async () => (await backlog()) === 0, 120_000, 250);
    const drainS = +((performance.now() - t) / 1000).toFixed(1);
    const [outcome] = await sql<{ succeeded: number; failed: number; jobs: number }[]>`
      select count(*)::int as jobs, count(*) filter (where status = 'succeeded')::int as succeeded,
             count(*) filter (where status = 'failed')::int as failed
      from leasehold.jobs where tenant_id = ${tenantId}`;
    await sql`analyze`;
    const after = await tableSizes(sql);

    const table = windows.map((w, i) => ({
      window: `${(i * WINDOW_MS) / 1000}–${((i + 1) * WINDOW_MS) / 1000} s`,
      sent: w.sent,
      errors: w.errors,
      p50_ms: +percentile(w.latencies, 50).toFixed(1),
      p99_ms: +percentile(w.latencies, 99).toFixed(1),
      max_ms: +Math.max(0, ...w.latencies).toFixed(1),
    }));
    const judged = table.slice(Math.min(Number(opts['warmup-windows']), table.length - 1));
    const p99s = judged.map((w) => w.p99_ms).filter(Number.isFinite);
    const medianP99 = percentile(p99s, 50);
    const limit = Math.max(Number(opts['p99-factor']) * medianP99, medianP99 + Number(opts['p99-floor-ms']));
    const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
    verdict.check(errorCount === 0, `${errorCount} errors: ${JSON.stringify(Object.fromEntries(errors))}`);
    verdict.check(p99s.every((p) => p <= limit), `p99 not flat: windows ${p99s.join(', ')} ms, limit ${limit.toFixed(1)} ms`);
    verdict.check(outcome!.jobs === total - errorCount, `${outcome!.jobs} jobs for ${total - errorCount} accepted requests`);
    verdict.check(outcome!.failed === 0, `${outcome!.failed} jobs failed`);
    for (const p of procs) {
      const code = await stopProcess(p);
      verdict.check(code === 0, `a process exited ${code} on SIGTERM: ${p.output().slice(-300)}`);
    }

    const mb = (b: number) => +(b / 1024 / 1024).toFixed(1);
    const sizes = Object.fromEntries(
      Object.keys(after).filter((n) => (after[n]!.bytes ?? 0) > 16_384 || (before[n]?.bytes ?? 0) > 16_384)
        .map((n) => [n, { before_mb: mb(before[n]?.bytes ?? 0), after_mb: mb(after[n]!.bytes), rows_after: after[n]!.rows }]),
    );
    const figures = {
      rate_per_s: RATE,
      duration_s: +elapsedS.toFixed(1),
      requests: total,
      errors: Object.fromEntries(errors),
      windows: table,
      p99_limit_ms: +limit.toFixed(1),
      jobs: outcome,
      backlog_when_load_stopped: backlogAtEnd,
      backlog_drained_in_s: drainS,
      table_sizes: sizes,
    };
    if (!opts.json) {
      console.table(table);
      console.table(sizes);
    }
    verdict.finish(
      'load:ingest',
      `${total} ingests at ${RATE}/s over ${elapsedS.toFixed(0)} s, ${errorCount} errors, p99 per ${WINDOW_MS / 1000} s window ${table.map((w) => w.p99_ms).join(' / ')} ms ` +
        `(limit ${limit.toFixed(0)} after ${table.length - judged.length} warm-up), ${outcome!.succeeded} jobs succeeded (backlog ${backlogAtEnd} at the end, drained in ${drainS} s), ` +
        `jobs ${mb(before.jobs?.bytes ?? 0)} → ${mb(after.jobs?.bytes ?? 0)} MB, job_events ${mb(before.job_events?.bytes ?? 0)} → ${mb(after.job_events?.bytes ?? 0)} MB`,
      figures,
      opts.json,
    );
  } finally {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    images.close();
    await db.close();
  }
}

await main();
