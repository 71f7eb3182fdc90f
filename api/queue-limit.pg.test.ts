import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { queueFor } from '../test/helpers/engine.js';

// Any tenant could make queue names without end: each one stayed in leasehold.queues for good, and
// every worker serving all queues probed every name in every claim (350–520 ms a claim at 100,000).
// MAX_QUEUES bounds the names tenants' jobs may add, MAX_QUEUES_PER_TENANT those of one tenant.

type Json = Record<string, any>;
const MAX = 4;
let db: TestDatabase;
let api: TestApi;
let key: string;
beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { MAX_QUEUES: String(MAX), RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' });
  key = (await api.tenant('queue-limit')).key;
});
afterAll(() => db.drop());

async function post(body: Json, headers: Record<string, string> = {}) {
  const res = await api.request(key, 'POST', '/v1/jobs', body, headers);
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Json };
}
const queues = async () => (await db.sql<{ name: string }[]>`select name from leasehold.queues order by name`).map((r) => r.name);
const jobsIn = async (queue: string) => (await db.sql<{ n: number }[]>`select count(*)::int as n from leasehold.jobs where queue = ${queue}`)[0]!.n;

test('a job for a new queue past MAX_QUEUES is a 422 queue_limit that writes nothing; existing queues still take jobs', async () => {
  expect(await queues()).toEqual([]);
  for (const q of ['t-1', 't-2', 't-3', 't-4']) expect((await post({ kind: 'system.noop', queue: q })).status).toBe(202);
  expect(await queues()).toEqual(['t-1', 't-2', 't-3', 't-4']);

  const refused = await post({ kind: 'system.noop', queue: 't-5' });
  expect(refused.status).toBe(422);
  expect(refused.type).toContain('application/problem+json');
  expect(refused.body).toMatchObject({ code: 'queue_limit', type: '/problems/queue_limit', status: 422, max_queues: MAX });
  expect(refused.body.detail).toContain('"t-5"');
  expect(await queues()).not.toContain('t-5');
  expect(await jobsIn('t-5')).toBe(0);
  expect((await db.sql`select count(*)::int as n from leasehold.job_events e join leasehold.jobs j on j.id = e.job_id where j.queue = 't-5'`)[0]!.n).toBe(0);

  // With an Idempotency-Key the refusal rolls the key back too: the same request goes through once there is room.
  const keyed = await post({ kind: 'system.noop', queue: 't-5' }, { 'idempotency-key': 'limit-1' });
  expect(keyed.body.code).toBe('queue_limit');
  expect((await db.sql`select count(*)::int as n from leasehold.idempotency_keys where key = 'limit-1'`)[0]!.n).toBe(0);

  // Existing queues and the kind's own queue (made on the spot, whatever the count) are never refused.
  expect((await post({ kind: 'system.noop', queue: 't-1' })).status).toBe(202);
  expect((await post({ kind: 'system.noop' })).body.queue).toBe('default');
  expect((await post({ kind: 'system.noop', queue: 'default' })).status).toBe(202);
  expect(await jobsIn('t-1')).toBe(2);

  // The library, SQL and the CLI are operators' paths: they still make queues, which count.
  await queueFor(db.sql).enqueue({ kind: 'system.noop', queue: 'ops-made' });
  expect(await queues()).toContain('ops-made');
  expect((await post({ kind: 'system.noop', queue: 't-6' })).body.code).toBe('queue_limit');

  // Once queues go (retention deletes idle ones), there is room again.
  await db.sql`delete from leasehold.jobs where queue in ('t-2', 't-3', 't-4', 'ops-made', 'default')`;
  await db.sql`delete from leasehold.queues where name in ('t-2', 't-3', 't-4', 'ops-made', 'default')`;
  expect((await post({ kind: 'system.noop', queue: 't-5' }, { 'idempotency-key': 'limit-1' })).status).toBe(202);
  expect(await jobsIn('t-5')).toBe(1);
});

test('requests racing for the last place: exactly one new queue is admitted', async () => {
  await db.sql`delete from leasehold.jobs`;
  await db.sql`delete from leasehold.queues`;
  await db.sql`insert into leasehold.queues (name) select 'held-' || i from generate_series(1, ${MAX - 1}) i`;
  const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => post({ kind: 'system.noop', queue: `race-${i}` })));
  expect(answers.map((a) => a.status).sort()).toEqual([202, 422, 422, 422, 422, 422]);
  expect(answers.filter((a) => a.status === 422).every((a) => a.body.code === 'queue_limit')).toBe(true);
  expect((await queues()).filter((q) => q.startsWith('race-'))).toHaveLength(1);
  expect((await db.sql`select count(*)::int as n from leasehold.jobs`)[0]!.n).toBe(1);
});

test('one tenant makes at most MAX_QUEUES_PER_TENANT queues, so it cannot take the places of others', async () => {
  await db.sql`delete from leasehold.jobs`;
  await db.sql`delete from leasehold.queues`;
  const shared = createTestApi(db.sql, { MAX_QUEUES: '10', MAX_QUEUES_PER_TENANT: '2', RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' });
  const [a, b] = [(await shared.tenant('share-a')).key, (await shared.tenant('share-b')).key];
  const send = async (k: string, queue: string) => {
    const res = await shared.request(k, 'POST', '/v1/jobs', { kind: 'system.noop', queue });
    return { status: res.status, body: (await res.json()) as Json };
  };
  expect((await send(a, 'a-1')).status).toBe(202);
  expect((await send(a, 'a-2')).status).toBe(202);
  const refused = await send(a, 'a-3');
  expect(refused.status).toBe(422);
  expect(refused.body).toMatchObject({ code: 'queue_limit', max_queues_per_tenant: 2 });
  expect(refused.body.detail).toContain('MAX_QUEUES_PER_TENANT');
  expect(await queues()).not.toContain('a-3');
  expect(await jobsIn('a-3')).toBe(0);

  // The other tenant is not held back; queues that exist, whoever made them, take anyone's jobs.
  expect((await send(b, 'b-1')).status).toBe(202);
  expect((await send(b, 'b-2')).status).toBe(202);
  expect((await send(a, 'b-1')).status).toBe(202);
  await queueFor(db.sql).enqueue({ kind: 'system.noop', queue: 'ops-made' });
  expect((await send(a, 'ops-made')).status).toBe(202);
  const owners = await db.sql<{ name: string; slug: string | null }[]>`
    select q.name, t.slug from leasehold.queues q left join leasehold.tenants t on t.id = q.tenant_id order by q.name`;
  expect(owners.map((o) => [o.name, o.slug])).toEqual([['a-1', 'share-a'], ['a-2', 'share-a'], ['b-1', 'share-b'], ['b-2', 'share-b'], ['ops-made', null]]);

  // A queue of the tenant's that retention deleted gives its place back.
  await db.sql`delete from leasehold.jobs where queue = 'a-2'`;
  await db.sql`delete from leasehold.queues where name = 'a-2'`;
  expect((await send(a, 'a-3')).status).toBe(202);
  expect((await send(a, 'a-4')).body.code).toBe('queue_limit');
});

test("another kind's system queue is refused at body.queue, with the other paths of the request, and nothing is written", async () => {
  for (const [kind, queue, payload] of [
    ['system.sleep', 'ai', { ms: 3_600_000 }],
    ['system.noop', 'webhooks', {}],
    ['system.noop', 'ai', {}],
  ] as const) {
    const res = await post({ kind, queue, payload });
    expect(res.status).toBe(422);
    expect(res.type).toContain('application/problem+json');
    expect(res.body.code).toBe('validation_failed');
    expect(res.body.errors).toEqual([{ path: 'body.queue', message: expect.stringContaining(`queue "${queue}" is the system's queue for`) }]);
    expect(res.body.errors[0].message).toContain('"default"');
  }
  // Listed with the payload's own errors in one answer.
  const both = await post({ kind: 'system.sleep', queue: 'ai', payload: { ms: -1 } });
  expect(both.body.errors.map((e: Json) => e.path).sort()).toEqual(['body.payload.ms', 'body.queue']);
  expect(await jobsIn('ai')).toBe(0);
  expect(await jobsIn('webhooks')).toBe(0);
});

test("the previous release's admit_queues(names, max) still answers during a rolling deploy", async () => {
  const [r] = await db.sql<{ admitted: boolean }[]>`select leasehold.admit_queues(array['from-old-release'], 1000000) as admitted`;
  expect(r!.admitted).toBe(true);
  expect(await queues()).toContain('from-old-release');
});

test('queue_limit is one of the documented problem types', async () => {
  const res = await api.app.request('/problems/queue_limit');
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ code: 'queue_limit', status: 422 });
  const doc = (await (await api.app.request('/openapi.json')).json()) as Json;
  expect(JSON.stringify(doc.paths['/v1/jobs'].post.responses['422'])).toContain('queue_limit');
});
