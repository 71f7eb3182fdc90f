// The local object store had no bounds: a presigned URL took any number of PUTs, in parallel,
// until it expired, each held its whole body (up to 20 MB) in memory, as did each download, and
// nothing capped how many ran at once. These tests hold it to one upload per URL, bodies streamed
// to and from disk, and a ceiling on transfers per process.
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LocalObjectStore } from '#shared/storage/local-store.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { serveTestApi, type ServedApi } from '../test/helpers/served-api.js';
import { waitFor } from '../test/helpers/wait.js';

type Json = Record<string, any>;
const MB = 1024 * 1024;

let db: TestDatabase;
let api: TestApi;
let served: ServedApi;
let tenant: { tenantId: string; key: string };
/** A second app over the same database that serves one transfer at a time. */
let narrowApi: TestApi;
let narrow: ServedApi;
let narrowTenant: { tenantId: string; key: string };

beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' });
  served = await serveTestApi(api);
  tenant = await api.tenant('bounds');
  narrowApi = createTestApi(db.sql, { STORAGE_MAX_TRANSFERS: '1' });
  narrow = await serveTestApi(narrowApi);
  narrowTenant = await narrowApi.tenant('bounds-narrow');
});
afterAll(async () => {
  await served.close();
  await narrow.close();
  await db.drop();
});

/** POST /v1/uploads for `size` bytes of PNG. */
async function presign(size: number, on = served, as = tenant): Promise<Json> {
  const p = await on.call('POST', '/v1/uploads', as.key, { content_type: 'image/png', size });
  expect(p.status).toBe(201);
  return p.body;
}

/** PUTs bytes to a presigned upload; a ReadableStream body goes chunked, without Content-Length. */
const put = (p: Json, body: Uint8Array | ReadableStream<Uint8Array>) =>
  fetch(p.url, { method: 'PUT', headers: p.headers, body, ...(body instanceof ReadableStream && { duplex: 'half' }) } as RequestInit);

/** A request body the test sends chunk by chunk. */
function feed() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  return { body, push: (bytes: Uint8Array) => controller.enqueue(bytes), end: () => controller.close() };
}

/** Bytes in every file under the app's object store (objects, content types and temporary files). */
function bytesOnDisk(of: TestApi): number {
  const root = (of.storage as LocalObjectStore).root;
  if (!existsSync(root)) return 0;
  return readdirSync(root, { recursive: true, encoding: 'utf8' })
    .map((f) => statSync(path.join(root, f)))
    .reduce((sum, s) => sum + (s.isFile() ? s.size : 0), 0);
}

// The collector, made callable so that memory is measured as what is still referenced.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/**
 * Bytes of Buffers and ArrayBuffers still referenced in this process. V8 frees the memory of
 * collected ArrayBuffers on a thread of its own, which lags on a busy machine: collect, and give it
 * time, until the figure stops falling.
 */
async function liveBuffers(): Promise<number> {
  let last = Infinity;
  for (let round = 0; round < 20; round++) {
    gc();
    await new Promise((r) => setTimeout(r, 25));
    const now = process.memoryUsage().arrayBuffers;
    if (now >= last) return now;
    last = now;
  }
  return last;
}

/** Temporary files of transfers in progress or left behind. */
const incoming = (of: TestApi) => {
  const dir = path.join((of.storage as LocalObjectStore).root, '.incoming');
  return existsSync(dir) ? readdirSync(dir) : [];
};

const download = async (key: string, on = served, of = api) => fetch(new URL(await of.storage.signedDownloadUrl(key, 60), on.base));
/** The object's bytes, through a signed download. */
const downloaded = async (key: string) => Buffer.from(await (await download(key)).arrayBuffer());
// Compared by digest: vitest's toEqual walks a Buffer byte by byte (seconds per megabyte).
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function expectProblem(res: Response, status: number, detail: RegExp): Promise<Json> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toContain('application/problem+json');
  const body = (await res.json()) as Json;
  expect(body.detail).toMatch(detail);
  return body;
}

// First in the file: it measures the process's memory, and the tests after it leave sockets and
// buffers behind that the collector frees when it chooses.
describe('downloads stream from disk', () => {
  test('three 20 MB downloads are read from disk as their clients take them, not loaded whole first', async () => {
    const key = `uploads/${tenant.tenantId}/0190b000-0000-7000-8000-00000000b002/big.png`;
    await api.storage.put(key, randomBytes(20 * MB), 'image/png');
    const url = new URL(await api.storage.signedDownloadUrl(key, 60), served.base).toString();
    // The client is another process, so this one's memory is the server's alone. It starts three
    // downloads, reads the headers and one chunk of each, says so, and pauses.
    const client = spawn(process.execPath, ['--input-type=module', '-e', `
      const started = await Promise.all([0, 1, 2].map(async () => {
        const res = await fetch(process.argv[1]);
        await res.body.getReader().read();
        return res.headers.get('content-length');
      }));
      process.stdout.write(started.join(',') + '\\n');
      setTimeout(() => {}, 60_000);`, url], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const before = await liveBuffers();
      const [line] = (await once(client.stdout!, 'data')) as [Buffer];
      expect(line.toString().trim()).toBe(Array(3).fill(20 * MB).join(','));
      await new Promise((r) => setTimeout(r, 300));
      // A server that loaded each object would hold 60 MB until the clients took the rest; one that
      // streams holds a chunk or two of each (under 1 MB in all: what the sockets took is garbage).
      expect((await liveBuffers()) - before).toBeLessThan(10 * MB);
    } finally {
      client.kill();
    }
  });
});

describe('an upload URL takes its bytes once', () => {
  test('used twice: the second PUT is a 409 problem and the object keeps the first bytes', async () => {
    const first = randomBytes(1000);
    const p = await presign(first.byteLength);
    expect((await put(p, first)).status).toBe(200);
    await expectProblem(await put(p, randomBytes(1000)), 409, /was used at .*presign a new upload/);
    expect(sha256(await downloaded(p.storage_key))).toBe(sha256(first));
    const [row] = await db.sql<Json[]>`select received_at, receiving_token from leasehold.uploads where storage_key = ${p.storage_key}`;
    expect(row).toEqual({ received_at: expect.any(Date), receiving_token: null });
  });

  test('20 PUTs at once on one URL: exactly one stores its bytes, the others are 409 and write nothing', async () => {
    const bodies = Array.from({ length: 20 }, () => randomBytes(256 * 1024));
    const p = await presign(256 * 1024);
    const answers = await Promise.all(bodies.map((b) => put(p, b)));
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
    for (const r of answers) if (r.status === 409) expect(r.headers.get('content-type')).toContain('application/problem+json');
    expect(sha256(await downloaded(p.storage_key))).toBe(sha256(bodies[statuses.indexOf(200)]!));
    expect(incoming(api)).toEqual([]);
  });

  test('a PUT that fails (short body) leaves the URL usable; one still sending makes another wait its turn with a 409', async () => {
    const bytes = randomBytes(2 * MB);
    const p = await presign(bytes.byteLength);
    await expectProblem(await put(p, bytes.subarray(0, 10)), 422, /declared as 2097152 bytes but 10 arrived/);

    const slow = feed();
    const sending = put(p, slow.body);
    slow.push(bytes.subarray(0, MB));
    await waitFor(async () => (await db.sql`select 1 from leasehold.uploads where storage_key = ${p.storage_key} and receiving_token is not null`).length, 'the first PUT to claim the URL');
    await expectProblem(await put(p, bytes), 409, /another request has been sending the bytes of this upload URL/);
    slow.push(bytes.subarray(MB));
    slow.end();
    expect((await sending).status).toBe(200);
    expect(sha256(await downloaded(p.storage_key))).toBe(sha256(bytes));
  });

  test('a client that goes away mid-upload leaves no file and frees the URL for another try', async () => {
    const bytes = randomBytes(2 * MB);
    const p = await presign(bytes.byteLength);
    const claimed = async () => (await db.sql`select 1 from leasehold.uploads where storage_key = ${p.storage_key} and receiving_token is not null`).length;
    const abort = new AbortController();
    const gone = feed();
    const sending = fetch(p.url, { method: 'PUT', headers: p.headers, body: gone.body, duplex: 'half', signal: abort.signal } as RequestInit);
    gone.push(bytes.subarray(0, MB));
    await waitFor(claimed, 'the PUT to claim the URL');
    abort.abort();
    await expect(sending).rejects.toThrow();
    await waitFor(async () => !(await claimed()) && incoming(api).length === 0, 'the claim and the temporary file to go');
    expect(await api.storage.head(p.storage_key)).toBeUndefined();
    expect((await put(p, bytes)).status).toBe(200);
  });

  test('a URL with no uploads row (signed by the store, not handed out by POST /v1/uploads) takes nothing', async () => {
    const key = `uploads/${tenant.tenantId}/0190b000-0000-7000-8000-00000000b001/x.png`;
    const signed = await api.storage.presignUpload({ key, contentType: 'image/png', size: 3, expiresInS: 60 });
    await expectProblem(await put({ ...signed, url: new URL(signed.url, served.base).toString() }, Buffer.from('abc')), 403, /no record/);
    expect(await api.storage.head(key)).toBeUndefined();
  });
});

describe('uploads stream to disk', () => {
  test('a streamed PUT past its declared size is a 413 as soon as it is, leaves no file, and the URL stays usable', async () => {
    const p = await presign(MB);
    const before = bytesOnDisk(api);
    const body = feed();
    const answer = put(p, body.body);
    // Four times the declared size, a chunk at a time; the refusal comes before the rest is sent.
    for (let i = 0; i < 4; i++) body.push(randomBytes(512 * 1024));
    const res = await answer;
    await expectProblem(res, 413, /declared as 1048576 bytes/);
    body.end();
    expect(bytesOnDisk(api)).toBe(before);
    expect(incoming(api)).toEqual([]);
    expect(await api.storage.head(p.storage_key)).toBeUndefined();
    expect((await put(p, randomBytes(MB))).status).toBe(200);
  });

  test('a 20 MB PUT reaches the disk while it is still arriving: the body is never held whole in memory', async () => {
    const size = 20 * MB;
    const p = await presign(size);
    const before = bytesOnDisk(api);
    const body = feed();
    const answer = put(p, body.body);
    const chunk = randomBytes(MB);
    for (let i = 0; i < 10; i++) body.push(chunk);
    // Half the body sent, the request still open: most of it must already be in a file.
    await waitFor(() => bytesOnDisk(api) - before >= 8 * MB, 'the first half of the body to be on disk before the rest is sent');
    expect(await api.storage.head(p.storage_key)).toBeUndefined();
    for (let i = 0; i < 10; i++) body.push(chunk);
    body.end();
    expect((await answer).status).toBe(200);
    expect(await api.storage.head(p.storage_key)).toEqual({ size, contentType: 'image/png' });
    expect(incoming(api)).toEqual([]);
  });
});

describe('STORAGE_MAX_TRANSFERS', () => {
  test('past the ceiling a transfer is a 503 with Retry-After; a finished, aborted or HEAD transfer gives its slot back', async () => {
    const bytes = randomBytes(MB);
    const p = await presign(bytes.byteLength, narrow, narrowTenant);
    const slow = feed();
    const sending = put(p, slow.body);
    slow.push(bytes.subarray(0, 1000));
    await waitFor(async () => (await db.sql`select 1 from leasehold.uploads where storage_key = ${p.storage_key} and receiving_token is not null`).length, 'the PUT to start');

    const other = await presign(10, narrow, narrowTenant);
    const refused = await put(other, randomBytes(10));
    expect(refused.headers.get('retry-after')).toBe('1');
    await expectProblem(refused, 503, /already moving 1 objects/);
    await expectProblem(await download(p.storage_key, narrow, narrowApi), 503, /already moving 1 objects/);

    slow.push(bytes.subarray(1000));
    slow.end();
    expect((await sending).status).toBe(200);

    // A HEAD, then a download the client abandons after its first chunk: each frees the slot.
    const head = await fetch(new URL(await narrowApi.storage.signedDownloadUrl(p.storage_key, 60), narrow.base), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(MB));
    const abandoned = await download(p.storage_key, narrow, narrowApi);
    const reader = abandoned.body!.getReader();
    await reader.read();
    await reader.cancel();
    const whole = await waitFor(async () => {
      const res = await download(p.storage_key, narrow, narrowApi);
      return res.status === 200 && Buffer.from(await res.arrayBuffer());
    }, 'the slot to come back');
    expect(sha256(whole)).toBe(sha256(bytes));
  });
});
