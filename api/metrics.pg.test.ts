import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '#shared/config.js';
import { PermanentError } from '#shared/jobs/job-errors.js';
import { createMetrics, type Metrics } from '#shared/metrics/metrics.js';
import { startMetricsServer } from '#shared/metrics/metrics-server.js';
import { scrapeAuthorizer } from '#shared/metrics/scrape-auth.js';
import { WebhookReceiver } from '../test/fixtures/webhook-receiver.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, queueFor, testLog } from '../test/helpers/engine.js';
import { insertPattern, startImageServer } from '../test/helpers/governor.js';
import { insertJob } from '../test/helpers/job-factory.js';
import { Scrape } from '../test/helpers/prometheus.js';
import { serveTestApi, type ServedApi } from '../test/helpers/served-api.js';
import { openStream } from '../test/helpers/sse.js';
import { waitFor } from '../test/helpers/wait.js';
import { EventHub } from './events/event-hub.js';

const METRICS_TOKEN = 'scrape-token-0123456789';
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

let db: TestDatabase;
let api: TestApi;
let metrics: Metrics;
let admin: string;
let reader: string;
let hub: EventHub;
let served: ServedApi;
const pool = new WorkerPool();

beforeAll(async () => {
  db = await createTestDatabase();
  metrics = createMetrics();
  hub = new EventHub({ sql: db.sql, log: testLog, pollMs: 100, gapTimeoutMs: 2_000, keepAliveMs: 15_000, clientBufferBytes: 1 << 20 });
  await hub.start();
  api = createTestApi(
    db.sql,
    { METRICS_TOKEN, RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000', FETCH_ALLOW_PRIVATE: 'true' },
    { metrics, events: hub },
  );
  served = await serveTestApi(api);
  admin = (await api.tenant('metrics-ops', ['admin'])).key;
  reader = (await api.tenant('metrics-ops', ['jobs:read', 'jobs:write'])).key;
});
afterEach(() => pool.stopAll());
afterAll(async () => {
  await hub?.close();
  await served?.close();
  await db?.drop();
});

async function scrape(auth = `Bearer ${METRICS_TOKEN}`): Promise<Scrape> {
  const res = await api.app.request('/metrics', { headers: { authorization: auth } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return new Scrape(await res.text());
}

describe('GET /metrics', () => {
  test('answers METRICS_TOKEN and admin keys only; anything else is a 401 problem', async () => {
    for (const auth of [undefined, 'Bearer wrong-token-0123456789', `Bearer ${reader}`, `Basic ${btoa(`x:${METRICS_TOKEN}`)}`]) {
      const res = await api.app.request('/metrics', { headers: auth ? { authorization: auth } : {} });
      expect(res.status, String(auth)).toBe(401);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    expect((await scrape(`Bearer ${admin}`)).families.size).toBeGreaterThan(5);
    expect((await scrape()).families.size).toBeGreaterThan(5);
  });

  test('every documented family is there, with HELP and TYPE, before anything happened', async () => {
    const s = await scrape();
    const expected: Record<string, string> = {
      leasehold_jobs: 'GAUGE',
      leasehold_queue_depth: 'GAUGE',
      leasehold_dead_letters_open: 'GAUGE',
      leasehold_workers_live: 'GAUGE',
      leasehold_job_attempts_total: 'COUNTER',
      leasehold_job_duration_seconds: 'HISTOGRAM',
      leasehold_claim_duration_seconds: 'HISTOGRAM',
      leasehold_claim_latency_seconds: 'HISTOGRAM',
      leasehold_lease_reclaims_total: 'COUNTER',
      leasehold_job_retries_total: 'COUNTER',
      leasehold_dead_letters_total: 'COUNTER',
      leasehold_http_requests_total: 'COUNTER',
      leasehold_http_request_duration_seconds: 'HISTOGRAM',
      leasehold_event_stream_subscribers: 'GAUGE',
      leasehold_governor_spend_usd_total: 'COUNTER',
      leasehold_governor_refusals_total: 'COUNTER',
      leasehold_webhook_deliveries_total: 'COUNTER',
    };
    for (const [name, type] of Object.entries(expected)) {
      expect(s.families.get(name)?.type, name).toBe(type);
      expect(s.families.get(name)?.help, name).not.toBe('');
    }
  });

  test('values move as real jobs are enqueued, run, fail, retry, dead-letter and get reclaimed', async () => {
    const before = await scrape();
    const queue = queueFor(db.sql);
    // Three successes over HTTP, one job scheduled for later, one that fails for good, one that retries.
    for (let i = 0; i < 3; i++) {
      const res = await api.request(reader, 'POST', '/v1/jobs', { kind: 'system.noop', queue: 'm-fast' });
      expect(res.status).toBe(202);
      const { id } = (await res.json()) as { id: string };
      expect((await api.request(reader, 'GET', `/v1/jobs/${id}`)).status).toBe(200);
    }
    await queue.enqueue({ kind: 'system.noop', queue: 'm-later', runAt: new Date(Date.now() + 3_600_000) });
    await queue.enqueue({ kind: 'test.doomed', queue: 'm-fail', maxAttempts: 1 });
    await queue.enqueue({ kind: 'test.flaky', queue: 'm-fail', maxAttempts: 3 });
    // A lease that expired with no worker behind it: the reclaimer takes it back.
    await insertJob(db.sql, { kind: 'test.orphan', queue: 'm-orphan', status: 'running', leaseExpiresAt: new Date(Date.now() - 1_000) });

    await pool.start({
      sql: db.sql,
      metrics,
      settings: { reclaimMs: 50, pollMs: 50, queues: [{ name: 'm-fast' }, { name: 'm-later' }, { name: 'm-fail' }] },
      handlers: {
        'test.doomed': () => {
          throw new PermanentError('doomed from the start');
        },
        'test.flaky': () => {
          throw new Error('flaky this time');
        },
      },
    });

    const s = await waitFor(async () => {
      const s = await scrape();
      const settled =
        s.value('leasehold_job_attempts_total', { queue: 'm-fast', kind: 'system.noop', outcome: 'succeeded' }) === 3 &&
        s.value('leasehold_job_attempts_total', { kind: 'test.doomed', outcome: 'failed' }) === 1 &&
        s.value('leasehold_job_retries_total', { kind: 'test.flaky' }) === 1 &&
        s.value('leasehold_lease_reclaims_total', { result: 'requeued' }) === 1;
      return settled && s;
    }, 'the jobs to be counted');

    // In-process counters and histograms.
    expect(s.value('leasehold_job_attempts_total', { kind: 'test.flaky', outcome: 'retried' })).toBe(1);
    expect(s.value('leasehold_dead_letters_total', { queue: 'm-fail', kind: 'test.doomed' })).toBe(1);
    expect(s.value('leasehold_job_duration_seconds', { queue: 'm-fast', kind: 'system.noop' })).toBe(3);
    expect(s.value('leasehold_claim_duration_seconds')).toBeGreaterThan(before.value('leasehold_claim_duration_seconds'));
    expect(s.value('leasehold_claim_latency_seconds', { queue: 'm-fast' })).toBe(3);
    expect(s.value('leasehold_claim_latency_seconds_bucket', { queue: 'm-fast', le: '+Inf' })).toBe(3);

    // Gauges read from the database at scrape time.
    expect(s.value('leasehold_queue_depth', { queue: 'm-later', state: 'scheduled' })).toBe(1);
    expect(s.value('leasehold_queue_depth', { queue: 'm-fail', state: 'scheduled' })).toBe(1); // the flaky job's retry
    expect(s.value('leasehold_jobs', { queue: 'm-later', kind: 'system.noop', status: 'queued' })).toBe(1);
    // The orphan is queued again, in a queue this worker does not serve.
    expect(s.value('leasehold_jobs', { queue: 'm-orphan', kind: 'test.orphan', status: 'queued' })).toBe(1);
    expect(s.value('leasehold_queue_depth', { queue: 'm-orphan', state: 'ready' })).toBe(1);
    expect(s.value('leasehold_dead_letters_open', { queue: 'm-fail', kind: 'test.doomed' })).toBe(1);
    expect(s.value('leasehold_workers_live')).toBeGreaterThanOrEqual(1);
    expect(before.value('leasehold_dead_letters_open')).toBe(0);

    // HTTP requests by route pattern, never by raw path.
    expect(s.value('leasehold_http_requests_total', { method: 'POST', route: '/v1/jobs', status: '202' })).toBe(3);
    expect(s.value('leasehold_http_requests_total', { method: 'GET', route: '/v1/jobs/:id', status: '200' })).toBe(3);
    expect(s.value('leasehold_http_request_duration_seconds', { method: 'POST', route: '/v1/jobs' })).toBe(3);
    const routes = s.samples('leasehold_http_requests_total').map((m) => m.labels!.route!);
    expect(routes.filter((r) => UUID.test(r))).toEqual([]);
  });

  test('an unknown path is counted as `unmatched`, not by its path', async () => {
    await api.app.request('/no/such/path/123');
    const s = await scrape();
    expect(s.value('leasehold_http_requests_total', { route: 'unmatched', status: '404' })).toBeGreaterThanOrEqual(1);
    expect(s.samples('leasehold_http_requests_total').some((m) => m.labels!.route!.includes('/no/such'))).toBe(false);
  });
});

describe('a worker process without the API (WORKER_METRICS_PORT)', () => {
  test('serves its registry on its own listener, with the same authorization', async () => {
    const own = createMetrics();
    own.leaseReclaims.labels('requeued').inc(2);
    const server = await startMetricsServer({
      registry: own.registry,
      port: 0,
      host: '127.0.0.1',
      log: testLog,
      authorize: scrapeAuthorizer(db.sql, METRICS_TOKEN),
    });
    try {
      const url = `http://127.0.0.1:${server.port}/metrics`;
      expect((await fetch(url)).status).toBe(401);
      expect((await fetch(url, { headers: { authorization: `Bearer ${reader}` } })).status).toBe(401);
      expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).toBe(404);
      for (const auth of [METRICS_TOKEN, admin]) {
        const res = await fetch(url, { headers: { authorization: `Bearer ${auth}` } });
        expect(res.status).toBe(200);
        expect(new Scrape(await res.text()).value('leasehold_lease_reclaims_total', { result: 'requeued' })).toBe(2);
      }
    } finally {
      await server.close();
    }
  });
});

/** A worker counting into the API's registry, with the fake provider and loopback fetches allowed. */
function startWorker(allowPrivate = true) {
  const config = loadConfig({
    LOG_LEVEL: 'silent', FETCH_ALLOW_PRIVATE: String(allowPrivate), LEASEHOLD_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'leasehold-metrics-')),
  });
  return pool.start({ sql: db.sql, metrics, config, settings: { pollMs: 50 } });
}

describe('the governor, webhooks and event streams count into the same registry', () => {
  test('event stream subscribers go up as clients connect and down as they leave or their job ends', async () => {
    const subscribers = async () => (await scrape()).value('leasehold_event_stream_subscribers', { stream: 'events' });
    expect(await subscribers()).toBe(0);
    const all = openStream(served.base, '/v1/events', { key: reader });
    await waitFor(async () => (await subscribers()) === 1, 'the /v1/events client to be counted');
    const res = await api.request(reader, 'POST', '/v1/jobs', { kind: 'system.noop', queue: 'm-sse' });
    const { id } = (await res.json()) as { id: string };
    const one = openStream(served.base, `/v1/jobs/${id}/events`, { key: reader });
    try {
      await one.until((events) => events.some((e) => e.type === 'job.queued'), 'the per-job stream to open');
      expect(await subscribers()).toBe(2);
      // The job ends: its stream ends after the terminal event (the client's reconnect gets 204).
      await pool.start({ sql: db.sql, metrics, settings: { pollMs: 50, queues: [{ name: 'm-sse' }] } });
      await one.until((events) => events.some((e) => e.type === 'job.succeeded'), 'the terminal event');
      await waitFor(async () => (await subscribers()) === 1, 'the per-job stream to be uncounted');
      all.close();
      await waitFor(async () => (await subscribers()) === 0, 'the disconnected client to be uncounted');
    } finally {
      one.close();
      all.close();
    }
  });

  test('a 402 refusal is counted by its ceiling', async () => {
    const t = await api.tenant('metrics-refused');
    const pattern = await insertPattern(db.sql, t.tenantId);
    const budget = await api.request(admin, 'PUT', '/v1/admin/tenants/metrics-refused/budget', { per_job_usd: 0.000001 });
    expect(budget.status).toBe(200);
    const before = (await scrape()).value('leasehold_governor_refusals_total', { reason: 'per_job' });
    const res = await api.request(t.key, 'POST', `/v1/patterns/${pattern}/ingest`, { images: [{ image_url: 'https://images.example.com/a.jpg' }] });
    expect(res.status).toBe(402);
    expect(((await res.json()) as { ceiling: string }).ceiling).toBe('per_job');
    const s = await scrape();
    expect(s.value('leasehold_governor_refusals_total', { reason: 'per_job' })).toBe(before + 1);
    expect(s.samples('leasehold_governor_refusals_total').map((m) => m.labels!.reason)).toEqual(['per_job']);
  });

  test('the cost of each model call is added to the spend counter as it is recorded', async () => {
    const images = await startImageServer();
    try {
      const t = await api.tenant('metrics-spend');
      const pattern = await insertPattern(db.sql, t.tenantId);
      const res = await api.request(t.key, 'POST', `/v1/patterns/${pattern}/ingest`, {
        images: [{ image_url: `${images.base}/a.png` }, { image_url: `${images.base}/b.png` }],
      });
      expect(res.status).toBe(202);
      await startWorker();
      const [cost] = await waitFor(async () => {
        const rows = await db.sql<{ calls: number; micros: number }[]>`
          select count(*)::int as calls, coalesce(sum(cost_micros), 0)::float8 as micros
          from leasehold.cost_events where tenant_id = ${t.tenantId} and kind = 'manifest.extract'`;
        return rows[0]!.calls === 2 && rows;
      }, 'both calls to be recorded');
      expect(cost!.micros).toBeGreaterThan(0);
      const spent = (await scrape()).value('leasehold_governor_spend_usd_total', { kind: 'manifest.extract' });
      expect(spent).toBeCloseTo(cost!.micros / 1e6, 9);
    } finally {
      await images.close();
    }
  });

  test('webhook attempts are counted by outcome: delivered, failed_final on 410 Gone, refused by the SSRF guard', async () => {
    const receiver = await new WebhookReceiver().start();
    try {
      const t = await api.tenant('metrics-hooks');
      const hook = await api.request(t.key, 'POST', '/v1/webhooks', { url: receiver.url });
      expect(hook.status).toBe(201);
      const outcome = async (o: string) => (await scrape()).value('leasehold_webhook_deliveries_total', { outcome: o });
      await startWorker();
      await queueFor(db.sql).enqueue({ kind: 'system.noop', tenantId: t.tenantId });
      await waitFor(async () => (await outcome('delivered')) === 1, 'the delivery to be counted');
      expect(receiver.received.map((r) => r.status)).toEqual([200]);
      receiver.answer = () => 410;
      await queueFor(db.sql).enqueue({ kind: 'system.noop', tenantId: t.tenantId });
      await waitFor(async () => (await outcome('failed_final')) === 1, 'the 410 to be counted');
      expect(await outcome('delivered')).toBe(1);
      expect(await outcome('failed_retrying')).toBe(0);

      // A worker that may not call loopback addresses refuses the receiver for good.
      await pool.stopAll();
      const other = await api.tenant('metrics-hooks-guarded');
      expect((await api.request(other.key, 'POST', '/v1/webhooks', { url: receiver.url })).status).toBe(201);
      await startWorker(false);
      await queueFor(db.sql).enqueue({ kind: 'system.noop', tenantId: other.tenantId });
      await waitFor(async () => (await outcome('refused')) === 1, 'the refusal to be counted');
      expect(receiver.received).toHaveLength(2);
    } finally {
      await receiver.stop();
    }
  });
});
