/**
 * `npm run bench:sse`: many concurrent SSE clients on one API process receive a burst of job
 * events. The API runs as a real `leasehold api` child process against an embedded PostgreSQL;
 * the clients are lean raw-HTTP readers in this process, spread over worker threads (they count
 * bytes and note when each arrived). Like browsers, they send `Accept-Encoding: gzip` unless `--encoding identity`; every
 * client of the stream receives the same bytes, so only the first one's are inflated, to find
 * where each event ends (an event counts as delivered once the bytes that inflate to its end have
 * arrived; a client's own inflating, ~1 ms per burst on its own machine, is not counted). The burst is one statement enqueueing N jobs for one tenant, so N
 * `job.queued` events commit at once. Latency = time received − the event row's created_at
 * (its transaction's start, so it includes the insert itself). Printed, not asserted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { Agent, request, type IncomingMessage } from 'node:http';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { constants, gunzipSync, inflateRawSync } from 'node:zlib';
import { createApiKey } from '#shared/auth/api-keys.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { connect, type Sql } from '#shared/db/connect.js';
import { startEmbeddedPostgres } from '#shared/db/embedded.js';
import { freePort } from '#shared/db/free-port.js';
import { migrate } from '#shared/db/migrator.js';
import { Notifier } from '#shared/jobs/notifier.js';
import { JobQueue } from '#shared/jobs/queue.js';
import { createLogger } from '#shared/log.js';
import { processCpuSeconds } from './pg-cpu.js';
import type { ClientsCollected, ClientsData, ClientsRequest, ClientsStatus } from './sse-clients.js';
import { yardstickMs } from './yardstick.js';

const { values: opts } = parseArgs({
  options: {
    clients: { type: 'string', default: '2000' },
    events: { type: 'string', default: '1000' },
    json: { type: 'boolean', default: false },
    'per-job': { type: 'boolean', default: false },
    encoding: { type: 'string', default: 'gzip' },
    'client-threads': { type: 'string', default: '2' },
  },
});
const THREADS = Number(opts['client-threads']);
const GZIP = opts.encoding === 'gzip';
if (!['gzip', 'identity'].includes(opts.encoding!)) throw new Error('--encoding is gzip or identity');
const CLIENTS = Number(opts.clients);
const EVENTS = Number(opts.events);
const log = createLogger(process.env.LOG_LEVEL ?? 'warn', 'bench');

/**
 * Where each `id:` event ends in the bytes received: offsets just past its blank line or, on a
 * gzip stream (`bytes` starting where a deflated piece starts), the shortest prefix that inflates
 * to past that blank line.
 */
function eventEnds(bytes: Buffer): number[] {
  if (!GZIP) return textEventEnds(bytes);
  const inflate = (n: number) => inflateRawSync(bytes.subarray(0, n), { finishFlush: constants.Z_SYNC_FLUSH });
  const plainEnds = textEventEnds(inflate(bytes.length));
  const ends: number[] = [];
  let lo = 0;
  for (const end of plainEnds) {
    let hi = bytes.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (inflate(mid).length >= end) hi = mid;
      else lo = mid + 1;
    }
    ends.push(lo);
  }
  return ends;
}

function textEventEnds(bytes: Buffer): number[] {
  const ends: number[] = [];
  let start = 0;
  for (let i = bytes.indexOf('\n\n'); i !== -1; i = bytes.indexOf('\n\n', start)) {
    if (bytes.subarray(start, start + 3).toString() === 'id:') ends.push(i + 2);
    start = i + 2;
  }
  return ends;
}

/** How many whole `id:` events `bytes` holds (inflated first on a gzip stream). */
function countEvents(bytes: Buffer): number {
  return textEventEnds(GZIP ? inflateRawSync(bytes, { finishFlush: constants.Z_SYNC_FLUSH }) : bytes).length;
}

function rssMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

/** CPU time (user + system) a process has used so far, in ms. */
function cpuMs(pid: number): number {
  return Math.round(processCpuSeconds(pid) * 1000);
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** What one burst measured. */
interface Burst {
  latencies: Float64Array;
  connectMs: number;
  doneMs: number;
  insertMs: number;
  apiCpu: number;
  clientCpu: number;
  rssConnected: number;
  peakRss: number;
  /** Bytes every client received for the burst together, in MB (tenant stream only). */
  wireMb?: number;
}

/** A worker thread holding a share of the clients, asked one thing at a time. */
class ClientThread {
  readonly #worker: Worker;
  constructor(data: ClientsData) {
    // A worker thread does not inherit tsx's loader: it registers it, then loads the TypeScript.
    const script = `import('tsx/esm/api').then((tsx) => (tsx.register(), import(${JSON.stringify(new URL('./sse-clients.ts', import.meta.url).href)})))`;
    this.#worker = new Worker(script, { eval: true, workerData: data });
  }
  ask<T>(req: ClientsRequest): Promise<T> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#worker.once('error', onError);
      this.#worker.once('message', (m: T) => (this.#worker.off('error', onError), resolve(m)));
      this.#worker.postMessage(req);
    });
  }
  stop(): Promise<number> {
    return this.#worker.terminate();
  }
}

/**
 * Every client on GET /v1/events of one tenant, spread over --client-threads worker threads; the
 * burst is one INSERT of EVENTS jobs: CLIENTS × EVENTS deliveries.
 */
async function tenantBurst(sql: Sql, api: ChildProcess, base: string, key: string, tenantId: string, threads: ClientThread[]): Promise<Burst> {
  const t0 = Date.now();
  const share = Math.ceil(CLIENTS / THREADS);
  for (let i = 0; i < THREADS; i++) {
    const count = Math.min(share, CLIENTS - i * share);
    if (count > 0) threads.push(new ClientThread({ url: `${base}/v1/events`, key, encoding: opts.encoding!, count }));
  }
  await Promise.all(threads.map((t) => t.ask({ type: 'connect' })));
  const connectMs = Date.now() - t0;
  await new Promise((r) => setTimeout(r, 500));
  const rssConnected = rssMb(api.pid!, 'VmRSS');
  let peakRss = rssConnected;
  const mark = () => Promise.all(threads.map((t, i) => t.ask({ type: 'mark', keep: i === 0 })));

  /** Waits until the first client holds `n` events since the mark and every client has as many bytes; returns those bytes. */
  const received = async (n: number, timeoutMs: number): Promise<Buffer> => {
    const deadline = Date.now() + timeoutMs;
    let target: Buffer | undefined;
    while (Date.now() < deadline) {
      const status = await Promise.all(threads.map((t) => t.ask<ClientsStatus>({ type: 'status' })));
      // A Buffer crosses threads as a plain Uint8Array.
      const sent = status[0]!.kept!;
      const kept = Buffer.from(sent.buffer, sent.byteOffset, sent.byteLength);
      if (!target && countEvents(kept) >= n) target = kept;
      if (target && status.every((s) => s.minBytes >= target!.length)) return target;
      await new Promise((r) => setTimeout(r, 20));
      peakRss = Math.max(peakRss, rssMb(api.pid!, 'VmRSS'));
    }
    throw new Error(`not every client received ${n} events within ${timeoutMs} ms`);
  };

  const q = new JobQueue(sql, new Notifier(sql));
  // A warm-up burst first: statements prepared, code paths compiled, as on a server that has been up a while.
  const WARM = 10;
  await mark();
  await q.enqueueMany(Array.from({ length: WARM }, () => ({ kind: 'system.noop', tenantId })));
  await received(WARM, 60_000);
  await new Promise((r) => setTimeout(r, 200));
  await mark();

  const apiCpu0 = cpuMs(api.pid!);
  const selfCpu0 = process.cpuUsage();
  const burstAt = Date.now();
  await q.enqueueMany(Array.from({ length: EVENTS }, () => ({ kind: 'system.noop', tenantId })));
  const insertMs = Date.now() - burstAt;
  const bytes = await received(EVENTS, 120_000);
  const doneMs = Date.now() - burstAt;
  const apiCpu = cpuMs(api.pid!) - apiCpu0;
  // Every thread of this process: the clients' CPU.
  const selfCpuUsage = process.cpuUsage(selfCpu0);
  const clientCpu = Math.round((selfCpuUsage.user + selfCpuUsage.system) / 1000);
  const rows = await sql<{ at: number }[]>`
    select extract(epoch from created_at) * 1000 as at from leasehold.job_events where tenant_id = ${tenantId} order by id offset ${WARM}`;
  const createdAt = rows.map((r) => Number(r.at));
  const ends = eventEnds(bytes);
  if (ends.length !== EVENTS || createdAt.length !== EVENTS) throw new Error(`expected ${EVENTS} events, read ${ends.length} (table: ${createdAt.length})`);
  const clients = (await Promise.all(threads.map((t) => t.ask<ClientsCollected>({ type: 'collect' })))).flatMap((c) => c.clients);
  const latencies = new Float64Array(CLIENTS * EVENTS);
  let n = 0;
  for (const c of clients) {
    let j = 0;
    for (let k = 0; k < EVENTS; k++) {
      while (c.ends[j]! < ends[k]!) j++;
      latencies[n++] = c.times[j]! - createdAt[k]!;
    }
  }
  const wireMb = Math.round((bytes.length * CLIENTS) / 1e5) / 10;
  return { latencies, connectMs, doneMs, insertMs, apiCpu, clientCpu, rssConnected, peakRss, wireMb };
}

/**
 * Each client on GET /v1/jobs/:id/events of one of EVENTS queued jobs (CLIENTS / EVENTS per job);
 * the burst is one statement cancelling them all, so each client gets one event: CLIENTS deliveries.
 */
async function perJobBurst(sql: Sql, api: ChildProcess, base: string, key: string, tenantId: string, opened: IncomingMessage[]): Promise<Burst> {
  const q = new JobQueue(sql, new Notifier(sql));
  const warm = (await q.enqueueMany(Array.from({ length: 10 }, () => ({ kind: 'system.noop', tenantId, runAt: new Date(Date.now() + 3_600_000) })))).ids;
  const { ids } = await q.enqueueMany(Array.from({ length: EVENTS }, () => ({ kind: 'system.noop', tenantId, runAt: new Date(Date.now() + 3_600_000) })));
  const t0 = Date.now();
  const keepAlive = new Agent({ keepAlive: true, maxSockets: Infinity });
  const open = async (jobId: string): Promise<{ at: number; res?: IncomingMessage }> => {
    const c: { at: number; res?: IncomingMessage } = { at: 0 };
    await new Promise<void>((resolve, reject) => {
      // Keep-alive, as browsers' EventSource: a stream that ends leaves its connection open for the next request.
      const req = request(`${base}/v1/jobs/${jobId}/events`, { agent: keepAlive, headers: { authorization: `Bearer ${key}`, 'accept-encoding': opts.encoding! } }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`stream answered ${res.statusCode}`));
        c.res = res;
        const got: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          got.push(chunk);
          const text = GZIP ? gunzipSync(Buffer.concat(got), { finishFlush: constants.Z_SYNC_FLUSH }) : Buffer.concat(got);
          if (!c.at && text.includes('event: job.cancelled')) c.at = Date.now();
        });
        res.once('data', () => resolve());
      });
      req.on('error', reject);
      req.end();
    });
    return c;
  };
  const warmClients = await Promise.all(warm.map(open));
  const streams: { at: number; res?: IncomingMessage; job: number }[] = [];
  for (let i = 0; i < CLIENTS; i += 100) {
    const batch = await Promise.all(Array.from({ length: Math.min(100, CLIENTS - i) }, (_, k) => open(ids[(i + k) % EVENTS]!)));
    batch.forEach((c, k) => streams.push(Object.assign(c, { job: (i + k) % EVENTS })));
  }
  for (const s of streams) if (s.res) opened.push(s.res);
  const connectMs = Date.now() - t0;
  await new Promise((r) => setTimeout(r, 500));
  const rssConnected = rssMb(api.pid!, 'VmRSS');
  await sql`select leasehold.cancel_job(id) from unnest(${warm}::uuid[]) as id`;
  while (warmClients.some((c) => !c.at)) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 200));

  let peakRss = rssConnected;
  const apiCpu0 = cpuMs(api.pid!);
  const selfCpu0 = process.cpuUsage();
  const burstAt = Date.now();
  await sql`select leasehold.cancel_job(id) from unnest(${ids}::uuid[]) as id`;
  const insertMs = Date.now() - burstAt;
  const deadline = Date.now() + 120_000;
  const arrived = (): boolean => streams.every((s) => s.at > 0);
  while (!arrived() && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    peakRss = Math.max(peakRss, rssMb(api.pid!, 'VmRSS'));
  }
  if (!arrived()) throw new Error('not every client received its event within 120 s');
  const doneMs = Date.now() - burstAt;
  const apiCpu = cpuMs(api.pid!) - apiCpu0;
  const selfCpuUsage = process.cpuUsage(selfCpu0);
  const clientCpu = Math.round((selfCpuUsage.user + selfCpuUsage.system) / 1000);
  const rows = await sql<{ job_id: string; at: number }[]>`
    select job_id, extract(epoch from created_at) * 1000 as at from leasehold.job_events
    where job_id = any(${ids}::uuid[]) and type = 'job.cancelled'`;
  const createdAt = new Map(rows.map((r) => [r.job_id, Number(r.at)]));
  const latencies = Float64Array.from(streams, (s) => s.at - createdAt.get(ids[s.job]!)!);
  for (const c of warmClients) c.res?.destroy();
  return { latencies, connectMs, doneMs, insertMs, apiCpu, clientCpu, rssConnected, peakRss };
}

async function main() {
  rmSync('.data/bench-sse', { recursive: true, force: true });
  const pg = await startEmbeddedPostgres({ rootDir: '.data/bench-sse', port: await freePort(), log });
  const sql = connect(pg.url, { max: 4 });
  const port = await freePort();
  const api = spawn(process.execPath, [...(process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof-sse'] : []), 'scripts/leasehold.mjs', 'api'], {
    // No keep-alive comments during the run: every client then receives exactly the same bytes.
    env: { ...process.env, DATABASE_URL: pg.url, PORT: String(port), LOG_LEVEL: 'warn', SSE_KEEPALIVE_MS: '3600000', RATE_LIMIT_PER_S: '1000000', RATE_LIMIT_BURST: '1000000' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const opened: IncomingMessage[] = [];
  const threads: ClientThread[] = [];
  try {
    await migrate(sql);
    const tenant = await ensureTenant(sql, 'bench');
    const { key } = await createApiKey(sql, { tenantId: tenant.id, name: 'bench', scopes: ['jobs:read', 'jobs:write'] });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      if ((await fetch(`${base}/health`).catch(() => undefined))?.ok) break;
      if (i > 300) throw new Error('the API did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    const rssIdle = rssMb(api.pid!, 'VmRSS');
    const { latencies, connectMs, doneMs, insertMs, apiCpu, clientCpu, rssConnected, peakRss, wireMb } = opts['per-job']
      ? await perJobBurst(sql, api, base, key, tenant.id, opened)
      : await tenantBurst(sql, api, base, key, tenant.id, threads);
    const sorted = latencies.sort();
    const figures = {
      yardstick_ms: yardstickMs(),
      clients: CLIENTS,
      mode: opts['per-job'] ? 'per-job streams' : 'tenant stream',
      encoding: opts.encoding,
      events: EVENTS,
      deliveries: latencies.length,
      connect_ms: connectMs,
      all_delivered_ms: doneMs,
      latency_p50_ms: Math.round(percentile(sorted, 50)),
      latency_p99_ms: Math.round(percentile(sorted, 99)),
      latency_max_ms: Math.round(sorted[sorted.length - 1] ?? NaN),
      latency_min_ms: Math.round(sorted[0] ?? NaN),
      insert_ms: insertMs,
      ...(wireMb !== undefined && { wire_mb: wireMb }),
      api_cpu_ms: apiCpu,
      clients_cpu_ms: clientCpu,
      api_rss_mb: { idle: rssIdle, connected: rssConnected, peak_sampled: peakRss, high_water: rssMb(api.pid!, 'VmHWM') },
    };
    if (opts.json) console.log(JSON.stringify(figures, null, 2));
    else {
      console.log(`${CLIENTS} SSE clients ${opts['per-job'] ? `on per-job streams of ${EVENTS} jobs, a burst cancelling them all (one statement)` : `on one tenant's stream, a burst of ${EVENTS} events (one INSERT)`}, loopback, ${opts.encoding} (${GZIP ? 'as browsers ask' : 'no compression'}), machine yardstick ${figures.yardstick_ms} ms (350 = quiet)`);
      console.log(`connected in ${connectMs} ms; every client had every event ${doneMs} ms after the burst began${wireMb !== undefined ? `; ${wireMb} MB on the wire in all` : ''}`);
      console.log(`delivery latency over ${latencies.length.toLocaleString('en')} deliveries: p50 ${figures.latency_p50_ms} ms, p99 ${figures.latency_p99_ms} ms, max ${figures.latency_max_ms} ms (min ${figures.latency_min_ms} ms; the INSERT took ${insertMs} ms)`);
      console.log(`CPU spent on the burst: API process ${apiCpu} ms, the clients (this process, ${opts['per-job'] ? 1 : THREADS} thread${opts['per-job'] || THREADS === 1 ? '' : 's'}) ${clientCpu} ms`);
      console.log(`API process RSS: ${rssIdle} MB idle, ${rssConnected} MB with the clients connected, ${peakRss} MB peak sampled, ${figures.api_rss_mb.high_water} MB high-water mark`);
    }
  } finally {
    for (const res of opened) res.destroy();
    await Promise.all(threads.map((t) => t.stop()));
    api.kill('SIGTERM');
    await new Promise((r) => api.once('exit', r));
    await sql.end();
    await pg.stop();
  }
}

await main();
