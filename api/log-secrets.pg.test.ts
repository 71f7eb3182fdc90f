import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '#shared/log.js';
import { createApiKey, parseApiKey } from '#shared/auth/api-keys.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { PermanentError } from '#shared/jobs/job-errors.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';

const JWT_SECRET = 'jwt-secret-for-the-log-test-0123456789';
const METRICS_TOKEN = 'metrics-token-for-the-log-test';
const SESSION_SECRET = 'dashboard-session-secret-for-the-log-test';

/** Every line the logger wrote, parsed. */
const lines: Record<string, unknown>[] = [];
let raw = '';
const capture = new Writable({
  write(chunk: Buffer, _encoding, done) {
    raw += chunk.toString();
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  },
});
const log = createLogger('trace', 'log-test', capture);

let db: TestDatabase;
let api: TestApi;
const pool = new WorkerPool();
beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { JWT_SECRET, METRICS_TOKEN, DASHBOARD_SESSION_SECRET: SESSION_SECRET }, { log });
});
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

const requestLines = () => lines.filter((l) => l.msg === 'request');

describe('logs', () => {
  test('no key, token, JWT, cookie or secret reaches a log line, whichever way it was presented', async () => {
    const { key } = await api.tenant('log-secrets', ['admin']);
    const jwt = await new SignJWT({ sub: 'log-secrets-jwt', exp: Math.floor(Date.now() / 1000) + 300 })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(JWT_SECRET));
    const wrongKey = `lh_zzzzzzzzzz_${'Q'.repeat(43)}`;
    // A key an operator chose (LEASEHOLD_API_KEY), and a near miss of it.
    const chosenKey = 'chosen-key-for-the-log-test';
    await createApiKey(db.sql, { tenantId: (await ensureTenant(db.sql, 'log-secrets')).id, name: 'chosen', scopes: ['admin'], key: chosenKey });
    const wrongChosenKey = 'chosen-key-for-the-log-tesT';

    await api.request(key, 'GET', '/v1/jobs');
    await api.request(jwt, 'GET', '/v1/jobs');
    await api.request(wrongKey, 'GET', '/v1/jobs');
    await api.request(chosenKey, 'GET', '/v1/jobs');
    await api.request(wrongChosenKey, 'GET', '/v1/jobs');
    await api.request(undefined, 'GET', `/v1/jobs/some/events?access_token=${chosenKey}`);
    await api.app.request('/metrics', { headers: { authorization: `Bearer ${chosenKey}` } });
    await api.request(undefined, 'GET', `/v1/jobs/some/events?access_token=${key}`);
    await api.request(undefined, 'GET', `/v1/jobs/some/events?access_token=${jwt}`);
    await api.request(key, 'POST', '/v1/jobs', { kind: 'system.noop', payload: { token: key } });
    await api.app.request('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    await api.app.request('/metrics', { headers: { authorization: `Bearer ${key}` } });
    const login = await api.app.request('/dashboard/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ key }).toString(),
    });
    expect(login.status).toBe(303);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    await api.app.request('/dashboard', { headers: { cookie } });
    await api.app.request('/dashboard/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ key: wrongKey }).toString(),
    });

    await api.app.request('/dashboard/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ key: chosenKey }).toString(),
    });

    expect(requestLines().length).toBeGreaterThanOrEqual(16);
    // The secret is base64url and may itself hold `_`: take everything after the prefix.
    const secretPart = parseApiKey(key)!.secret;
    for (const secret of [key, secretPart, chosenKey, wrongChosenKey, jwt, jwt.split('.')[2]!, wrongKey, METRICS_TOKEN, JWT_SECRET, SESSION_SECRET, cookie.split('=')[1]!]) {
      expect(raw.includes(secret), `a log line holds ${secret.slice(0, 12)}…`).toBe(false);
    }
  });

  test('every request line has its request id; authenticated ones name the tenant', async () => {
    const { key, tenantId } = await api.tenant('log-tenant');
    lines.length = 0;
    const res = await api.request(key, 'GET', '/v1/jobs');
    await api.request(undefined, 'GET', '/v1/jobs');
    const [ok, refused] = requestLines();
    expect(ok).toMatchObject({ request_id: res.headers.get('x-request-id'), tenant_id: tenantId, status: 200, path: '/v1/jobs' });
    expect(refused).toMatchObject({ request_id: expect.any(String), status: 401 });
    expect(refused!.tenant_id).toBeUndefined();
    for (const line of requestLines()) expect(line.request_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('a failed attempt is logged with its job id, kind and tenant', async () => {
    const { tenantId } = await api.tenant('log-jobs');
    const queue = queueFor(db.sql);
    const { id: flaky } = await queue.enqueue({ kind: 'test.flaky', queue: 'log-jobs', maxAttempts: 2, tenantId });
    const { id: doomed } = await queue.enqueue({ kind: 'test.doomed', queue: 'log-jobs', maxAttempts: 1, tenantId });
    await pool.start({
      sql: db.sql,
      log,
      settings: { queues: [{ name: 'log-jobs' }] },
      handlers: {
        'test.flaky': (_payload: unknown, ctx) => {
          ctx.log.info('about to fail');
          throw new Error('try again later');
        },
        'test.doomed': () => {
          throw new PermanentError('never works', 'doomed');
        },
      },
    });
    const retry = await waitFor(() => lines.find((l) => l.msg === 'attempt failed; will retry' && l.job_id === flaky), 'the retry line');
    expect(retry).toMatchObject({ kind: 'test.flaky', tenant_id: tenantId, attempt: 1, error: 'try again later' });
    const dead = await waitFor(() => lines.find((l) => l.msg === 'job failed for good; copied to dead_letters' && l.job_id === doomed), 'the dead-letter line');
    expect(dead).toMatchObject({ kind: 'test.doomed', tenant_id: tenantId, code: 'doomed' });
    // The handler's own ctx.log lines carry the same fields.
    expect(lines.find((l) => l.msg === 'about to fail')).toMatchObject({ job_id: flaky, kind: 'test.flaky', tenant_id: tenantId });
  });
});
