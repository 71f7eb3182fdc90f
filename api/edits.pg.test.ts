import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { solidPng } from '#shared/ai/fake-image.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { serveTestApi, type ServedApi } from '../test/helpers/served-api.js';
import { WorkerPool } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';

type Json = Record<string, any>;
const INPUT = solidPng([1, 2, 3]);
const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let db: TestDatabase;
let api: TestApi;
let served: ServedApi;
let a: { tenantId: string; key: string };
let b: { tenantId: string; key: string };
const workers = new WorkerPool();

beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000' });
  served = await serveTestApi(api);
  a = await api.tenant('edits-a');
  b = await api.tenant('edits-b');
  await workers.start({ sql: db.sql, config: api.config, storage: api.storage, settings: { pollMs: 50 } });
});
afterAll(async () => {
  await workers.stopAll();
  await served.close();
  await db.drop();
});

const call = (method: string, path: string, key: string, body?: unknown) => served.call(method, path, key, body);
const uploadPng = (bytes: Buffer) => served.uploadPng(a.key, bytes);

/** Posts an edit and waits for it to finish; returns the finished GET body. */
async function editAndWait(image: string, prompt: string): Promise<Json> {
  const created = await call('POST', '/v1/edits', a.key, { image, prompt });
  expect(created).toEqual({ status: 202, body: { edit_id: expect.any(String), status: 'queued' } });
  const id = created.body.edit_id;
  const done = await waitFor(async () => {
    const r = await call('GET', `/v1/edits/${id}`, a.key);
    return r.body.status === 'succeeded' || r.body.status === 'failed' ? r : undefined;
  }, 'the edit to finish');
  expect(done.status).toBe(200);
  return done.body;
}

/** Downloads a signed URL and checks it is a PNG with an IHDR; returns the bytes. */
async function downloadPng(url: string): Promise<Buffer> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  const bytes = Buffer.from(await res.arrayBuffer());
  expect(bytes.subarray(0, 8)).toEqual(SIGNATURE);
  expect(bytes.subarray(12, 16).toString('ascii')).toBe('IHDR');
  expect(bytes.readUInt32BE(16)).toBeGreaterThan(0);
  expect(bytes.readUInt32BE(20)).toBeGreaterThan(0);
  return bytes;
}

describe('POST /v1/edits and GET /v1/edits/{id}', () => {
  test('an upload → an edit job → a real worker with the fake provider → a signed URL to a PNG, deterministic per image and prompt', async () => {
    const image = await uploadPng(INPUT);
    const first = await editAndWait(image, 'make it blue');
    expect(first).toMatchObject({ status: 'succeeded', result: { content_type: 'image/png', bytes: expect.any(Number), url: expect.any(String) } });
    expect(first.result.storage_key).toMatch(new RegExp(`^uploads/${a.tenantId}/[0-9a-f-]{36}/edited\\.png$`));
    const bytes = await downloadPng(first.result.url);
    expect(bytes.byteLength).toBe(first.result.bytes);

    const again = await editAndWait(image, 'make it blue');
    expect(again.result.storage_key).not.toBe(first.result.storage_key);
    expect(await downloadPng(again.result.url)).toEqual(bytes);
    const other = await editAndWait(image, 'make it green');
    expect(await downloadPng(other.result.url)).not.toEqual(bytes);

    expect((await call('GET', `/v1/edits/${first.id}`, b.key)).status).toBe(404);
    expect((await call('GET', '/v1/edits/not-a-uuid', a.key)).status).toBe(404);
  });

  test("a missing upload, another tenant's key and an empty prompt are 422", async () => {
    const mine = await uploadPng(INPUT);
    const missing = await call('POST', '/v1/edits', a.key, { image: mine.replace(/[^/]+$/, 'nothing.png'), prompt: 'x' });
    expect(missing.status).toBe(422);
    expect(missing.body.errors).toEqual([{ path: 'body.image', message: expect.stringContaining('no object') }]);
    const foreign = await call('POST', '/v1/edits', b.key, { image: mine, prompt: 'x' });
    expect(foreign.status).toBe(422);
    expect(foreign.body.errors[0]).toEqual({ path: 'body.image', message: expect.stringContaining(b.tenantId) });
    const badMask = await call('POST', '/v1/edits', a.key, { image: mine, mask: mine.replace(/[^/]+$/, 'm.png'), prompt: 'x' });
    expect(badMask.body.errors).toEqual([{ path: 'body.mask', message: expect.stringContaining('no object') }]);
    expect((await call('POST', '/v1/edits', a.key, { image: mine, prompt: '' })).status).toBe(422);
  });
});
