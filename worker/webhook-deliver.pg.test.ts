import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { loadConfig } from '#shared/config.js';
import { PermanentError } from '#shared/jobs/job-errors.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';
import { WebhookReceiver } from '../test/fixtures/webhook-receiver.js';
import type { QueueSpec } from '#shared/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let db: TestDatabase;
let api: TestApi;
let receiver: WebhookReceiver;
let child: ChildProcess | undefined;
const pool = new WorkerPool();
let slugs = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { FETCH_ALLOW_PRIVATE: 'true' });
});
beforeEach(async () => {
  receiver = await new WebhookReceiver().start();
});
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }
  child = undefined;
  await pool.stopAll();
  await receiver.stop();
});
afterAll(() => db.drop());

/** A worker running test kinds and webhook.deliver with short retry delays. */
function startWorker(env: Record<string, string> = {}, queues: QueueSpec[] | 'all' = 'all') {
  return pool.start({
    sql: db.sql,
    config: loadConfig({ FETCH_ALLOW_PRIVATE: 'true', WEBHOOK_RETRY_SCHEDULE: '300ms,300ms,300ms,300ms,300ms,300ms', WEBHOOK_TIMEOUT_MS: '3000', LOG_LEVEL: 'silent', ...env }),
    settings: { pollMs: 100, reclaimMs: 200, leaseMs: 1_500, heartbeatMs: 500, queues },
    handlers: {
      'test.done': (p: { result?: unknown }) => p.result ?? { ok: true },
      'test.fail': () => {
        throw new PermanentError('broken on purpose');
      },
    },
  });
}

/** A fresh tenant with a subscription to the receiver; the receiver verifies with its secret. */
async function subscribed(body: Record<string, unknown> = {}) {
  const t = await api.tenant(`wh-${++slugs}`);
  const res = await api.request(t.key, 'POST', '/v1/webhooks', { url: receiver.url, ...body });
  expect(res.status).toBe(201);
  const hook = (await res.json()) as { id: string; secret: string };
  expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
  receiver.secrets = [hook.secret];
  return { ...t, hook };
}

async function enqueue(tenantId: string, kind: string, payload: Record<string, unknown> = {}): Promise<string> {
  return (await queueFor(db.sql).enqueue({ kind, payload, tenantId })).id;
}

interface DeliveryRow {
  id: string;
  status: string;
  attempts: number;
  last_status_code: number | null;
}
const deliveryOf = async (jobId: string) =>
  (await db.sql<DeliveryRow[]>`select id, status, attempts, last_status_code from leasehold.webhook_deliveries where job_id = ${jobId}`)[0];
const waitForDelivery = (jobId: string, status: string, timeoutMs = 10_000) =>
  waitFor(async () => {
    const d = await deliveryOf(jobId);
    return d?.status === status && d;
  }, `the delivery of ${jobId} to be ${status}`, timeoutMs);

describe('webhook delivery to a real receiver', () => {
  test('a success is delivered once, signed (Standard Webhooks and hex), and logged with its attempt', async () => {
    const { key, tenantId, hook } = await subscribed();
    await startWorker();
    const jobId = await enqueue(tenantId, 'test.done', { result: { answer: 42 } });
    const d = await waitForDelivery(jobId, 'delivered');
    expect(receiver.received).toHaveLength(1);
    const r = receiver.received[0]!;
    expect(r).toMatchObject({ id: d.id, verified: true, hexVerified: true, acked: true });
    expect(r.json).toEqual({
      event: 'job.succeeded',
      job_id: jobId,
      kind: 'test.done',
      pattern_id: null,
      status: 'succeeded',
      manifest: { answer: 42 },
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(Math.abs(Number(r.timestamp) - Date.now() / 1000)).toBeLessThan(30);

    const log = await api.request(key, 'GET', `/v1/webhooks/${hook.id}/deliveries`);
    expect(log.status).toBe(200);
    const page = (await log.json()) as { data: any[]; next_cursor: string | null };
    expect(page.next_cursor).toBeNull();
    expect(page.data).toMatchObject([
      { id: d.id, job_id: jobId, event: 'job.succeeded', status: 'delivered', last_status_code: 200, next_retry_at: null, attempts: [{ attempt: 1, status_code: 200, error: null, next_retry_at: null }] },
    ]);
    expect(page.data[0].attempts[0].latency_ms).toBeGreaterThanOrEqual(0);
    const list = (await (await api.request(key, 'GET', '/v1/webhooks')).json()) as { data: any[] };
    expect(list.data).toMatchObject([{ id: hook.id, url: receiver.url, events: ['job.succeeded', 'job.failed'], disabled_at: null }]);
    expect(JSON.stringify(list)).not.toContain('whsec_');
  });

  test('a receiver down for the first attempts, then failing, then up: delivered once, with the same webhook-id throughout', async () => {
    const { key, tenantId, hook } = await subscribed();
    await receiver.stop();
    await startWorker();
    const jobId = await enqueue(tenantId, 'test.done');
    await waitFor(async () => (await deliveryOf(jobId))?.attempts, 'a first (refused) attempt');
    receiver.answer = (_r, n) => (n === 1 ? 503 : 200);
    await receiver.start();
    const d = await waitForDelivery(jobId, 'delivered');

    expect(receiver.received.map((r) => r.id)).toEqual([d.id, d.id]);
    expect(receiver.received.map((r) => r.status)).toEqual([503, 200]);
    expect(receiver.received.every((r) => r.verified && r.hexVerified)).toBe(true);
    expect(receiver.received[1]!.body).toBe(receiver.received[0]!.body);
    expect(receiver.ackCounts()).toEqual(new Map([[d.id, 1]]));

    const page = (await (await api.request(key, 'GET', `/v1/webhooks/${hook.id}/deliveries`)).json()) as { data: any[] };
    const attempts = page.data[0].attempts as { status_code: number | null; error: string | null; next_retry_at: string | null }[];
    expect(attempts.length).toBeGreaterThanOrEqual(3);
    const refused = attempts.slice(0, -2);
    for (const a of refused) expect(a).toMatchObject({ status_code: null, error: expect.stringContaining('ECONNREFUSED'), next_retry_at: expect.any(String) });
    expect(attempts.slice(-2)).toMatchObject([
      { status_code: 503, error: expect.stringContaining('HTTP 503: receiver says 503'), next_retry_at: expect.any(String) },
      { status_code: 200, error: null, next_retry_at: null },
    ]);
  });

  test('410 Gone disables the subscription with the reason, and later jobs send nothing to it', async () => {
    const { key, tenantId, hook } = await subscribed();
    receiver.answer = () => 410;
    await startWorker();
    const first = await enqueue(tenantId, 'test.done');
    await waitForDelivery(first, 'failed');
    expect(receiver.received).toHaveLength(1);
    const job = await waitFor(async () => {
      const [j] = await db.sql`select j.status, j.last_error from leasehold.jobs j join leasehold.webhook_deliveries d on d.deliver_job_id = j.id where d.job_id = ${first}`;
      return j?.status !== 'running' && j;
    }, 'the deliver job to end');
    expect(job).toMatchObject({ status: 'failed', last_error: expect.stringContaining('HTTP 410') });

    const list = (await (await api.request(key, 'GET', '/v1/webhooks')).json()) as { data: any[] };
    expect(list.data).toMatchObject([{ id: hook.id, disabled_at: expect.any(String), disabled_reason: expect.stringContaining('410 Gone') }]);

    const second = await enqueue(tenantId, 'test.done');
    await waitFor(async () => (await db.sql`select status from leasehold.jobs where id = ${second}`)[0]?.status === 'succeeded', 'the second job');
    expect(await deliveryOf(second)).toBeUndefined();

    // Re-enabled, it receives again; the failed delivery can be sent once more with the same webhook-id.
    const enabled = await api.request(key, 'POST', `/v1/webhooks/${hook.id}/enable`);
    expect(await enabled.json()).toMatchObject({ disabled_at: null, disabled_reason: null });
    receiver.answer = () => 200;
    const firstDelivery = (await deliveryOf(first))!;
    const again = await api.request(key, 'POST', `/v1/webhooks/${hook.id}/deliveries/${firstDelivery.id}/redeliver`);
    expect(again.status).toBe(202);
    await waitForDelivery(first, 'delivered');
    expect(receiver.received.map((r) => r.id)).toEqual([firstDelivery.id, firstDelivery.id]);
  });

  test('a subscription whose deliveries have failed for WEBHOOK_DISABLE_AFTER_HOURS is disabled, and its queued callbacks skipped', async () => {
    const { key, tenantId, hook } = await subscribed();
    receiver.answer = () => 500;
    await db.sql`update leasehold.webhooks set failing_since = now() - interval '73 hours' where id = ${hook.id}`;
    await startWorker();
    const jobId = await enqueue(tenantId, 'test.done');
    await waitFor(async () => (await db.sql`select disabled_at from leasehold.webhooks where id = ${hook.id}`)[0]?.disabled_at, 'the subscription to be disabled');
    const list = (await (await api.request(key, 'GET', '/v1/webhooks')).json()) as { data: any[] };
    expect(list.data[0].disabled_reason).toMatch(/^every delivery has failed since \d{4}-.*; the last: HTTP 500: receiver says 500$/);
    // The attempt that disabled it had retries left; the next one finds it disabled and sends nothing.
    await waitForDelivery(jobId, 'skipped');
    expect(receiver.received).toHaveLength(1);
  });

  test('a worker SIGKILLed mid-delivery: the callback is sent again after reclaim, same webhook-id, acknowledged once', async () => {
    const { tenantId } = await subscribed();
    receiver.answer = (_r, n) => (n === 1 ? 'hang' : 200);
    // The job itself runs here; only the child serves the webhooks queue until it dies.
    await startWorker({}, [{ name: 'default' }]);
    let output = '';
    child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/webhook-worker-child.ts'], {
      cwd: ROOT,
      env: { ...process.env, LEASEHOLD_TEST_DATABASE_URL: db.url, LEASEHOLD_TEST_WORKER_ID: `webhook-child-${process.pid}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    const jobId = await enqueue(tenantId, 'test.done');
    await waitFor(() => {
      if (child!.exitCode !== null) throw new Error(`the child exited early:\n${output}`);
      return receiver.received.length === 1;
    }, 'the child to start sending', 20_000);
    const exited = new Promise((r) => child!.once('exit', (_c, signal) => r(signal)));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect((await deliveryOf(jobId))!.status).toBe('pending');

    await startWorker({}, [{ name: 'webhooks' }]);
    const d = await waitForDelivery(jobId, 'delivered', 15_000);
    expect(receiver.received.map((r) => r.id)).toEqual([d.id, d.id]);
    expect(receiver.ackCounts()).toEqual(new Map([[d.id, 1]]));
    const job = await waitFor(async () => {
      const [j] = await db.sql`select j.status, j.rescues from leasehold.jobs j join leasehold.webhook_deliveries d on d.deliver_job_id = j.id where d.id = ${d.id}`;
      return j?.status !== 'running' && j;
    }, 'the deliver job to end');
    expect(job).toEqual({ status: 'succeeded', rescues: 1 });
  });

  test("a job's own webhook_url is signed with the tenant's default secret, for successes and failures", async () => {
    const t = await api.tenant(`wh-${++slugs}`);
    const res = await api.request(t.key, 'GET', '/v1/webhook-secret');
    expect(res.status).toBe(200);
    const { secret } = (await res.json()) as { secret: string };
    receiver.secrets = [secret];
    await startWorker();
    const ok = await enqueue(t.tenantId, 'test.done', { webhook_url: receiver.url, result: { n: 1 } });
    const bad = await enqueue(t.tenantId, 'test.fail', { webhook_url: receiver.url });
    await waitForDelivery(ok, 'delivered');
    await waitForDelivery(bad, 'delivered');
    const byJob = new Map(receiver.received.map((r) => [r.json.job_id, r]));
    expect(byJob.get(ok)).toMatchObject({ verified: true, hexVerified: true, json: { event: 'job.succeeded', manifest: { n: 1 } } });
    expect(byJob.get(bad)).toMatchObject({ verified: true, json: { event: 'job.failed', status: 'failed', error: 'broken on purpose' } });
    expect(byJob.get(bad)!.json).not.toHaveProperty('manifest');

    const log = await api.request(t.key, 'GET', `/v1/jobs/${bad}/webhook-deliveries`);
    expect(await log.json()).toMatchObject({ data: [{ webhook_id: null, url: receiver.url, event: 'job.failed', status: 'delivered' }] });
    const other = await api.tenant(`wh-${++slugs}`);
    expect((await api.request(other.key, 'GET', `/v1/jobs/${bad}/webhook-deliveries`)).status).toBe(404);
  });

  test('after a rotation both secrets sign until the old one expires', async () => {
    const { key, tenantId, hook } = await subscribed();
    const rotated = await api.request(key, 'POST', `/v1/webhooks/${hook.id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    const { secret, previous_secret_expires_at } = (await rotated.json()) as { secret: string; previous_secret_expires_at: string };
    expect(secret).not.toBe(hook.secret);
    expect(Date.parse(previous_secret_expires_at) - Date.now()).toBeGreaterThan(23 * 3_600_000);
    await startWorker();
    const jobId = await enqueue(tenantId, 'test.done');
    await waitForDelivery(jobId, 'delivered');
    const r = receiver.received[0]!;
    expect(r.signature.split(' ')).toHaveLength(2);
    const headers = { 'webhook-id': r.id, 'webhook-timestamp': r.timestamp, 'webhook-signature': r.signature };
    expect(() => new Webhook(secret).verify(r.body, headers)).not.toThrow();
    expect(() => new Webhook(hook.secret).verify(r.body, headers)).not.toThrow();
    expect(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).verify(r.body, headers)).toThrow();

    // Once the grace period is over, only the new secret signs.
    await db.sql`update leasehold.webhooks set previous_secret_expires_at = now() - interval '1 second' where id = ${hook.id}`;
    const later = await enqueue(tenantId, 'test.done');
    await waitForDelivery(later, 'delivered');
    const r2 = receiver.received[1]!;
    expect(r2.signature.split(' ')).toHaveLength(1);
    expect(() => new Webhook(secret).verify(r2.body, { 'webhook-id': r2.id, 'webhook-timestamp': r2.timestamp, 'webhook-signature': r2.signature })).not.toThrow();
  });

  test('a manifest above WEBHOOK_INLINE_MAX_BYTES is linked, not inlined', async () => {
    const { tenantId } = await subscribed();
    await startWorker({ WEBHOOK_INLINE_MAX_BYTES: '100', PUBLIC_URL: 'https://api.example.com/' });
    const small = await enqueue(tenantId, 'test.done', { result: { s: 'x'.repeat(10) } });
    const big = await enqueue(tenantId, 'test.done', { result: { s: 'x'.repeat(500) } });
    await waitForDelivery(small, 'delivered');
    await waitForDelivery(big, 'delivered');
    const byJob = new Map(receiver.received.map((r) => [r.json.job_id, r.json]));
    expect(byJob.get(small)).toMatchObject({ manifest: { s: 'x'.repeat(10) } });
    expect(byJob.get(small)).not.toHaveProperty('manifest_url');
    expect(byJob.get(big)).toMatchObject({ manifest: null, manifest_url: `https://api.example.com/v1/jobs/${big}/manifest`, manifest_bytes: JSON.stringify({ s: 'x'.repeat(500) }).length });
  });

  test('the SSRF guard applies at send time too: a private target is refused without retries', async () => {
    const { tenantId } = await subscribed();
    await startWorker({ FETCH_ALLOW_PRIVATE: 'false' });
    const jobId = await enqueue(tenantId, 'test.done');
    const d = await waitForDelivery(jobId, 'failed');
    expect(d.attempts).toBe(1);
    expect(receiver.received).toEqual([]);
    const [a] = await db.sql`select status_code, error from leasehold.webhook_delivery_attempts where delivery_id = ${d.id}`;
    expect(a).toMatchObject({ status_code: null, error: expect.stringMatching(/^private_address: .*127\.0\.0\.1/) });
  });

  test('ingest end to end: a manifest.extract job with webhook_url calls back its URL and the subscription, manifest in schema order', async () => {
    const { key, hook } = await subscribed();
    const own = (await (await api.request(key, 'GET', '/v1/webhook-secret')).json()) as { secret: string };
    receiver.secrets = [hook.secret, own.secret];
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
    const images = createServer((_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(png));
    await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
    try {
      const schema = {
        type: 'object',
        properties: { zebra: { type: 'string' }, apple: { type: 'integer' }, mango: { type: 'boolean' } },
        required: ['zebra', 'apple', 'mango'],
        additionalProperties: false,
      };
      const pattern = (await (await api.request(key, 'POST', '/v1/patterns', { name: 'p', instructions: 'Describe.', json_schema: schema })).json()) as { id: string };
      const imageUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}/i.png`;
      const queued = await api.request(key, 'POST', `/v1/patterns/${pattern.id}/ingest`, { image_url: imageUrl, webhook_url: receiver.url });
      expect(queued.status).toBe(202);
      const { job_id } = (await queued.json()) as { job_id: string };
      await startWorker();
      await waitFor(() => receiver.received.length >= 2, 'both callbacks', 15_000);
      expect(receiver.received.every((r) => r.verified && r.hexVerified)).toBe(true);
      expect(new Set(receiver.received.map((r) => r.id)).size).toBe(2);
      for (const r of receiver.received) {
        expect(r.json).toMatchObject({ event: 'job.succeeded', job_id, kind: 'manifest.extract', pattern_id: pattern.id, status: 'succeeded' });
        expect(Object.keys(r.json.manifest)).toEqual(['zebra', 'apple', 'mango']);
      }
      const log = (await (await api.request(key, 'GET', `/v1/jobs/${job_id}/webhook-deliveries`)).json()) as { data: any[] };
      expect(log.data.map((d) => d.webhook_id).sort()).toEqual([hook.id, null].sort());
    } finally {
      await new Promise((r) => images.close(r));
    }
  });
});
