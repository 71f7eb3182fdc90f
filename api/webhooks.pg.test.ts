import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { MAX_REDELIVERIES } from './routes/webhook-deliveries.js';
import { MAX_WEBHOOKS_PER_TENANT } from './routes/webhooks.js';
import { LISTED_ATTEMPTS } from './webhook-views.js';

let db: TestDatabase;
let api: TestApi;

beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql);
});
afterAll(() => db.drop());

const HOOK = 'https://93.184.215.14/hook';

describe('/v1/webhooks', () => {
  test('create shows the secret once; list never does; delete removes it', async () => {
    const { key } = await api.tenant('subs');
    const res = await api.request(key, 'POST', '/v1/webhooks', { url: HOOK, events: ['job.failed'], description: 'ops' });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { id: string; secret: string };
    expect(created).toMatchObject({ url: HOOK, events: ['job.failed'], description: 'ops', disabled_at: null, disabled_reason: null });
    expect(created.secret).toMatch(/^whsec_/);
    const [stored] = await db.sql`select secret from leasehold.webhooks where id = ${created.id}`;
    expect(stored!.secret).toBe(`plain:${created.secret}`);

    const list = await api.request(key, 'GET', '/v1/webhooks');
    const body = await list.text();
    expect(JSON.parse(body)).toMatchObject({ data: [{ id: created.id }] });
    expect(body).not.toContain('whsec_');

    expect((await api.request(key, 'DELETE', `/v1/webhooks/${created.id}`)).status).toBe(204);
    expect((await api.request(key, 'DELETE', `/v1/webhooks/${created.id}`)).status).toBe(404);
    expect(await (await api.request(key, 'GET', '/v1/webhooks')).json()).toEqual({ data: [] });
  });

  test('with WEBHOOK_SECRET_KEY the secret is stored encrypted and still signs', async () => {
    const sealed = createTestApi(db.sql, { WEBHOOK_SECRET_KEY: 'a-long-enough-test-key' });
    const { key } = await sealed.tenant('sealed');
    const created = (await (await sealed.request(key, 'POST', '/v1/webhooks', { url: HOOK })).json()) as { id: string; secret: string };
    const [stored] = await db.sql`select secret from leasehold.webhooks where id = ${created.id}`;
    expect(stored!.secret).toMatch(/^v1:/);
    expect(stored!.secret).not.toContain(created.secret.slice(6));
    const own = (await (await sealed.request(key, 'GET', '/v1/webhook-secret')).json()) as { secret: string };
    const again = (await (await sealed.request(key, 'GET', '/v1/webhook-secret')).json()) as { secret: string };
    expect(again.secret).toBe(own.secret);
    // Another process without the key cannot open it, and says so rather than failing opaquely.
    const res = await api.request(key, 'GET', '/v1/webhook-secret');
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ code: 'unavailable', detail: expect.stringContaining('WEBHOOK_SECRET_KEY') });
  });

  test('bad input is a 422 naming each path; private and local targets are refused', async () => {
    const { key } = await api.tenant('bad');
    const cases: [unknown, string][] = [
      [{ url: 'ftp://example.com/x' }, 'body.url'],
      [{ url: 'https://user:pw@example.com/x' }, 'body.url'],
      [{ url: 'http://localhost:8080/x' }, 'body.url'],
      [{ url: 'http://10.1.2.3/x' }, 'body.url'],
      [{ url: 'http://[::1]/x' }, 'body.url'],
      [{ url: 'http://169.254.169.254/latest' }, 'body.url'],
      [{ url: HOOK, events: ['job.running'] }, 'body.events[0]'],
      [{ url: HOOK, events: [] }, 'body.events'],
      [{ url: HOOK, secret: 'mine' }, 'body.secret'],
    ];
    for (const [body, path] of cases) {
      const res = await api.request(key, 'POST', '/v1/webhooks', body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      const problem = (await res.json()) as { code: string; errors: { path: string }[] };
      expect(problem.code).toBe('validation_failed');
      expect(problem.errors.map((e) => e.path)).toContain(path);
    }
    expect(await db.sql`select 1 from leasehold.webhooks w join leasehold.tenants t on t.id = w.tenant_id where t.slug = 'bad'`).toEqual([]);
    expect((await api.request(key, 'POST', '/v1/webhooks', '{"url":')).status).toBe(400);
  });

  test("another tenant's webhook and deliveries are a 404; a read-only key cannot create", async () => {
    const a = await api.tenant('owner');
    const b = await api.tenant('stranger');
    const { id } = (await (await api.request(a.key, 'POST', '/v1/webhooks', { url: HOOK })).json()) as { id: string };
    for (const [method, path] of [
      ['DELETE', `/v1/webhooks/${id}`],
      ['POST', `/v1/webhooks/${id}/rotate-secret`],
      ['POST', `/v1/webhooks/${id}/enable`],
      ['GET', `/v1/webhooks/${id}/deliveries`],
      ['POST', `/v1/webhooks/${id}/deliveries/${id}/redeliver`],
      ['GET', '/v1/webhooks/not-a-uuid/deliveries'],
    ] as const) {
      const res = await api.request(b.key, method, path);
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    expect(await (await api.request(b.key, 'GET', '/v1/webhooks')).json()).toEqual({ data: [] });
    const reader = await api.tenant('owner', ['jobs:read']);
    expect((await api.request(reader.key, 'POST', '/v1/webhooks', { url: HOOK })).status).toBe(403);
    expect((await api.request(reader.key, 'GET', '/v1/webhook-secret')).status).toBe(403);
    expect((await api.request(reader.key, 'GET', '/v1/webhooks')).status).toBe(200);
  });

  test('PATCH changes the URL, events or description; keeps the secret; refuses what create refuses', async () => {
    const { key } = await api.tenant('patch');
    const created = (await (await api.request(key, 'POST', '/v1/webhooks', { url: HOOK, description: 'v1' })).json()) as { id: string; secret: string };
    await db.sql`update leasehold.webhooks set failing_since = now() - interval '1 hour' where id = ${created.id}`;
    const [before] = await db.sql<{ secret: string }[]>`select secret from leasehold.webhooks where id = ${created.id}`;

    const moved = await api.request(key, 'PATCH', `/v1/webhooks/${created.id}`, { url: 'https://93.184.215.15/new-hook', events: ['job.failed'] });
    expect(moved.status).toBe(200);
    const view = (await moved.json()) as Record<string, unknown>;
    expect(view).toMatchObject({ id: created.id, url: 'https://93.184.215.15/new-hook', events: ['job.failed'], description: 'v1', failing_since: null });
    expect(JSON.stringify(view)).not.toContain('whsec_');
    const [after] = await db.sql`select secret from leasehold.webhooks where id = ${created.id}`;
    expect(after!.secret).toBe(before!.secret);

    const described = (await (await api.request(key, 'PATCH', `/v1/webhooks/${created.id}`, { description: 'v2' })).json()) as Record<string, unknown>;
    expect(described).toMatchObject({ url: 'https://93.184.215.15/new-hook', events: ['job.failed'], description: 'v2' });

    for (const body of [{}, { url: 'http://127.0.0.1/x' }, { events: [] }, { events: ['job.nope'] }, { secret: 'whsec_x' }]) {
      const res = await api.request(key, 'PATCH', `/v1/webhooks/${created.id}`, body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
    }
    const other = await api.tenant('patch-other');
    expect((await api.request(other.key, 'PATCH', `/v1/webhooks/${created.id}`, { description: 'mine now' })).status).toBe(404);
    expect((await api.request(key, 'PATCH', '/v1/webhooks/not-a-uuid', { description: 'x' })).status).toBe(404);
    const readOnly = await api.tenant('patch', ['jobs:read']);
    expect((await api.request(readOnly.key, 'PATCH', `/v1/webhooks/${created.id}`, { description: 'x' })).status).toBe(403);
    const [unchanged] = await db.sql`select description from leasehold.webhooks where id = ${created.id}`;
    expect(unchanged!.description).toBe('v2');
  });

  test(`a tenant may have at most ${MAX_WEBHOOKS_PER_TENANT} subscriptions`, async () => {
    const { key } = await api.tenant('many');
    for (let i = 0; i < MAX_WEBHOOKS_PER_TENANT; i++) {
      expect((await api.request(key, 'POST', '/v1/webhooks', { url: `${HOOK}/${i}` })).status).toBe(201);
    }
    const res = await api.request(key, 'POST', '/v1/webhooks', { url: HOOK });
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ code: 'conflict' });
  });

  test('redeliver: a delivery no job is sending gets a new deliver job with the same id; one being sent is a 409', async () => {
    const { key, tenantId } = await api.tenant('redeliver');
    const { id: hook } = (await (await api.request(key, 'POST', '/v1/webhooks', { url: HOOK })).json()) as { id: string };
    const delivery = crypto.randomUUID();
    const jobId = crypto.randomUUID();
    await db.sql`
      insert into leasehold.webhook_deliveries (id, tenant_id, webhook_id, job_id, event)
      values (${delivery}, ${tenantId}, ${hook}, ${jobId}, 'job.succeeded')`;
    const [first] = await db.sql`select d.deliver_job_id, j.kind, j.payload from leasehold.webhook_deliveries d join leasehold.jobs j on j.id = d.deliver_job_id where d.id = ${delivery}`;
    expect(first).toMatchObject({ kind: 'webhook.deliver', payload: { delivery_id: delivery } });
    const path = `/v1/webhooks/${hook}/deliveries/${delivery}/redeliver`;
    const busy = await api.request(key, 'POST', path);
    expect(busy.status).toBe(409);
    expect(await busy.json()).toMatchObject({ code: 'invalid_state', detail: expect.stringContaining('still being attempted') });

    // Its deliver job cancelled by hand: still pending, but nothing will send it, so it may be redelivered.
    await db.sql`select leasehold.cancel_job(${first!.deliver_job_id})`;
    const res = await api.request(key, 'POST', path);
    expect(res.status).toBe(202);
    const view = (await res.json()) as { id: string; status: string; deliver_job_id: string };
    expect(view).toMatchObject({ id: delivery, status: 'pending' });
    expect(view.deliver_job_id).not.toBe(first!.deliver_job_id);
    const [job] = await db.sql`select kind, queue, status, tenant_id, payload from leasehold.jobs where id = ${view.deliver_job_id}`;
    expect(job).toEqual({ kind: 'webhook.deliver', queue: 'webhooks', status: 'queued', tenant_id: tenantId, payload: { delivery_id: delivery } });
    const other = await api.tenant('redeliver-other');
    expect((await api.request(other.key, 'POST', path)).status).toBe(404);
    expect((await api.request(key, 'POST', `/v1/webhooks/${hook}/deliveries/${crypto.randomUUID()}/redeliver`)).status).toBe(404);
  });

  test(`a delivery may be redelivered ${MAX_REDELIVERIES} times, then it is a 409; the log shows its latest ${LISTED_ATTEMPTS} attempts and the count of all`, async () => {
    const { key, tenantId } = await api.tenant('redeliver-cap');
    const { id: hook } = (await (await api.request(key, 'POST', '/v1/webhooks', { url: HOOK })).json()) as { id: string };
    const delivery = crypto.randomUUID();
    await db.sql`
      insert into leasehold.webhook_deliveries (id, tenant_id, webhook_id, job_id, event)
      values (${delivery}, ${tenantId}, ${hook}, ${crypto.randomUUID()}, 'job.succeeded')`;
    const path = `/v1/webhooks/${hook}/deliveries/${delivery}/redeliver`;
    /** What a deliver job does when every attempt fails: two attempts logged, the delivery failed, the job over. */
    const sendAndFail = async () => {
      const [d] = await db.sql<{ deliver_job_id: string }[]>`select deliver_job_id from leasehold.webhook_deliveries where id = ${delivery}`;
      for (const attempt of [1, 2]) {
        await db.sql`
          insert into leasehold.webhook_delivery_attempts (delivery_id, attempt, deliver_job_id, started_at, latency_ms, status_code, error)
          values (${delivery}, ${attempt}, ${d!.deliver_job_id}, now(), 5, 500, 'HTTP 500')`;
      }
      await db.sql`update leasehold.webhook_deliveries set status = 'failed', attempts = attempts + 2, last_attempt_at = now() where id = ${delivery}`;
      await db.sql`select leasehold.cancel_job(${d!.deliver_job_id})`;
    };
    for (let i = 0; i < MAX_REDELIVERIES; i++) {
      await sendAndFail();
      const res = await api.request(key, 'POST', path);
      expect(res.status, `redelivery ${i + 1}`).toBe(202);
    }
    await sendAndFail();
    const refused = await api.request(key, 'POST', path);
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({
      code: 'invalid_state',
      detail: `delivery ${delivery} was already redelivered ${MAX_REDELIVERIES} times, the most allowed (${MAX_REDELIVERIES})`,
    });
    const [row] = await db.sql`select status, (select count(*)::int from leasehold.jobs where kind = 'webhook.deliver' and payload->>'delivery_id' = ${delivery}) as jobs
                               from leasehold.webhook_deliveries where id = ${delivery}`;
    expect(row).toEqual({ status: 'failed', jobs: MAX_REDELIVERIES + 1 });

    const log = (await (await api.request(key, 'GET', `/v1/webhooks/${hook}/deliveries`)).json()) as { data: any[] };
    const [shown] = log.data;
    const sent = 2 * (MAX_REDELIVERIES + 1);
    expect(shown.attempt_count).toBe(sent);
    expect(shown.attempts).toHaveLength(LISTED_ATTEMPTS);
    const ids = await db.sql<{ deliver_job_id: string; attempt: number }[]>`
      select deliver_job_id, attempt from leasehold.webhook_delivery_attempts where delivery_id = ${delivery} order by id`;
    expect(ids).toHaveLength(sent);
    expect(shown.attempts.map((a: any) => [a.deliver_job_id, a.attempt])).toEqual(ids.slice(-LISTED_ATTEMPTS).map((a) => [a.deliver_job_id, a.attempt]));
  });

  test("a job's deliveries come a page at a time", async () => {
    const { key, tenantId } = await api.tenant('job-deliveries');
    const job = (await (await api.request(key, 'POST', '/v1/jobs', { kind: 'system.noop' })).json()) as { id: string };
    const made: string[] = [];
    for (let i = 0; i < 3; i++) {
      const [d] = await db.sql<{ id: string }[]>`
        insert into leasehold.webhook_deliveries (id, tenant_id, url, job_id, event)
        values (leasehold.uuid_v7(), ${tenantId}, ${`${HOOK}/${i}`}, ${job.id}, 'job.succeeded') returning id`;
      made.push(d!.id);
    }
    const first = (await (await api.request(key, 'GET', `/v1/jobs/${job.id}/webhook-deliveries?limit=2`)).json()) as { data: any[]; next_cursor: string | null };
    expect(first.data.map((d) => d.id)).toEqual([made[2], made[1]]);
    expect(first.data[0]).toMatchObject({ attempt_count: 0, attempts: [] });
    const rest = (await (await api.request(key, 'GET', `/v1/jobs/${job.id}/webhook-deliveries?limit=2&cursor=${first.next_cursor}`)).json()) as { data: any[]; next_cursor: string | null };
    expect([rest.data.map((d) => d.id), rest.next_cursor]).toEqual([[made[0]], null]);
    const all = (await (await api.request(key, 'GET', `/v1/jobs/${job.id}/webhook-deliveries`)).json()) as { data: any[]; next_cursor: string | null };
    expect([all.data.length, all.next_cursor]).toEqual([3, null]);
    expect((await api.request(key, 'GET', `/v1/jobs/${job.id}/webhook-deliveries?limit=101`)).status).toBe(422);
  });

  test('rotating the default secret keeps the old one signing for a day', async () => {
    const { key, tenantId } = await api.tenant('rotator');
    const first = (await (await api.request(key, 'GET', '/v1/webhook-secret')).json()) as { secret: string; previous_secret_expires_at: string | null };
    expect(first.previous_secret_expires_at).toBeNull();
    const rotated = (await (await api.request(key, 'POST', '/v1/webhook-secret/rotate')).json()) as { secret: string; previous_secret_expires_at: string };
    expect(rotated.secret).not.toBe(first.secret);
    const now = (await (await api.request(key, 'GET', '/v1/webhook-secret')).json()) as { secret: string; previous_secret_expires_at: string };
    expect(now).toMatchObject({ secret: rotated.secret, previous_secret_expires_at: rotated.previous_secret_expires_at });
    const [row] = await db.sql`select previous_secret from leasehold.webhook_signing_secrets where tenant_id = ${tenantId}`;
    expect(row!.previous_secret).toBe(`plain:${first.secret}`);
  });
});
