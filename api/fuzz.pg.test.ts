import { connect as netConnect } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { queueFor, testLog } from '../test/helpers/engine.js';
import { EventHub } from './events/event-hub.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { NASTY_STRINGS, mutateBody, pick, prng } from '../test/helpers/fuzz-inputs.js';

// Malformed requests against every route the OpenAPI document lists (so new routes are covered
// as they land), then checks: no 5xx, every error is problem+json, nothing half-written.
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

interface Operation {
  method: string;
  path: string;
  fields: string[];
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
    paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> } }>>;
  };
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const props = op.requestBody?.content?.['application/json']?.schema?.properties ?? {};
      ops.push({ method: method.toUpperCase(), path, fields: Object.keys(props) });
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

/** Fills `{param}` placeholders with real ids, other tenants' ids, or hostile text. */
function fillPath(rand: () => number, path: string): string {
  return path.replace(/\{[^}]+\}/g, () =>
    enc(pick(rand, [ownJob, ownPattern, otherJob, uuidv7(), ...NASTY_STRINGS.map((s) => s.slice(0, 300))])),
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
      { method: 'GET', path: '/v1/{x}', fields: [] },
      { method: 'POST', path: '/v1/{x}/{y}', fields: ['a'] },
      { method: 'DELETE', path: '/{x}', fields: [] },
    ];
    const all = [...ops, ...extra];
    const failures: string[] = [];
    const createdJobs = new Set<string>();
    let sent = 0;
    let refusedByClient = 0;
    for (let i = 0; i < REQUESTS; i++) {
      const op = all[i % all.length]!;
      const path = fillPath(rand, op.path) + (rand() < 0.3 ? `?${enc(pick(rand, NASTY_STRINGS).slice(0, 200))}=${enc(pick(rand, NASTY_STRINGS).slice(0, 200))}&limit=${pick(rand, ['-1', '0', '1e9', 'x', '50'])}&cursor=${pick(rand, ['x', uuidv7(), "'"])}` : '');
      const headers: Record<string, string> = {};
      const auth = rand();
      if (auth < 0.6) headers.authorization = `Bearer ${admin}`;
      else if (auth < 0.7) headers.authorization = `Bearer ${reader}`;
      else if (auth < 0.8) headers.authorization = `Bearer ${other}`;
      else if (auth < 0.9) headers.authorization = pick(rand, ['Bearer', 'Bearer ', 'Basic abc', `Bearer ${'x'.repeat(5000)}`, 'Bearer lh_0000000000_' + 'a'.repeat(43), 'Bearer a.b.c']);
      if (rand() < 0.2) headers['idempotency-key'] = pick(rand, ['', 'k', 'x'.repeat(300), `key-${i}`, 'a b c']);
      const hasBody = op.method !== 'GET' && op.method !== 'DELETE' ? rand() < 0.9 : rand() < 0.1;
      let body: string | Uint8Array | undefined;
      if (hasBody) {
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
        const b = JSON.parse(text) as { id?: string; job_id?: string; job_ids?: string[] };
        for (const id of [b.job_id, ...(b.job_ids ?? []), op.path === '/v1/jobs' ? b.id : undefined]) if (id) createdJobs.add(id);
      }
    }
    expect(failures, failures.slice(0, 20).join('\n')).toEqual([]);
    expect(sent).toBeGreaterThanOrEqual(2_000);
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
