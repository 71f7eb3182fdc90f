import { connect as netConnect } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { queueFor, testLog } from '../test/helpers/engine.js';
import { EventHub } from './events/event-hub.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { EXTREME_TIMES, NASTY_STRINGS, UNSTORABLE_STRINGS, hostileVariants, mutateBody, mutateValid, pick, prng } from '../test/helpers/fuzz-inputs.js';

// Malformed requests against every route the OpenAPI document lists (so new routes are covered
// as they land), then checks: no 5xx, every error is problem+json, nothing half-written. Besides
// wholly broken bodies, routes that write get a valid body with one place made hostile (VALID
// below), and every documented query parameter gets hostile values: only such requests get past
// the shape checks to the database, where a NUL in a prompt or a year-0000 filter once made a 500.
const SEED = Number(process.env.FUZZ_SEED ?? 20261121);
const REQUESTS = 2_400;

let db: TestDatabase;
let api: TestApi;
let hub: EventHub;
let admin: string;
let reader: string;
let other: string;
let ownJob: string;
let ownPattern: string;
let otherJob: string;
let tenantA: string;
let ownWebhook: string;
const uploadDir = uuidv7();

interface Operation {
  method: string;
  path: string;
  fields: string[];
  /** Its query parameters, from the OpenAPI document. */
  query: string[];
}

/** Valid bodies per `METHOD path` (several for POST /v1/jobs, one per kind), to be made hostile in one place. */
function validBodies(): Record<string, unknown[]> {
  const image = (n: number) => `uploads/${tenantA}/${uploadDir}/${n}.png`;
  const schema = { type: 'object', properties: { items: { type: 'array', items: { type: 'string' } } }, required: ['items'], additionalProperties: false };
  return {
    'POST /v1/jobs': [
      { kind: 'image.edit', payload: { image: image(1), prompt: 'stage the room', model: 'gpt-image-1', size: 'auto' } },
      { kind: 'gallery.group', payload: { images: [image(1), image(2)], hint: 'a trip' } },
      { kind: 'system.noop', payload: {}, queue: 'default', priority: 5, run_at: '2030-01-01T00:00:00Z', max_attempts: 2 },
      { kind: 'manifest.extract', payload: { pattern_id: ownPattern, pattern_version: 1, image: { storage_key: image(1) }, metadata: { sku: 'a-1', tags: ['x'] } } },
    ],
    'POST /v1/edits': [{ image: image(1), prompt: 'stage the room' }],
    'POST /v1/galleries': [{ images: [image(1), image(2)], hint: 'a trip' }],
    'POST /v1/webhooks': [{ url: 'http://127.0.0.1:9/hook', events: ['job.succeeded'], description: 'ops' }],
    'PATCH /v1/webhooks/{id}': [{ description: 'ops', events: ['job.failed'] }],
    'POST /v1/patterns': [{ name: 'shelf', instructions: 'List every product.', json_schema: schema, format: 'json' }],
    'PATCH /v1/patterns/{id}': [{ name: 'shelf', instructions: 'List every product.', json_schema: schema }],
    'POST /v1/patterns/{id}/rollback': [{ version: 1 }],
    'POST /v1/patterns/{id}/ingest': [{ storage_key: image(1), metadata: { sku: 'a-1' } }],
    'POST /v1/uploads': [{ content_type: 'image/png', size: 100, filename: 'a.png' }],
    'POST /v1/admin/credits': [{ tenant: 'fuzz-a', credits: 1, note: 'fuzz' }],
    'PUT /v1/admin/tenants/{tenant}/budget': [{ daily_usd: 5, kind_daily_usd: { 'image.edit': 1 } }],
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  hub = new EventHub({ sql: db.sql, log: testLog, pollMs: 1_000, gapTimeoutMs: 5_000, keepAliveMs: 15_000, clientBufferBytes: 1 << 20 });
  await hub.start();
  api = createTestApi(db.sql, { RATE_LIMIT_PER_S: '1000000', RATE_LIMIT_BURST: '1000000' }, { events: hub });
  admin = (await api.tenant('fuzz-a', ['jobs:read', 'jobs:write', 'admin'])).key;
  reader = (await api.tenant('fuzz-a', ['jobs:read'])).key;
  const b = await api.tenant('fuzz-b', ['jobs:read', 'jobs:write', 'admin']);
  other = b.key;
  const [a] = await db.sql<{ id: string }[]>`select id from leasehold.tenants where slug = 'fuzz-a'`;
  tenantA = a!.id;
  // Images the valid bodies name, so the routes that look for the object find it.
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
  for (const n of [1, 2]) await api.storage.put(`uploads/${tenantA}/${uploadDir}/${n}.png`, png, 'image/png');
  // A subscription to PATCH: made through an app that may call loopback, as the fuzzed one may not.
  const hooks = createTestApi(db.sql, { FETCH_ALLOW_PRIVATE: 'true' });
  const hook = await hooks.request(admin, 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook' });
  expect(hook.status).toBe(201);
  ownWebhook = ((await hook.json()) as { id: string }).id;
  ownPattern = uuidv7();
  await db.sql.begin(async (tx) => {
    await tx`insert into leasehold.patterns (id, tenant_id) values (${ownPattern}, ${a!.id})`;
    await tx`insert into leasehold.pattern_versions (pattern_id, version, tenant_id, name, instructions, json_schema, format, is_active)
             values (${ownPattern}, 1, ${a!.id}, 'p', 'i', ${tx.json({ type: 'object', properties: {}, required: [], additionalProperties: false })}, 'json', true)`;
  });
  ownJob = (await queueFor(db.sql).enqueue({ kind: 'system.noop', tenantId: a!.id })).id;
  otherJob = (await queueFor(db.sql).enqueue({ kind: 'system.noop', tenantId: b.tenantId })).id;
});
afterAll(async () => {
  await hub?.close();
  await db?.drop();
});

async function operations(): Promise<Operation[]> {
  const spec = (await (await api.app.request('/openapi.json')).json()) as {
    paths: Record<string, Record<string, {
      requestBody?: { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> };
      parameters?: { in: string; name: string }[];
    }>>;
  };
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const props = op.requestBody?.content?.['application/json']?.schema?.properties ?? {};
      const query = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
      ops.push({ method: method.toUpperCase(), path, fields: Object.keys(props), query });
    }
  }
  return ops;
}

/** Percent-encodes; text that is not valid UTF-16 (a lone surrogate) becomes raw invalid UTF-8 bytes. */
function enc(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return '%ED%A0%80';
  }
}

/**
 * Fills `{param}` placeholders with real ids, other tenants' ids, or hostile text; `plausible`, with
 * the caller's own ids and tenant, so a valid body reaches the database.
 */
function fillPath(rand: () => number, path: string, plausible = false): string {
  return path.replace(/\{([^}]+)\}/g, (_, name: string) =>
    enc(
      plausible
        ? name === 'tenant' ? 'fuzz-a' : pick(rand, [ownJob, ownPattern, ownWebhook])
        : pick(rand, [ownJob, ownPattern, ownWebhook, otherJob, uuidv7(), 'fuzz-a', ...NASTY_STRINGS.map((s) => s.slice(0, 300))]),
    ),
  );
}

const isProblem = (res: Response, body: string) => {
  if (res.headers.get('content-type') !== 'application/problem+json') return false;
  const p = JSON.parse(body) as Record<string, unknown>;
  return typeof p.type === 'string' && p.status === res.status && typeof p.code === 'string' && typeof p.request_id === 'string';
};

describe('fuzz', () => {
  test(`${REQUESTS} malformed requests: no 5xx, problem+json errors, nothing half-written (seed ${SEED})`, async () => {
    const rand = prng(SEED);
    const ops = await operations();
    expect(ops.length).toBeGreaterThan(0);
    const extra: Operation[] = [
      { method: 'GET', path: '/v1/{x}', fields: [], query: [] },
      { method: 'POST', path: '/v1/{x}/{y}', fields: ['a'], query: [] },
      { method: 'DELETE', path: '/{x}', fields: [], query: [] },
    ];
    const valid = validBodies();
    // Every route that takes a body and writes should have a valid one above, or its deep fields go untested.
    const withoutValid = ops.filter((o) => o.fields.length && !valid[`${o.method} ${o.path}`]).map((o) => `${o.method} ${o.path}`);
    expect(withoutValid, 'add a valid body for these routes to validBodies()').toEqual([]);
    let hostileValid = 0;
    const all = [...ops, ...extra];
    const failures: string[] = [];
    const createdJobs = new Set<string>();
    let sent = 0;
    let refusedByClient = 0;
    for (let i = 0; i < REQUESTS; i++) {
      const op = all[i % all.length]!;
      let query = '';
      const q = rand();
      if (q < 0.3) {
        query = `?${enc(pick(rand, NASTY_STRINGS).slice(0, 200))}=${enc(pick(rand, NASTY_STRINGS).slice(0, 200))}&limit=${pick(rand, ['-1', '0', '1e9', 'x', '50'])}&cursor=${pick(rand, ['x', uuidv7(), "'"])}`;
      } else if (q < 0.6 && op.query.length) {
        // The route's own parameters, one of them hostile and the rest plausible.
        const hostile = pick(rand, op.query);
        const value = (name: string) =>
          name === hostile
            ? pick(rand, rand() < 0.6 ? [...UNSTORABLE_STRINGS, ...EXTREME_TIMES] : NASTY_STRINGS).slice(0, 200)
            : pick(rand, ['50', 'true', 'json', 'system.noop', '2024-01-01T00:00:00Z']);
        query = `?${op.query.filter((n) => n === hostile || rand() < 0.1).map((n) => `${n}=${enc(value(n))}`).join('&')}`;
      }
      const bodies = valid[`${op.method} ${op.path}`];
      const hostileBody = bodies !== undefined && rand() < 0.5;
      const path = fillPath(rand, op.path, hostileBody) + query;
      const headers: Record<string, string> = {};
      const auth = rand();
      if (auth < 0.6) headers.authorization = `Bearer ${admin}`;
      else if (auth < 0.7) headers.authorization = `Bearer ${reader}`;
      else if (auth < 0.8) headers.authorization = `Bearer ${other}`;
      else if (auth < 0.9) headers.authorization = pick(rand, ['Bearer', 'Bearer ', 'Basic abc', `Bearer ${'x'.repeat(5000)}`, 'Bearer lh_0000000000_' + 'a'.repeat(43), 'Bearer a.b.c']);
      if (rand() < 0.2) headers['idempotency-key'] = pick(rand, ['', 'k', 'x'.repeat(300), `key-${i}`, 'a b c']);
      const hasBody = op.method !== 'GET' && op.method !== 'DELETE' ? rand() < 0.9 : rand() < 0.1;
      let body: string | Uint8Array | undefined;
      if (hostileBody) {
        body = mutateValid(rand, pick(rand, bodies));
        hostileValid++;
        headers['content-type'] = 'application/json';
      } else if (hasBody) {
        const m = mutateBody(rand, op.fields);
        body = m.bytes ?? m.text;
        headers['content-type'] = rand() < 0.85 ? 'application/json' : pick(rand, ['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', '']);
      }
      let res: Response;
      try {
        res = await api.app.request(path, { method: op.method, headers, ...(body !== undefined ? { body } : {}) });
      } catch (err) {
        // A request no HTTP client could send (e.g. a header value the Fetch API refuses).
        if (err instanceof TypeError) {
          refusedByClient++;
          continue;
        }
        throw err;
      }
      sent++;
      // An event stream that opened never ends: its status and type are the check.
      const text = res.headers.get('content-type')?.startsWith('text/event-stream') ? (await res.body?.cancel(), '') : await res.text();
      const label = `#${i} ${op.method} ${path.slice(0, 120)} → ${res.status}`;
      if (res.status >= 500) failures.push(`${label}: ${text.slice(0, 300)}`);
      else if (res.status >= 400 && !isProblem(res, text)) failures.push(`${label}: not problem+json: ${res.headers.get('content-type')} ${text.slice(0, 200)}`);
      else if (res.status < 300 && op.method === 'POST' && text.startsWith('{')) {
        const b = JSON.parse(text) as { id?: string; job_id?: string; job_ids?: string[]; edit_id?: string; gallery_id?: string };
        for (const id of [b.job_id, ...(b.job_ids ?? []), b.edit_id, b.gallery_id, op.path === '/v1/jobs' ? b.id : undefined]) if (id) createdJobs.add(id);
      }
    }
    expect(failures, failures.slice(0, 20).join('\n')).toEqual([]);
    expect(sent).toBeGreaterThanOrEqual(2_000);
    expect(hostileValid).toBeGreaterThan(200);
    expect(refusedByClient).toBeLessThan(REQUESTS / 10);

    // Nothing half-written: every job has its first event, every pattern its current version,
    // and the only new jobs are those the API reported creating.
    const [inv] = await db.sql<{ jobs_without_events: number; patterns_without_version: number }[]>`
      select (select count(*) from leasehold.jobs j
               where not exists (select 1 from leasehold.job_events e where e.job_id = j.id))::int as jobs_without_events,
             (select count(*) from leasehold.patterns p
               where not exists (select 1 from leasehold.pattern_versions v
                                 where v.pattern_id = p.id and v.version = p.current_version))::int as patterns_without_version`;
    expect(inv).toEqual({ jobs_without_events: 0, patterns_without_version: 0 });
    const jobs = (await db.sql<{ id: string }[]>`select id from leasehold.jobs where id not in (${ownJob}, ${otherJob})`).map((r) => r.id);
    expect(new Set(jobs)).toEqual(createdJobs);
  }, 120_000);

  test('every string of a valid body and every query parameter, as text PostgreSQL refuses or an extreme time: no 5xx', async () => {
    const ops = await operations();
    const valid = validBodies();
    const rand = prng(SEED);
    const failures: string[] = [];
    let sent = 0;
    const send = async (method: string, path: string, body?: string) => {
      const res = await api.app.request(path, {
        method,
        headers: { authorization: `Bearer ${admin}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
        ...(body !== undefined && { body }),
      });
      sent++;
      const text = res.headers.get('content-type')?.startsWith('text/event-stream') ? (await res.body?.cancel(), '') : await res.text();
      if (res.status >= 500) failures.push(`${method} ${path} ${body?.slice(0, 200) ?? ''} → ${res.status}: ${text.slice(0, 200)}`);
      else if (res.status >= 400 && !isProblem(res, text)) failures.push(`${method} ${path} → ${res.status}: not problem+json`);
    };
    for (const op of ops) {
      for (const body of valid[`${op.method} ${op.path}`] ?? []) {
        for (const variant of hostileVariants(body)) await send(op.method, fillPath(rand, op.path, true), variant);
      }
      for (const name of op.query) {
        for (const value of [...UNSTORABLE_STRINGS, ...EXTREME_TIMES]) await send(op.method, `${fillPath(rand, op.path, true)}?${name}=${enc(value)}`);
      }
    }
    expect(failures, failures.slice(0, 20).join('\n')).toEqual([]);
    expect(sent).toBeGreaterThan(500);
  }, 120_000);

  describe('through a real server, bytes no fetch client would send', () => {
    let server: ServerType;
    let port: number;
    beforeAll(async () => {
      server = await new Promise<ServerType>((resolve) => {
        const s = serve({ fetch: api.app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
      });
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    const raw = (request: Buffer | string) =>
      new Promise<string>((resolve) => {
        const sock = netConnect(port, '127.0.0.1');
        let out = '';
        sock.on('data', (d) => (out += d.toString('latin1')));
        sock.on('close', () => resolve(out));
        sock.on('error', () => resolve(out));
        sock.end(request);
        setTimeout(() => sock.destroy(), 3_000);
      });

    test.each([
      ['bad UTF-8 in the path', Buffer.concat([Buffer.from('GET /v1/jobs/'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')])],
      ['a control character in a header', `GET /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \u0001abc\r\nConnection: close\r\n\r\n`],
      ['bad UTF-8 in the Authorization header', Buffer.concat([Buffer.from('GET /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer '), Buffer.from([0xff, 0xc0]), Buffer.from('\r\nConnection: close\r\n\r\n')])],
      ['a truncated body', `POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{"kind":`],
      ['a body larger than its Content-Length', `POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{"kind":"system.noop"}`],
      ['a path traversal', `GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`],
      ['an 80 KB header', `GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(80_000)}\r\nConnection: close\r\n\r\n`],
    ])('%s: no 5xx', async (_name, request) => {
      const response = await raw(request);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
      // Node's HTTP parser may refuse before the app runs (400/431 or a closed socket); what must
      // never happen is a server error.
      expect(status === 0 || status < 500, response.slice(0, 300)).toBe(true);
      if (/x-request-id/i.test(response) && status >= 400) expect(response).toMatch(/content-type: application\/problem\+json/i);
    });
  });
});
