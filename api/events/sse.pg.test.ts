import { request as httpRequest, type IncomingMessage } from 'node:http';
import { constants, gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { createTestApi, type TestApi } from '../../test/helpers/api.js';
import { serveTestApi, type ServedApi } from '../../test/helpers/served-api.js';
import { WorkerPool, queueFor, testLog } from '../../test/helpers/engine.js';
import { deferred } from '../../test/helpers/deferred.js';
import { openStream, type StreamClient } from '../../test/helpers/sse.js';
import { waitFor } from '../../test/helpers/wait.js';
import { EventHub } from './event-hub.js';

let db: TestDatabase;
let hub: EventHub;
let api: TestApi;
let served: ServedApi;
const workers = new WorkerPool();
const streams: StreamClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  // The poll is an hour away: every event here reaches the streams through a NOTIFY, so each write
  // path of the engine (enqueue, claim, completion, progress, cancel_job) is shown to send one.
  hub = new EventHub({ sql: db.sql, log: testLog, pollMs: 3_600_000, gapTimeoutMs: 2_000, keepAliveMs: 200, clientBufferBytes: 1_048_576 });
  await hub.start();
  api = createTestApi(db.sql, { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_S: '100000' }, { events: hub });
  served = await serveTestApi(api);
});
afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  await workers.stopAll();
});
afterAll(async () => {
  await hub?.close();
  await served?.close();
  await db?.drop();
});

function stream(path: string, opts: Parameters<typeof openStream>[2] = {}): StreamClient {
  const s = openStream(served.base, path, opts);
  streams.push(s);
  return s;
}

/** The tenant's event ids in the table, after `after`, in order. */
async function tableIds(tenantId: string, after = 0): Promise<number[]> {
  const rows = await db.sql<{ id: number }[]>`
    select id::float8 as id from leasehold.job_events where tenant_id = ${tenantId} and id > ${after} order by id`;
  return rows.map((r) => r.id);
}

async function startWorker(handlers: Record<string, (p: unknown, ctx: { signal: AbortSignal; progress(pct: number, m?: string): void }) => Promise<unknown>> = {}) {
  return workers.start({
    sql: db.sql,
    settings: { concurrency: 10, pollMs: 200 },
    handlers: { 'test.noop': async () => ({ ok: true }), ...handlers } as never,
    kinds: { 'test.noop': { queue: 'sse' }, 'test.gate': { queue: 'sse' } },
  });
}

describe('GET /v1/events', () => {
  test('a real EventSource gets every event of its tenant, in order, each once, with the job as data', async () => {
    const a = await api.tenant('order-a');
    const before = hub.cursor;
    const s = stream('/v1/events', { key: a.key });
    await waitFor(() => s.es.readyState === s.es.OPEN, 'the stream to open');
    await startWorker();
    const { ids: jobIds } = await queueFor(db.sql).enqueueMany(Array.from({ length: 40 }, () => ({ kind: 'test.noop', queue: 'sse', tenantId: a.tenantId })));
    await s.until((e) => e.filter((x) => x.type === 'job.succeeded').length === 40, '40 jobs to succeed on the stream');
    await new Promise((r) => setTimeout(r, 100));
    expect(s.ids()).toEqual(await tableIds(a.tenantId, before));
    const byJob = new Map<string, string[]>();
    for (const e of s.events) byJob.set(e.data.id, [...(byJob.get(e.data.id) ?? []), e.type]);
    expect([...byJob.keys()].sort()).toEqual([...jobIds].sort());
    for (const types of byJob.values()) expect(types).toEqual(['job.queued', 'job.running', 'job.succeeded']);
    const done = s.events.find((e) => e.type === 'job.succeeded')!;
    expect(done.data).toMatchObject({ kind: 'test.noop', status: 'succeeded', attempts: 1, result_url: `/v1/jobs/${done.data.id}/manifest` });
    expect(done.data.attempt).toBe(1);
    expect(Date.parse(done.data.at)).toBeGreaterThan(0);
  });

  test('disconnect, more jobs, reconnect with Last-Event-ID (header or query): every missed event exactly once', async () => {
    const a = await api.tenant('resume-a');
    const start = hub.cursor;
    await startWorker();
    const q = queueFor(db.sql);
    // A producer that keeps going through the reconnects, so events land during the replays too.
    let producing = true;
    const producer = (async () => {
      while (producing) {
        await q.enqueueMany(Array.from({ length: 5 }, () => ({ kind: 'test.noop', queue: 'sse', tenantId: a.tenantId })));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const seen: number[] = [];
    try {
      let s = stream('/v1/events', { key: a.key, lastEventId: String(start) });
      for (let round = 0; round < 4; round++) {
        await s.until((e) => e.length >= 20, 'some events');
        s.close();
        seen.push(...s.ids());
        await new Promise((r) => setTimeout(r, 50));
        const last = String(seen[seen.length - 1]);
        s = round % 2 ? stream(`/v1/events?last_event_id=${last}`, { key: a.key }) : stream('/v1/events', { key: a.key, lastEventId: last });
      }
      producing = false;
      await producer;
      await waitFor(async () => {
        const [r] = await db.sql<{ open: number }[]>`
          select count(*)::int as open from leasehold.jobs where tenant_id = ${a.tenantId} and status <> 'succeeded'`;
        return r!.open === 0;
      }, 'every job to finish');
      const all = await tableIds(a.tenantId, start);
      await s.until(() => seen.length + s.ids().length >= all.length, 'the last stream to catch up');
      await new Promise((r) => setTimeout(r, 100));
      seen.push(...s.ids());
      expect(seen).toEqual(all);
    } finally {
      producing = false;
      await producer;
    }
  });

  test("tenant isolation: a stream shows only its own tenant's jobs, and another tenant's job stream is a 404", async () => {
    const a = await api.tenant('iso-a');
    const b = await api.tenant('iso-b');
    const sa = stream('/v1/events', { key: a.key });
    const sb = stream('/v1/events', { key: b.key });
    await waitFor(() => sa.es.readyState === 1 && sb.es.readyState === 1, 'both streams to open');
    const q = queueFor(db.sql);
    const { ids: aJobs } = await q.enqueueMany(Array.from({ length: 5 }, () => ({ kind: 'test.noop', queue: 'iso', tenantId: a.tenantId })));
    const { ids: bJobs } = await q.enqueueMany(Array.from({ length: 3 }, () => ({ kind: 'test.noop', queue: 'iso', tenantId: b.tenantId })));
    await sa.until((e) => e.length >= 5, "a's events");
    await sb.until((e) => e.length >= 3, "b's events");
    await new Promise((r) => setTimeout(r, 200));
    expect(sa.events.map((e) => e.data.id).sort()).toEqual([...aJobs].sort());
    expect(sb.events.map((e) => e.data.id).sort()).toEqual([...bJobs].sort());
    const res = await fetch(`${served.base}/v1/jobs/${aJobs[0]}/events`, { headers: { authorization: `Bearer ${b.key}` } });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    // Replay is tenant-scoped too: b resuming from before a's jobs gets only its own.
    const replay = stream('/v1/events', { key: b.key, lastEventId: '0' });
    await replay.until((e) => e.length >= 3, "b's replay");
    await new Promise((r) => setTimeout(r, 100));
    expect(new Set(replay.events.map((e) => e.data.id))).toEqual(new Set(bJobs));
  });

  test('filters: kind and status narrow the stream, live and in replay', async () => {
    const a = await api.tenant('filter-a');
    const start = hub.cursor;
    const s = stream('/v1/events?kind=test.keep&status=queued', { key: a.key });
    await waitFor(() => s.es.readyState === 1, 'the stream to open');
    const { ids } = await queueFor(db.sql).enqueueMany([
      { kind: 'test.keep', queue: 'filter', tenantId: a.tenantId },
      { kind: 'test.drop', queue: 'filter', tenantId: a.tenantId },
      { kind: 'test.keep', queue: 'filter', tenantId: a.tenantId },
    ]);
    await s.until((e) => e.length >= 2, 'two events');
    await db.sql`select leasehold.cancel_job(${ids[0]!}::uuid)`;
    const replay = stream(`/v1/events?kind=test.keep&last_event_id=${start}`, { key: a.key });
    await replay.until((e) => e.some((x) => x.type === 'job.cancelled'), 'the cancel in the replayed stream');
    expect(s.events.map((e) => [e.type, e.data.id])).toEqual([['job.queued', ids[0]], ['job.queued', ids[2]]]);
    expect(replay.events.map((e) => [e.type, e.data.id])).toEqual([['job.queued', ids[0]], ['job.queued', ids[2]], ['job.cancelled', ids[0]]]);
  });

  test('auth: ?access_token= works on event streams only; none at all is a 401 problem', async () => {
    const a = await api.tenant('token-a');
    const s = stream(`/v1/events?access_token=${encodeURIComponent(a.key)}`);
    await waitFor(() => s.es.readyState === 1, 'the stream to open with the token in the URL');
    expect((await fetch(`${served.base}/v1/events`)).status).toBe(401);
    expect((await fetch(`${served.base}/v1/jobs?access_token=${encodeURIComponent(a.key)}`)).status).toBe(401);
    const bad = await fetch(`${served.base}/v1/events?last_event_id=abc`, { headers: { authorization: `Bearer ${a.key}` } });
    expect(bad.status).toBe(422);
  });

  test('headers, retry advice and keep-alive comments', async () => {
    const a = await api.tenant('headers-a');
    const { res, text } = await rawStream('/v1/events', a.key, 400);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(res.headers['x-accel-buffering']).toBe('no');
    expect(res.headers['cache-control']).toMatch(/no-cache/);
    expect(text.startsWith('retry: 2000\n\n')).toBe(true);
    // keepAliveMs is 200 in this file: at least one comment in 400 ms.
    expect(text).toContain('\n:\n\n');
  });
});

describe('GET /v1/jobs/:id/events', () => {
  test("replays the job's run so far, streams the rest, ends after the terminal event, and a reconnect then gets 204", async () => {
    const a = await api.tenant('job-a');
    const gate = deferred<void>();
    await startWorker({
      'test.gate': async (_p, ctx) => {
        ctx.progress(50, 'half way');
        await gate.promise;
        return { done: true };
      },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.gate', queue: 'sse', tenantId: a.tenantId });
    await waitFor(
      async () => (await db.sql<{ id: number }[]>`select id::float8 as id from leasehold.job_events where job_id = ${id} and type = 'job.progress'`)[0]?.id,
      'progress',
    );
    const s = stream(`/v1/jobs/${id}/events`, { key: a.key });
    await s.until((e) => e.length >= 3, 'the run so far');
    // Only the seven event types of DESIGN.md: no synthetic opening frame.
    expect(s.events.map((e) => e.type)).toEqual(['job.queued', 'job.running', 'job.progress']);
    expect(s.events[2]).toMatchObject({ data: { id, status: 'running', progress: 50, progress_message: 'half way', attempt: 1 } });
    const tableIds = await db.sql<{ id: number }[]>`select id::float8 as id from leasehold.job_events where job_id = ${id} order by id`;
    expect(s.events.map((e) => Number(e.id))).toEqual(tableIds.map((r) => r.id));
    gate.resolve();
    await s.until((e) => e.some((x) => x.type === 'job.succeeded'), 'the terminal event');
    // EventSource reconnects when a stream ends; the 204 it then gets makes it stop for good.
    await waitFor(() => s.es.readyState === s.es.CLOSED, 'the client to stop after the 204', 30_000);
    expect(s.events.map((e) => e.type)).toEqual(['job.queued', 'job.running', 'job.progress', 'job.succeeded']);
    expect(s.events[3]!.data).toMatchObject({ status: 'succeeded', result_url: `/v1/jobs/${id}/manifest` });

    // A job already over: its whole run, then the end.
    const late = await rawStream(`/v1/jobs/${id}/events`, a.key, 2_000);
    expect([...late.text.matchAll(/^event: (.+)$/gm)].map((m) => m[1])).toEqual(['job.queued', 'job.running', 'job.progress', 'job.succeeded']);
    expect(late.ended).toBe(true);
    // Resuming from before the end replays what was missed, ending with the terminal event.
    const first = tableIds[0]!.id;
    const resumed = stream(`/v1/jobs/${id}/events?last_event_id=${first}`, { key: a.key });
    await resumed.until((e) => e.some((x) => x.type === 'job.succeeded'), 'the replayed terminal event');
    expect(resumed.events.map((e) => e.type)).toEqual(['job.running', 'job.progress', 'job.succeeded']);
  });

  test('a job retried after it ended streams its new run, not the old run and its end', async () => {
    const a = await api.tenant('job-retried');
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.noop', queue: 'sse-retried', tenantId: a.tenantId });
    await db.sql`select leasehold.cancel_job(${id})`;
    await db.sql`select leasehold.retry_job(${id})`;
    const s = stream(`/v1/jobs/${id}/events`, { key: a.key });
    await s.until((e) => e.length >= 1, 'the new run');
    const [retried] = await db.sql<{ id: number }[]>`
      select max(id)::float8 as id from leasehold.job_events where job_id = ${id} and type = 'job.queued'`;
    expect(s.events.map((e) => [e.type, Number(e.id)])).toEqual([['job.queued', retried!.id]]);
    expect(s.es.readyState).not.toBe(s.es.CLOSED);
    // Cancelled again: that end ends the stream; reopened, the stream sends the second run alone.
    await db.sql`select leasehold.cancel_job(${id})`;
    await s.until((e) => e.some((x) => x.type === 'job.cancelled'), 'the second end');
    const late = await rawStream(`/v1/jobs/${id}/events`, a.key, 2_000);
    expect([...late.text.matchAll(/^event: (.+)$/gm)].map((m) => m[1])).toEqual(['job.queued', 'job.cancelled']);
    expect(late.ended).toBe(true);
  });

  test('an unknown job, or not a uuid, is a 404 problem', async () => {
    const a = await api.tenant('job-404');
    for (const id of ['0193a1b2-0000-7000-8000-000000000000', 'nope']) {
      const res = await fetch(`${served.base}/v1/jobs/${id}/events`, { headers: { authorization: `Bearer ${a.key}` } });
      expect(res.status).toBe(404);
    }
    expect(hub.size).toBe(streams.filter((s) => s.es.readyState !== 2).length);
  });
});

describe('gzip', () => {
  test('a client that accepts gzip gets a compressed stream with the same events; one that does not gets plain text', async () => {
    const a = await api.tenant('gzip-a');
    const start = hub.cursor;
    const zipped = await rawBytes('/v1/events', a.key, 'gzip, deflate, br');
    expect(zipped.res.headers['content-encoding']).toBe('gzip');
    expect(zipped.res.headers.vary).toMatch(/accept-encoding/i);
    const plain = await rawBytes('/v1/events', a.key, 'br;q=1, gzip;q=0');
    expect(plain.res.headers['content-encoding']).toBeUndefined();
    await queueFor(db.sql).enqueueMany(Array.from({ length: 300 }, () => ({ kind: 'test.noop', queue: 'gzip', tenantId: a.tenantId })));
    const ids = await tableIds(a.tenantId, start);
    const idsIn = (text: string) => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    // A stream still open has no trailer yet: inflate what has come, as a browser does.
    const inflated = () => gunzipSync(Buffer.concat(zipped.chunks), { finishFlush: constants.Z_SYNC_FLUSH }).toString();
    await waitFor(() => idsIn(inflated()).length === 300 && idsIn(Buffer.concat(plain.chunks).toString()).length === 300, 'both streams to carry the 300 events');
    expect(idsIn(inflated())).toEqual(ids);
    const text = Buffer.concat(plain.chunks).toString();
    // Byte for byte the same stream (keep-alive comments aside, which come on each stream's own clock).
    const noComments = (t: string) => t.replaceAll(/^:\n\n/gm, '');
    expect(noComments(inflated())).toBe(noComments(text));
    expect(Buffer.concat(zipped.chunks).length).toBeLessThan(text.length / 4);
    zipped.close();
    plain.close();
  });

  test('a per-job stream that ends closes its gzip member properly: the CRC and length trailer verify', async () => {
    const a = await api.tenant('gzip-b');
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.noop', queue: 'gzip-none', tenantId: a.tenantId });
    await db.sql`select leasehold.cancel_job(${id})`;
    const s = await rawBytes(`/v1/jobs/${id}/events`, a.key, 'gzip');
    await waitFor(() => s.ended, 'the stream to end');
    // gunzipSync without a sync flush insists on a complete member with a true CRC-32 and length.
    // Keep-alive comments come on their own clock (every 200 ms here), even before the replay's first event.
    const text = gunzipSync(Buffer.concat(s.chunks)).toString().replaceAll(/^:\n\n/gm, '');
    expect(text).toMatch(/^retry: 2000\n\nid: \d+\nevent: job.queued\ndata: .*"status":"cancelled".*\n\nid: \d+\nevent: job.cancelled\n/);
  });

  test('with gzip switched off (SSE_GZIP=false) every client gets plain text', () => {
    const off = new EventHub({ sql: db.sql, log: testLog, pollMs: 1_000, gapTimeoutMs: 1_000, keepAliveMs: 1_000, clientBufferBytes: 65_536, gzip: false });
    const sub = off.subscribe('00000000-0000-0000-0000-000000000000', {}, { endOnTerminal: false, acceptsGzip: true });
    expect(sub.gzip).toBe(false);
    const on = hub.subscribe('00000000-0000-0000-0000-000000000000', {}, { endOnTerminal: false, acceptsGzip: true });
    expect(on.gzip).toBe(true);
    sub.close();
    on.close();
  });
});

describe('streams per tenant', () => {
  test('past SSE_MAX_STREAMS_PER_TENANT a new stream is a 429 problem; other tenants are not held back; a closed one frees its place', async () => {
    const capped = createTestApi(db.sql, { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_S: '100000', SSE_MAX_STREAMS_PER_TENANT: '2' }, { events: hub });
    const cappedServed = await serveTestApi(capped);
    try {
      const a = await capped.tenant('capped-a');
      const b = await capped.tenant('capped-b');
      const open = (key: string) => {
        const s = openStream(cappedServed.base, '/v1/events', { key });
        streams.push(s);
        return s;
      };
      const [one, two] = [open(a.key), open(a.key)];
      await waitFor(() => one.es.readyState === one.es.OPEN && two.es.readyState === two.es.OPEN, 'two streams to open');
      const third = await capped.request(a.key, 'GET', '/v1/events');
      expect(third.status).toBe(429);
      expect(third.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(third.headers.get('retry-after')).toBe('5');
      expect(await third.json()).toMatchObject({ code: 'rate_limited', detail: expect.stringContaining('2 event streams') });
      const other = open(b.key);
      await waitFor(() => other.es.readyState === other.es.OPEN, "another tenant's stream to open");
      one.close();
      await waitFor(() => hub.tenantSize(a.tenantId) === 1, 'the closed stream to be forgotten');
      const again = open(a.key);
      await waitFor(() => again.es.readyState === again.es.OPEN, 'a stream to open in the freed place');
    } finally {
      // The server closes once its streams have: end them first.
      for (const s of streams.splice(0)) s.close();
      await cappedServed.close();
    }
  });
});

describe('streams per process', () => {
  /** A hub and a served API of their own, so that every stream they count is this test's. */
  async function ownServer(env: Record<string, string>, bufferBudgetBytes?: number) {
    const own = new EventHub({
      sql: db.sql, log: testLog, pollMs: 3_600_000, gapTimeoutMs: 2_000, keepAliveMs: 60_000, clientBufferBytes: 4 << 20,
      ...(bufferBudgetBytes !== undefined && { bufferBudgetBytes }),
    });
    await own.start();
    const ownApi = createTestApi(db.sql, { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_S: '100000', ...env }, { events: own });
    const ownServed = await serveTestApi(ownApi);
    const stalled: StalledClient[] = [];
    return {
      hub: own,
      api: ownApi,
      served: ownServed,
      stalled,
      async close() {
        // The server closes once its connections have: end the streams and drop the stalled clients first.
        for (const s of streams.splice(0)) s.close();
        for (const c of stalled) c.destroy();
        await own.close();
        await ownServed.close();
      },
    };
  }

  test('past SSE_MAX_STREAMS a new stream is a 503 problem with Retry-After, whatever its tenant; a closed one frees its place', async () => {
    const own = await ownServer({ SSE_MAX_STREAMS: '2' });
    try {
      const [a, b, c] = [await own.api.tenant('proc-a'), await own.api.tenant('proc-b'), await own.api.tenant('proc-c')];
      const open = (key: string) => {
        const s = openStream(own.served.base, '/v1/events', { key });
        streams.push(s);
        return s;
      };
      const [one, two] = [open(a.key), open(b.key)];
      await waitFor(() => one.es.readyState === one.es.OPEN && two.es.readyState === two.es.OPEN, 'two streams to open');
      for (const path of ['/v1/events', '/v1/jobs/0190b000-0000-7000-8000-000000000001/events']) {
        const refused = await own.api.request(c.key, 'GET', path);
        expect(refused.status, path).toBe(503);
        expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(refused.headers.get('retry-after')).toBe('5');
        expect(await refused.json()).toMatchObject({ code: 'unavailable', detail: 'this server already has 2 event streams open; try again shortly' });
      }
      one.close();
      await waitFor(() => own.hub.size === 1, 'the closed stream to be forgotten');
      const again = open(c.key);
      await waitFor(() => again.es.readyState === again.es.OPEN, 'a stream to open in the freed place');
    } finally {
      await own.close();
    }
  });

  test('clients that replay from the start and never read hold no more than the buffer budget: past it, those over their share are dropped; a reader is not', async () => {
    const budget = 256 * 1024;
    const own = await ownServer({}, budget);
    try {
      const a = await own.api.tenant('budget-a');
      // 14,000 job.queued events of ~1.1 kB (the job's last_error rides in each): ~15 MB. A client
      // that stops reading takes ~6 MB into its socket's buffers over loopback; past that, a replay
      // used to queue up to half of SSE_CLIENT_BUFFER_BYTES (2 MB here) in each stream.
      await db.sql`
        insert into leasehold.jobs (id, tenant_id, kind, queue, last_error)
        select leasehold.uuid_v7(), ${a.tenantId}, 'test.noop', 'budget', repeat('x', 800) from generate_series(1, 14000)`;
      const all = await tableIds(a.tenantId);
      // Every event is history by the time the clients come: they get it from the replay alone.
      own.hub.wake();
      await waitFor(() => own.hub.cursor >= all.at(-1)!, 'the hub to pass the new events');
      for (let i = 0; i < 3; i++) own.stalled.push(await stalledClient(own.served.base, '/v1/events?last_event_id=0', a.key));
      await waitFor(() => own.hub.size === 3, 'the stalled clients to subscribe');
      // A replay page (100 events, ~110 kB) waits whole in its stream, then the replay waits for
      // room. Each page is more than a stream's third of the budget, and three are more than all of
      // it: once the third comes, the streams are dropped in the next turn of the event loop.
      await waitFor(() => own.hub.size === 0, 'the stalled clients to be dropped', 20_000);
      expect(own.hub.bufferedBytes).toBe(0);
      // Dropped as slow clients are: the responses end cleanly once their clients read again.
      for (const c of own.stalled) c.res.resume();
      await waitFor(() => own.stalled.every((c) => c.ended), 'the dropped responses to end');
      // A client that reads replays as before.
      const from = all[all.length - 1_001]!;
      const reader = openStream(own.served.base, `/v1/events?last_event_id=${from}`, { key: a.key });
      streams.push(reader);
      await reader.until(() => reader.ids().length >= 1_000, 'the reading client to get every later event');
      expect(reader.ids()).toEqual(all.slice(-1_000));
    } finally {
      await own.close();
    }
  });
});

describe('disconnects', () => {
  test('a client that goes away is unsubscribed at once', async () => {
    const a = await api.tenant('gone-a');
    const before = hub.size;
    const s = stream('/v1/events', { key: a.key });
    const j = await api.request(a.key, 'POST', '/v1/jobs', { kind: 'system.noop' });
    const job = (await j.json()) as { id: string };
    const one = stream(`/v1/jobs/${job.id}/events`, { key: a.key });
    await waitFor(() => hub.size === before + 2, 'both subscribers');
    s.close();
    one.close();
    await waitFor(() => hub.size === before, 'the subscribers to be freed', 10_000);
  });
});

describe('slow clients', () => {
  test('a client that stops reading is disconnected once it falls too far behind; the others get everything', async () => {
    const a = await api.tenant('slow-a');
    const start = hub.cursor;
    const fast = stream('/v1/events', { key: a.key });
    await waitFor(() => fast.es.readyState === 1, 'the fast stream to open');
    const sizeBefore = hub.size;
    // A raw client that reads its headers and then nothing: the socket's buffers fill, then ours.
    const slow = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(`${served.base}/v1/events`, { headers: { authorization: `Bearer ${a.key}` } }, resolve);
      req.on('error', reject);
      req.end();
    });
    slow.pause();
    let slowEnded = false;
    slow.on('end', () => (slowEnded = true)).on('close', () => (slowEnded = true));
    await waitFor(() => hub.size === sizeBefore + 1, 'the slow client to subscribe');
    const q = queueFor(db.sql);
    for (let i = 0; i < 12; i++) await q.enqueueMany(Array.from({ length: 5_000 }, () => ({ kind: 'test.noop', queue: 'slow', tenantId: a.tenantId })));
    await waitFor(() => hub.size === sizeBefore, 'the slow client to be dropped', 20_000);
    const all = await tableIds(a.tenantId, start);
    await fast.until(() => fast.ids().length >= all.length, 'the fast client to get every event', 20_000);
    expect(fast.ids()).toEqual(all);
    slow.resume();
    await waitFor(() => slowEnded, 'the slow response to end');
  });
});

/** A raw client that reads its response's headers and then nothing: the socket's buffers fill, then the stream's. */
interface StalledClient {
  res: IncomingMessage;
  /** True once the response has ended (seen only after resume()). */
  readonly ended: boolean;
  destroy(): void;
}
async function stalledClient(base: string, path: string, key: string): Promise<StalledClient> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { headers: { authorization: `Bearer ${key}`, 'accept-encoding': 'identity' } }, (res) => {
      res.pause();
      let ended = false;
      res.on('end', () => (ended = true)).on('close', () => (ended = true));
      resolve({ res, get ended() { return ended; }, destroy: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

/** A raw GET of a stream with the given Accept-Encoding, collecting its bytes as they come. */
async function rawBytes(path: string, key: string, acceptEncoding: string) {
  return new Promise<{ res: IncomingMessage; chunks: Buffer[]; readonly ended: boolean; close(): void }>((resolve, reject) => {
    const req = httpRequest(`${served.base}${path}`, { headers: { authorization: `Bearer ${key}`, 'accept-encoding': acceptEncoding } }, (res) => {
      const chunks: Buffer[] = [];
      let ended = false;
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => (ended = true));
      resolve({ res, chunks, get ended() { return ended; }, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

/** A plain HTTP GET of a stream, read for `ms` (or until it ends). */
async function rawStream(path: string, key: string, ms: number): Promise<{ res: IncomingMessage; text: string; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${served.base}${path}`, { headers: { authorization: `Bearer ${key}` } }, (res) => {
      let text = '';
      let ended = false;
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => ((ended = true), clearTimeout(timer), resolve({ res, text, ended })));
      const timer = setTimeout(() => (req.destroy(), resolve({ res, text, ended })), ms);
    });
    req.on('error', reject);
    req.end();
  });
}
