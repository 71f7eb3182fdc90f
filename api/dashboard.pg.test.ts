import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { revokeApiKey } from '#shared/auth/api-keys.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { setBudget } from '#shared/governor/budget.js';
import { loadConfig } from '#shared/config.js';
import { createMetrics, type Metrics } from '#shared/metrics/metrics.js';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { WebhookReceiver } from '../test/fixtures/webhook-receiver.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, jobRow, queueFor } from '../test/helpers/engine.js';
import { insertPattern, startImageServer } from '../test/helpers/governor.js';
import { insertJob } from '../test/helpers/job-factory.js';
import { waitFor } from '../test/helpers/wait.js';
import { SnapshotReader } from './dashboard/snapshot.js';

let db: TestDatabase;
let api: TestApi;
let metrics: Metrics;
let admin: { tenantId: string; key: string };
let writer: string;
beforeAll(async () => {
  db = await createTestDatabase();
  metrics = createMetrics();
  api = createTestApi(db.sql, { FETCH_ALLOW_PRIVATE: 'true' }, { metrics });
  admin = await api.tenant('dash-ops', ['admin']);
  writer = (await api.tenant('dash-ops', ['jobs:read', 'jobs:write'])).key;
});
afterAll(() => db.drop());

const HOST = 'dash.test';
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

/** POST /dashboard/login as a browser on this host would send it; returns the response. */
async function login(key: string, headers: Record<string, string> = {}): Promise<Response> {
  return api.app.request(`http://${HOST}/dashboard/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', host: HOST, origin: `http://${HOST}`, ...headers },
    body: form({ key }),
  });
}

/** Logs in with `key` and returns the session cookie (`name=value`). */
async function sessionCookie(key: string): Promise<string> {
  const res = await login(key);
  expect(res.status).toBe(303);
  return res.headers.get('set-cookie')!.split(';')[0]!;
}

/** The page's CSRF token, as its script reads it. */
async function csrfOf(cookie: string): Promise<string> {
  const html = await (await api.app.request(`http://${HOST}/dashboard`, { headers: { cookie, host: HOST } })).text();
  return JSON.parse(/<script type="application\/json" id="dashboard-boot">(.*?)<\/script>/s.exec(html)![1]!).csrf as string;
}

/** A dead letter made the way the worker makes one. */
async function deadLetter(): Promise<{ id: string; jobId: string }> {
  const jobId = uuidv7();
  await queueFor(db.sql).enqueue({ id: jobId, kind: 'test.doomed', queue: 'dash', maxAttempts: 1, tenantId: admin.tenantId });
  const [dl] = await db.sql<{ id: string }[]>`
    with failed as (
      update leasehold.jobs set status = 'failed', attempts = 1, finished_at = now(), last_error = 'boom'
      where id = ${jobId} returning *
    )
    insert into leasehold.dead_letters (job_id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, last_error, errors, job_created_at)
    select id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, last_error, errors, created_at from failed
    returning id`;
  return { id: dl!.id, jobId };
}

describe('logging in', () => {
  test('without a session, GET /dashboard is the login form, under a strict CSP', async () => {
    const res = await api.app.request('/dashboard');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'nonce-[^']+'/);
    const html = await res.text();
    expect(html).toContain('<form class="login" method="post" action="/dashboard/login">');
    expect(html).not.toContain('dashboard-boot');
  });

  test('an admin key gets an HttpOnly, SameSite=Strict cookie scoped to /dashboard that does not contain the key', async () => {
    const res = await login(admin.key);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/dashboard');
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\/dashboard/);
    expect(cookie).not.toMatch(/Secure/); // plain http here
    const [, secret] = /^lh_[a-z0-9]{10}_(.*)$/.exec(admin.key)!;
    expect(cookie).not.toContain(secret!);
    expect(decodeURIComponent(cookie)).not.toContain(admin.key);
  });

  test('the cookie is Secure when the page was reached over https (a TLS-terminating proxy)', async () => {
    const res = await login(admin.key, { 'x-forwarded-proto': 'https' });
    expect(res.headers.get('set-cookie')).toMatch(/Secure/);
  });

  test('a key without admin scope, an unknown key and a cross-site login are refused', async () => {
    const notAdmin = await login(writer);
    expect(notAdmin.status).toBe(403);
    expect(await notAdmin.text()).toContain('lacks the admin scope');
    expect(notAdmin.headers.get('set-cookie')).toBeNull();
    const unknown = await login('lh_aaaaaaaaaa_' + 'A'.repeat(43));
    expect(unknown.status).toBe(401);
    expect(unknown.headers.get('set-cookie')).toBeNull();
    const crossSite = await login(admin.key, { origin: 'https://evil.example' });
    expect(crossSite.status).toBe(403);
    expect(crossSite.headers.get('content-type')).toBe('application/problem+json');
    expect(crossSite.headers.get('set-cookie')).toBeNull();
    expect((await login(admin.key, { origin: 'null' })).status).toBe(403);
    // Behind a proxy that rewrites Host, the browser's host arrives as X-Forwarded-Host.
    expect((await login(admin.key, { host: 'api.internal:8080', 'x-forwarded-host': HOST })).status).toBe(303);
    expect((await login(admin.key, { host: 'api.internal:8080' })).status).toBe(403);
  });

  test('a tampered or foreign cookie is no session', async () => {
    const cookie = await sessionCookie(admin.key);
    const tampered = cookie.slice(0, -2) + (cookie.endsWith('A') ? 'BB' : 'AA');
    for (const c of [tampered, 'leasehold_dashboard=e30.abc', 'leasehold_dashboard=garbage']) {
      const html = await (await api.app.request('/dashboard', { headers: { cookie: c } })).text();
      expect(html, c).toContain('action="/dashboard/login"');
    }
  });

  test('revoking the key ends its session', async () => {
    const t = await api.tenant('dash-revoked', ['admin']);
    const cookie = await sessionCookie(t.key);
    expect(await (await api.app.request('/dashboard', { headers: { cookie } })).text()).toContain('dashboard-boot');
    const [, prefix] = /^lh_([a-z0-9]{10})_/.exec(t.key)!;
    expect(await revokeApiKey(db.sql, prefix!)).toBe(true);
    // Sessions re-check their key at most every 5 s.
    await waitFor(
      async () => (await (await api.app.request('/dashboard', { headers: { cookie } })).text()).includes('action="/dashboard/login"'),
      'the revoked session to end',
      8_000,
      250,
    );
    expect((await api.app.request('/dashboard/stream', { headers: { cookie } })).status).toBe(401);
  });
});

describe('the page', () => {
  test('renders every panel server-side, across tenants, with a first snapshot', async () => {
    const other = await api.tenant('dash-other');
    const res = await api.request(other.key, 'POST', '/v1/jobs', { kind: 'system.noop', queue: 'dash-page' });
    const { id } = (await res.json()) as { id: string };
    const cookie = await sessionCookie(admin.key);
    const html = await (await api.app.request('/dashboard', { headers: { cookie } })).text();
    for (const panel of ['queues', 'recent', 'leases', 'failures', 'deadLetters', 'governor', 'webhooks']) {
      expect(html).toContain(`data-panel="${panel}"`);
    }
    expect(html).toContain('all tenants');
    // Another tenant's job is on an operator's dashboard, with its tenant named.
    expect(html).toMatch(new RegExp(`<tr data-key="${id}"><td class="mono" title="${id}">${id}</td><td title="dash-other">dash-other</td>`));
    expect(html).toContain('<span class="badge s-queued">queued</span>');
  });

  test('data is escaped: a kind name cannot inject markup', async () => {
    await insertJob(db.sql, { kind: '<img src=x onerror=alert(1)>' });
    const cookie = await sessionCookie(admin.key);
    const html = await (await api.app.request('/dashboard', { headers: { cookie } })).text();
    expect(html).not.toContain('<img src=x');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
  });
});

describe('the live stream', () => {
  test('needs a session, then sends a snapshot a second and counts itself as a subscriber', async () => {
    expect((await api.app.request('/dashboard/stream')).status).toBe(401);
    const cookie = await sessionCookie(admin.key);
    const controller = new AbortController();
    const res = await api.app.request('/dashboard/stream', { headers: { cookie }, signal: controller.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    while ((text.match(/event: snapshot/g) ?? []).length < 2) text += new TextDecoder().decode((await reader.read()).value);
    const data = JSON.parse(/data: (.*)\n/.exec(text)![1]!);
    expect(Object.keys(data.panels).sort()).toEqual(['deadLetters', 'failures', 'governor', 'leases', 'queues', 'recent', 'webhooks']);
    expect(data.totals).toMatchObject({ ready: expect.any(Number), workers: expect.any(Number) });
    expect(metrics.eventStreamSubscribers.labels('dashboard')).toBeDefined();
    expect((await metrics.registry.getSingleMetricAsString('leasehold_event_stream_subscribers'))).toContain(
      'leasehold_event_stream_subscribers{stream="dashboard"} 1',
    );
    await reader.cancel();
    controller.abort();
    await waitFor(
      async () => (await metrics.registry.getSingleMetricAsString('leasehold_event_stream_subscribers')).includes('{stream="dashboard"} 0'),
      'the subscriber to be gone',
    );
  });
});

describe('requeueing a dead letter', () => {
  test('needs the session, the same origin and its CSRF token; then requeues any tenant\'s dead letter', async () => {
    const dl = await deadLetter();
    const cookie = await sessionCookie(admin.key);
    const csrf = await csrfOf(cookie);
    const path = `http://${HOST}/dashboard/dead-letters/${dl.id}/requeue`;
    const post = (headers: Record<string, string>) => api.app.request(path, { method: 'POST', headers: { host: HOST, ...headers } });

    expect((await post({ 'x-csrf-token': csrf })).status).toBe(401); // no cookie
    expect((await post({ cookie })).status).toBe(403); // no token
    expect((await post({ cookie, 'x-csrf-token': csrf.slice(1) + 'x' })).status).toBe(403);
    expect((await post({ cookie, 'x-csrf-token': csrf, origin: 'https://evil.example' })).status).toBe(403);
    expect((await post({ cookie, 'x-csrf-token': csrf, 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await db.sql`select requeued_at from leasehold.dead_letters where id = ${dl.id}`)[0]!.requeued_at).toBeNull();

    const ok = await post({ cookie, 'x-csrf-token': csrf, origin: `http://${HOST}`, 'sec-fetch-site': 'same-origin' });
    expect(ok.status).toBe(202);
    expect(await ok.json()).toEqual({ job_id: dl.jobId });
    const [job] = await db.sql`select status, attempts from leasehold.jobs where id = ${dl.jobId}`;
    expect(job).toMatchObject({ status: 'queued', attempts: 0 });

    const again = await post({ cookie, 'x-csrf-token': csrf });
    expect(again.status).toBe(409);
    expect(again.headers.get('content-type')).toBe('application/problem+json');
    const missing = await api.app.request(`http://${HOST}/dashboard/dead-letters/not-a-uuid/requeue`, {
      method: 'POST',
      headers: { host: HOST, cookie, 'x-csrf-token': csrf },
    });
    expect(missing.status).toBe(404);
  });

  test("a paid job's dead letter passes the governor as the API's requeue does: at zero balance a 402, and it stays open", async () => {
    const { id: tenantId } = await ensureTenant(db.sql, 'dash-broke');
    await setBudget(db.sql, tenantId, { enforceCredits: true });
    const pattern = await insertPattern(db.sql, tenantId);
    const jobId = uuidv7();
    await queueFor(db.sql).enqueue({
      id: jobId, kind: 'manifest.extract', tenantId, payload: { pattern_id: pattern, pattern_version: 1, image: { url: 'https://images.example/a.png' } },
    });
    const [dl] = await db.sql<{ id: string }[]>`
      with failed as (update leasehold.jobs set status = 'failed', finished_at = now() where id = ${jobId} returning *)
      insert into leasehold.dead_letters (job_id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, last_error, errors, job_created_at)
      select id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, last_error, errors, created_at from failed
      returning id`;
    const cookie = await sessionCookie(admin.key);
    const res = await api.app.request(`http://${HOST}/dashboard/dead-letters/${dl!.id}/requeue`, {
      method: 'POST',
      headers: { host: HOST, cookie, 'x-csrf-token': await csrfOf(cookie) },
    });
    expect(res.status).toBe(402);
    expect(await res.json()).toMatchObject({ code: 'budget_exceeded', ceiling: 'credit_balance', limit_micros: 0 });
    expect((await db.sql`select requeued_at from leasehold.dead_letters where id = ${dl!.id}`)[0]!.requeued_at).toBeNull();
    expect((await jobRow(db.sql, jobId)).status).toBe('failed');
  });

  test('a CSRF token belongs to its session: another session\'s token is refused', async () => {
    const dl = await deadLetter();
    const mine = await sessionCookie(admin.key);
    const theirs = await csrfOf(await sessionCookie(admin.key));
    const res = await api.app.request(`/dashboard/dead-letters/${dl.id}/requeue`, {
      method: 'POST',
      headers: { cookie: mine, 'x-csrf-token': theirs },
    });
    expect(res.status).toBe(403);
  });

  test('logging out clears the cookie; it needs the CSRF token', async () => {
    const cookie = await sessionCookie(admin.key);
    const out = (csrf: string) =>
      api.app.request(`http://${HOST}/dashboard/logout`, {
        method: 'POST',
        headers: { host: HOST, cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: form({ csrf }),
      });
    expect((await out('wrong')).status).toBe(403);
    const res = await out(await csrfOf(cookie));
    expect(res.status).toBe(303);
    expect(res.headers.get('set-cookie')).toMatch(/^leasehold_dashboard=;.*Max-Age=0/);
  });
});

describe('snapshots', () => {
  test('throughput counts the events since the previous read, per queue and kind', async () => {
    const reader = new SnapshotReader(db.sql);
    await reader.read(); // the first read sets the starting point
    const ids = (await queueFor(db.sql).enqueueMany(Array.from({ length: 4 }, () => ({ kind: 'system.noop', queue: 'dash-tp' })))).ids;
    await db.sql`
      with done as (update leasehold.jobs set status = 'succeeded', finished_at = now() where id = any(${ids}::uuid[]) returning id, tenant_id)
      insert into leasehold.job_events (job_id, tenant_id, type, attempt) select id, tenant_id, 'job.succeeded', 1 from done`;
    const s = await reader.read();
    const row = s.panels.queues.rows.find((r) => r.queue === 'dash-tp')!;
    expect(row).toMatchObject({ kind: 'system.noop', succeeded_1m: '4', ready: '0' });
    expect(s.jobs_per_second).toBeGreaterThan(0);
    expect(s.series.at(-1)).toBe(s.jobs_per_second);
  });
});

describe('the governor and webhook panels', () => {
  const pool = new WorkerPool();
  afterAll(() => pool.stopAll());

  test('show spend against ceilings and drift after real model calls, and delivery health after real deliveries', async () => {
    const images = await startImageServer();
    const good = await new WebhookReceiver().start();
    const bad = await new WebhookReceiver().start();
    bad.answer = () => 500;
    try {
      const t = await api.tenant('dash-spender');
      expect((await api.request(admin.key, 'POST', '/v1/admin/credits', { tenant: 'dash-spender', usd: 10 })).status).toBe(201);
      expect((await api.request(admin.key, 'PUT', '/v1/admin/tenants/dash-spender/budget', { daily_usd: 2, monthly_usd: 40 })).status).toBe(200);
      await db.sql`update leasehold.governor_settings set global_daily_micros = 5000000`;
      const goodHook = (await (await api.request(t.key, 'POST', '/v1/webhooks', { url: good.url })).json()) as { id: string };
      const badHook = (await (await api.request(t.key, 'POST', '/v1/webhooks', { url: bad.url })).json()) as { id: string };

      const pattern = await insertPattern(db.sql, t.tenantId);
      const res = await api.request(t.key, 'POST', `/v1/patterns/${pattern}/ingest`, { images: [{ image_url: `${images.base}/a.png` }] });
      expect(res.status).toBe(202);
      const jobId = ((await res.json()) as { job_ids: string[] }).job_ids[0]!;
      await pool.start({
        sql: db.sql,
        config: loadConfig({
          LOG_LEVEL: 'silent', FETCH_ALLOW_PRIVATE: 'true', WEBHOOK_RETRY_SCHEDULE: '1h',
          LEASEHOLD_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'leasehold-dash-')),
        }),
        settings: { pollMs: 50 },
      });
      const outcome = await waitFor(async () => {
        const [d] = await db.sql<{ good: string; bad: string }[]>`
          select max(status) filter (where webhook_id = ${goodHook.id}) as good, max(last_error) filter (where webhook_id = ${badHook.id}) as bad
          from leasehold.webhook_deliveries where tenant_id = ${t.tenantId}`;
        return d?.good === 'delivered' && d.bad !== null && d;
      }, 'one delivery to succeed and the other to fail');
      expect(outcome.bad).toMatch(/^HTTP 500/);
      expect((await jobRow(db.sql, jobId)).status).toBe('succeeded');

      const [spend] = await db.sql<{ spent: number; est: number; act: number }[]>`
        select sum(spent_micros)::float8 as spent, sum(settled_estimate_micros)::float8 as est, sum(settled_actual_micros)::float8 as act
        from leasehold.spend_daily where tenant_id = ${t.tenantId} and day = leasehold.governor_today()`;
      expect(spend!.spent).toBeGreaterThan(0);
      const usd = (micros: number) => (micros / 1e6).toFixed(6);

      const s = await new SnapshotReader(db.sql).read();
      const governor = s.panels.governor.rows;
      expect(governor[0]).toMatchObject({ scope: 'global daily', spent: usd(spend!.spent), ceiling: '5.000000' });
      expect(governor).toContainEqual({
        scope: 'dash-spender: daily', spent: usd(spend!.spent), ceiling: '2.000000',
        used: spend!.spent / 2e6 < 0.001 ? '< 0.1 %' : `${((spend!.spent / 2e6) * 100).toFixed(1)} %`, drift: (spend!.act / spend!.est).toFixed(3),
      });
      expect(governor.find((r) => r.scope === 'dash-spender: monthly')).toMatchObject({ ceiling: '40.000000' });

      const webhooks = s.panels.webhooks.rows;
      // The failing subscription comes first, with its error; the healthy one shows its delivery.
      expect(webhooks[0]).toMatchObject({
        tenant: 'dash-spender', delivered: '0', failed: '1', pending: '1', state: expect.stringMatching(/^failing since /),
        last_error: expect.stringMatching(/^HTTP 500/),
      });
      expect(webhooks[0]!.webhook).toContain(badHook.id);
      expect(webhooks.find((r) => r.webhook?.includes(goodHook.id))).toMatchObject({
        tenant: 'dash-spender', delivered: '1', failed: '0', pending: '0', state: 'healthy', last_error: '',
      });
    } finally {
      await images.close();
      await good.stop();
      await bad.stop();
    }
  });
});
