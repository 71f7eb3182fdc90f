import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { PermanentError } from '#shared/jobs/job-errors.js';
import { createMetrics, type Metrics } from '#shared/metrics/metrics.js';
import { startMetricsServer } from '#shared/metrics/metrics-server.js';
import { scrapeAuthorizer } from '#shared/metrics/scrape-auth.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, queueFor, testLog } from '../test/helpers/engine.js';
import { insertJob } from '../test/helpers/job-factory.js';
import { Scrape } from '../test/helpers/prometheus.js';
import { waitFor } from '../test/helpers/wait.js';

const METRICS_TOKEN = 'scrape-token-0123456789';
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

let db: TestDatabase;
let api: TestApi;
let metrics: Metrics;
let admin: string;
let reader: string;
const pool = new WorkerPool();

beforeAll(async () => {
  db = await createTestDatabase();
  metrics = createMetrics();
  api = createTestApi(db.sql, { METRICS_TOKEN, RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' }, { metrics });
  admin = (await api.tenant('metrics-ops', ['admin'])).key;
  reader = (await api.tenant('metrics-ops', ['jobs:read', 'jobs:write'])).key;
});
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

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
