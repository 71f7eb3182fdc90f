/**
 * `npm run chaos:pg-restart`: PostgreSQL stops and starts again in the middle of a run, with the
 * API under load and workers working.
 *   A real `leasehold api` and W `leasehold worker` processes run against an embedded PostgreSQL of
 *   this run's own. A client POSTs `system.sleep` jobs at a fixed rate, each request with its own
 *   Idempotency-Key, and sends a request again (same key) when it is answered 503. Mid-run the
 *   server is stopped for a few seconds, then started again. Invariants: while it is down, /ready
 *   and the API answer 503 problems (no 500, no hang); afterwards /ready comes back by itself and
 *   workers resume; every request is accepted once in the end, and the table holds exactly one
 *   job per request, each succeeded once (one `job.succeeded` event). Exits 1 when one breaks.
 */
import { parseArgs } from 'node:util';
import { createApiKey } from '#shared/auth/api-keys.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { connect } from '#shared/db/connect.js';
import { startEmbeddedPostgres } from '#shared/db/embedded.js';
import { freePort } from '#shared/db/free-port.js';
import { exactlyOnce, log, openChaosDatabase, percentile, pollUntil, spawnLeasehold, stopProcess, Verdict, type LeaseholdProcess } from './harness.js';

const { values: opts } = parseArgs({
  options: {
    rate: { type: 'string', default: '100' },
    workers: { type: 'string', default: '2' },
    'before-s': { type: 'string', default: '5' },
    'down-s': { type: 'string', default: '5' },
    'after-s': { type: 'string', default: '10' },
    'max-sleep-ms': { type: 'string', default: '50' },
    // A request with no answer after this long counts as a hang. A query caught on a connection
    // the stop closed can wait out the pool's connect_timeout (10 s) before it fails over.
    'hang-ms': { type: 'string', default: '15000' },
    'timeout-s': { type: 'string', default: '120' },
    json: { type: 'boolean', default: false },
  },
});
const RATE = Number(opts.rate);
const HANG_MS = Number(opts['hang-ms']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One logical request: retried with the same key until accepted. */
interface Request {
  key: string;
  /** The same body on every attempt: a different one with the same key is a 422, rightly. */
  body: string;
  jobId?: string;
  attempts: number;
}

async function main() {
  const db = await openChaosDatabase('chaos-pg-restart', { ownServer: true });
  const verdict = new Verdict();
  const { rootDir, port: pgPort } = db.embedded!;
  const { id: tenantId } = await ensureTenant(db.sql, 'chaos-pg-restart');
  const { key } = await createApiKey(db.sql, { tenantId, name: 'chaos', scopes: ['jobs:write', 'jobs:read'] });
  await db.sql.end();

  const httpPort = await freePort();
  const base = `http://127.0.0.1:${httpPort}`;
  const env = { DATABASE_URL: db.url, RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000', WORKER_CONCURRENCY: '20', WORKER_LEASE_MS: '5000', WORKER_HEARTBEAT_MS: '1000', WORKER_RECLAIM_MS: '500' };
  const api = spawnLeasehold(['api'], { ...env, PORT: String(httpPort) });
  const workers: LeaseholdProcess[] = Array.from({ length: Number(opts.workers) }, () => spawnLeasehold(['worker'], env));

  const requests: Request[] = [];
  const statuses = new Map<number | string, number>();
  const bad: string[] = [];
  const latencies: number[] = [];
  let down = false;
  let stoppedAt = 0;
  let answered503WhileDown = 0;
  const readyWhileDown = { ok: 0, unavailable: 0, other: 0 };
  let sending = true;

  /** Sends one request (and again on 503) until it is accepted, the run ends, or it breaks an invariant. */
  async function send(r: Request): Promise<void> {
    while (sending || r.attempts < 100) {
      r.attempts++;
      const t = performance.now();
      let res: Response;
      try {
        res = await fetch(`${base}/v1/jobs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'idempotency-key': r.key },
          body: r.body,
          signal: AbortSignal.timeout(HANG_MS),
        });
      } catch (err) {
        const name = (err as Error).name;
        statuses.set(name, (statuses.get(name) ?? 0) + 1);
        const when = stoppedAt ? `${Math.round(t + performance.timeOrigin - stoppedAt)} ms after the stop` : 'before the stop';
        bad.push(name === 'TimeoutError' ? `a request sent ${when} hung for ${HANG_MS} ms` : `a request failed: ${(err as Error).message}`);
        return;
      }
      latencies.push(performance.now() - t);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const body = (await res.json().catch(() => ({}))) as { job_id?: string; id?: string; code?: string };
      if (res.status === 202 || res.status === 200) {
        r.jobId = body.job_id ?? body.id;
        return;
      }
      if (res.status === 503 && body.code === 'unavailable' && res.headers.get('content-type')?.startsWith('application/problem+json')) {
        if (down) answered503WhileDown++;
        // As a well-behaved client does: wait what Retry-After says, spread out (no thundering herd).
        await sleep(Number(res.headers.get('retry-after') ?? 1) * 1000 * (0.5 + Math.random()));
        continue;
      }
      bad.push(`answered ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
      return;
    }
  }

  const inFlight = new Set<Promise<void>>();
  const t0 = Date.now();
  let restartedAt = 0;
  let readyAgainMs: number | undefined;
  let workedAfterRestart = false;
  try {
    const up = await pollUntil(async () => (await fetch(`${base}/ready`).catch(() => undefined))?.status === 200, 60_000);
    verdict.check(up === true, 'the API never became ready');
    if (!up) throw new Error(`the API did not start: ${api.output().slice(-1000)}`);

    // Open loop at a fixed rate: a slow answer does not slow the sending down.
    const pacer = (async () => {
      const start = performance.now();
      for (let i = 0; sending; i++) {
        const due = start + (i * 1000) / RATE;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        const ms = Math.floor(Math.random() * (Number(opts['max-sleep-ms']) + 1));
        const r: Request = { key: `chaos-${process.pid}-${i}`, body: JSON.stringify({ kind: 'system.sleep', payload: { ms }, max_attempts: 50 }), attempts: 0 };
        requests.push(r);
        const p = send(r).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
    })();

    await sleep(Number(opts['before-s']) * 1000);
    const checkSql = connect(db.url, { max: 1 });
    // Mid-run means workers are working: wait for the first success (workers start slowly on a busy machine).
    const working = await pollUntil(async () => (await checkSql<{ n: number }[]>`select count(*)::int as n from leasehold.jobs where status = 'succeeded'`)[0]!.n > 0, 60_000);
    await checkSql.end({ timeout: 1 });
    verdict.check(working === true, 'no job succeeded before the restart');

    stoppedAt = Date.now();
    await db.embedded!.server.stop();
    down = true;
    const downUntil = Date.now() + Number(opts['down-s']) * 1000;
    while (Date.now() < downUntil) {
      const t = performance.now();
      const res = await fetch(`${base}/ready`, { signal: AbortSignal.timeout(HANG_MS) }).catch(() => undefined);
      if (!res) bad.push('/ready did not answer while the database was down');
      else if (res.status === 503) readyWhileDown.unavailable++;
      else if (res.status === 200) readyWhileDown.ok++;
      else readyWhileDown.other++;
      if (performance.now() - t > 3_000) bad.push(`/ready took ${Math.round(performance.now() - t)} ms while the database was down`);
      await sleep(200);
    }
    db.embedded!.server = await startEmbeddedPostgres({ rootDir, port: pgPort, log });
    down = false;
    restartedAt = Date.now();
    readyAgainMs = await pollUntil(async () => ((await fetch(`${base}/ready`).catch(() => undefined))?.status === 200 ? Date.now() - restartedAt : undefined), 30_000);

    if (process.env.CHAOS_DEBUG) {
      await sleep(1500);
      const dbg = connect(db.url, { max: 1 });
      console.table(await dbg`select pid, application_name as app, state, wait_event_type as wt, wait_event as w, now() - query_start as for, left(query, 60) as q from pg_stat_activity where backend_type = 'client backend' order by query_start`);
      await dbg.end();
    }
    await sleep(Number(opts['after-s']) * 1000);
    sending = false;
    await pacer;
    await Promise.all(inFlight);

    // Every accepted job runs to success; the workers resumed without help.
    const sql = connect(db.url, { max: 2 });
    try {
      const finished = await pollUntil(async () => {
        const [r] = await sql<{ n: number }[]>`select count(*)::int as n from leasehold.jobs where tenant_id = ${tenantId} and status <> 'succeeded'`;
        return r!.n === 0;
      }, Number(opts['timeout-s']) * 1000, 250);
      verdict.check(finished === true, 'jobs left unfinished after the restart');
      const [after] = await sql<{ n: number }[]>`
        select count(*)::int as n from leasehold.job_events where type = 'job.succeeded' and created_at > ${new Date(restartedAt)}`;
      workedAfterRestart = after!.n > 0;
      verdict.check(workedAfterRestart, 'no job succeeded after the restart');

      const accepted = requests.filter((r) => r.jobId);
      const ids = new Set(accepted.map((r) => r.jobId!));
      const rows = await sql<{ id: string }[]>`select id from leasehold.jobs where tenant_id = ${tenantId}`;
      const inTable = new Set(rows.map((r) => r.id));
      const missing = [...ids].filter((id) => !inTable.has(id));
      verdict.check(missing.length === 0, `${missing.length} accepted jobs are not in the table`);
      verdict.check(accepted.length === requests.length, `${requests.length - accepted.length} requests never accepted`);
      verdict.check(ids.size === accepted.length, `${accepted.length - ids.size} requests share a job id`);
      verdict.check(rows.length === ids.size, `${rows.length} jobs in the table for ${ids.size} accepted requests (doubled or stray)`);
      const once = await exactlyOnce(sql, tenantId);
      verdict.check(once.events === once.jobs && once.jobsWithEvent === once.jobs && once.maxEventsPerJob <= 1,
        `${once.events} job.succeeded events for ${once.jobs} jobs (max ${once.maxEventsPerJob} per job)`);
    } finally {
      await sql.end({ timeout: 1 });
    }

    verdict.check(bad.length === 0, `${bad.length} bad answers, e.g. ${[...new Set(bad)].slice(0, process.env.CHAOS_DEBUG ? 100 : 3).join(' / ')}`);
    verdict.check(readyWhileDown.unavailable > 0 && readyWhileDown.ok === 0 && readyWhileDown.other === 0,
      `/ready while down: ${JSON.stringify(readyWhileDown)}`);
    verdict.check(answered503WhileDown > 0, 'no request was answered 503 while the database was down');
    verdict.check(readyAgainMs !== undefined, '/ready did not come back within 30 s of the restart');
    for (const p of [api, ...workers]) {
      const code = await stopProcess(p);
      verdict.check(code === 0, `a process exited ${code} on SIGTERM: ${p.output().slice(-300)}`);
    }

    const figures = {
      requests: requests.length,
      rate_per_s: RATE,
      statuses: Object.fromEntries(statuses),
      answered_503_while_down: answered503WhileDown,
      ready_while_down: readyWhileDown,
      ready_again_ms_after_restart: readyAgainMs,
      latency_ms: { p50: +percentile(latencies, 50).toFixed(1), p99: +percentile(latencies, 99).toFixed(1), max: +Math.max(0, ...latencies).toFixed(1) },
      elapsed_s: +((Date.now() - t0) / 1000).toFixed(1),
    };
    verdict.finish(
      'chaos:pg-restart',
      `${requests.length} requests at ${RATE}/s, PostgreSQL down ${opts['down-s']} s: ${answered503WhileDown} answers 503 and ` +
        `/ready 503 ×${readyWhileDown.unavailable} while down, ready again ${readyAgainMs ?? '∞'} ms after the restart, ` +
        `statuses ${JSON.stringify(Object.fromEntries(statuses))}, every request one job, each succeeded once`,
      figures,
      opts.json,
    );
  } finally {
    sending = false;
    for (const p of [api, ...workers]) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await db.close().catch(() => {});
  }
}

await main();
