import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '#shared/config.js';
import { fromCsv, fromXml } from '#shared/formats/render-manifest.js';
import { anyOfChain } from '../test/helpers/schema-fixtures.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';

// The whole ImgGo flow through the HTTP API and a real worker with the default (fake) provider:
// create a pattern, upload an image through its presigned URL (or name it by URL), ingest, extract,
// and read the manifest in all five formats.
const ENV = { FETCH_ALLOW_PRIVATE: 'true', RATE_LIMIT_PER_S: '1000', RATE_LIMIT_BURST: '1000' };
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const SHELF = {
  type: 'object',
  properties: {
    store: { type: 'string' },
    audited_on: { type: 'string', format: 'date' },
    items: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          sku: { type: 'string' },
          name: { type: 'string' },
          facings: { type: 'integer', minimum: 0, maximum: 20 },
          price: { type: ['number', 'null'] },
          on_promo: { type: 'boolean' },
        },
        required: ['sku', 'name', 'facings', 'price', 'on_promo'],
        additionalProperties: false,
      },
    },
  },
  required: ['store', 'audited_on', 'items'],
  additionalProperties: false,
};

let db: TestDatabase;
let api: TestApi;
let images: Server;
let imageUrl: string;
const workers = new WorkerPool();

beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, ENV);
  images = createServer((_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(PNG));
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  imageUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}/aisle-7.png`;
});
afterAll(async () => {
  await workers.stopAll();
  await new Promise((r) => images.close(r));
  await db.drop();
});

async function extract(key: string, patternId: string, image: { image_url: string } | { storage_key: string }): Promise<string> {
  const queued = await api.request(key, 'POST', `/v1/patterns/${patternId}/ingest`, { ...image, metadata: { store: 'berlin-3' } });
  expect(queued.status).toBe(202);
  return ((await queued.json()) as { job_id: string }).job_id;
}

test.each(['upload', 'url'] as const)('pattern → %s → ingest → worker → manifest in json, yaml, xml, csv and text, each reading back the same', async (via) => {
  const { key } = await api.tenant(`e2e-${via}`);
  const created = await api.request(key, 'POST', '/v1/patterns', { name: 'shelf audit', instructions: 'List every product on the shelf.', json_schema: SHELF, format: 'csv' });
  expect(created.status).toBe(201);
  const pattern = (await created.json()) as { id: string };
  let job_id: string;
  if (via === 'upload') {
    // The presigned upload, as a client would do it: POST /v1/uploads, then PUT the bytes to its URL.
    const presigned = (await (await api.request(key, 'POST', '/v1/uploads', { content_type: 'image/png', size: PNG.byteLength, filename: 'aisle-7.png' })).json()) as {
      url: string;
      method: string;
      headers: Record<string, string>;
      storage_key: string;
    };
    const put = await api.app.request(presigned.url, { method: presigned.method, headers: presigned.headers, body: PNG });
    expect(put.status).toBeLessThan(300);
    job_id = await extract(key, pattern.id, { storage_key: presigned.storage_key });
  } else {
    job_id = await extract(key, pattern.id, { image_url: imageUrl });
  }

  await workers.start({ sql: db.sql, config: loadConfig({ ...ENV, LOG_LEVEL: 'silent', LEASEHOLD_DATA_DIR: api.config.LEASEHOLD_DATA_DIR }), storage: api.storage, settings: { queues: [{ name: 'ai' }], pollMs: 50 } });
  const job = await waitFor(async () => {
    const j = (await (await api.request(key, 'GET', `/v1/jobs/${job_id}`)).json()) as { status: string; result: { manifest: unknown; provider: string } };
    if (j.status === 'failed') throw new Error(`job failed: ${JSON.stringify(j)}`);
    return j.status === 'succeeded' && j;
  }, 'the manifest to be extracted', 15_000);
  expect(job.result.provider).toBe('fake');
  const manifest = job.result.manifest as { items: unknown[]; store: string };
  expect(manifest.items.length).toBeGreaterThan(0);

  const fetchAs = async (format: string) => {
    const res = await api.request(key, 'GET', `/v1/jobs/${job_id}/manifest?format=${format}`);
    expect(res.status, format).toBe(200);
    return { type: res.headers.get('content-type'), body: await res.text() };
  };
  const json = await fetchAs('json');
  expect(json.type).toMatch(/^application\/json/);
  expect(JSON.parse(json.body)).toEqual(manifest);
  // Served in the schema's key order, whatever order the database keeps the result in.
  expect(Object.keys(JSON.parse(json.body) as object)).toEqual(['store', 'audited_on', 'items']);
  expect(Object.keys((JSON.parse(json.body) as { items: object[] }).items[0]!)).toEqual(['sku', 'name', 'facings', 'price', 'on_promo']);
  const yaml = await fetchAs('yaml');
  expect(yaml.type).toMatch(/^application\/yaml/);
  expect(parseYaml(yaml.body)).toEqual(manifest);
  const xml = await fetchAs('xml');
  expect(xml.type).toMatch(/^application\/xml/);
  expect(fromXml(xml.body)).toEqual(manifest);
  const csv = await fetchAs('csv');
  expect(csv.type).toMatch(/^text\/csv/);
  expect(csv.body.split('\r\n').filter(Boolean)).toHaveLength(1 + manifest.items.length); // header + one row per item
  expect(fromCsv(csv.body, SHELF)).toEqual(manifest);
  const text = await fetchAs('text');
  expect(text.type).toMatch(/^text\/plain/);
  expect(text.body).toContain(manifest.store);
  // Without ?format=: the pattern's own format (csv here).
  const plain = await api.request(key, 'GET', `/v1/jobs/${job_id}/manifest`);
  expect(plain.status).toBe(200);
  expect(plain.headers.get('content-type')).toMatch(/^text\/csv/);
  expect(await plain.text()).toBe(csv.body);
  await workers.stopAll();
});

test('manifest-csv-hostile-schema: a schema stored before the check bounded its expansion, or a csv that would repeat too much, gets a 422 at once, not a hung API', async () => {
  const { key } = await api.tenant('e2e-hostile');
  const created = await api.request(key, 'POST', '/v1/patterns', { name: 'chain', instructions: 'Read it.', json_schema: anyOfChain(3) });
  expect(created.status).toBe(201);
  const pattern = (await created.json()) as { id: string };
  const job_id = await extract(key, pattern.id, { image_url: imageUrl });
  await workers.start({ sql: db.sql, config: loadConfig({ ...ENV, LOG_LEVEL: 'silent', LEASEHOLD_DATA_DIR: api.config.LEASEHOLD_DATA_DIR }), storage: api.storage, settings: { queues: [{ name: 'ai' }], pollMs: 50 } });
  await waitFor(async () => {
    const j = (await (await api.request(key, 'GET', `/v1/jobs/${job_id}`)).json()) as { status: string };
    if (j.status === 'failed') throw new Error(`job failed: ${JSON.stringify(j)}`);
    return j.status === 'succeeded';
  }, 'the manifest to be extracted', 15_000);
  await workers.stopAll();
  // The same shape, 24 deep: about 45 s of CSV layout for every such request before the bound.
  await db.sql`update leasehold.pattern_versions set json_schema = ${JSON.stringify(anyOfChain(24))}::text::json where pattern_id = ${pattern.id}`;
  const start = Date.now();
  const csv = await api.request(key, 'GET', `/v1/jobs/${job_id}/manifest?format=csv`);
  expect(Date.now() - start).toBeLessThan(2_000);
  expect([csv.status, csv.headers.get('content-type')]).toEqual([422, 'application/problem+json']);
  const problem = (await csv.json()) as { code: string; detail: string; errors: { path: string }[] };
  expect(problem.code).toBe('invalid_schema');
  expect(problem.detail).toMatch(/^the pattern schema is too large to lay out csv columns from: the schema expands to more than 50000 nodes/);
  expect(problem.errors).toEqual([{ path: 'query.format', message: expect.any(String) }]);
  const json = await api.request(key, 'GET', `/v1/jobs/${job_id}/manifest?format=json`);
  expect(json.status).toBe(200);
  expect(Object.keys((await json.json()) as object)).toEqual(['x']);

  // A manifest whose csv would repeat a 20,000-character parent field on 2,000 rows (40 MB).
  const rowsSchema = {
    type: 'object',
    properties: { note: { type: 'string' }, rows: { type: 'array', items: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'], additionalProperties: false } } },
    required: ['note', 'rows'],
    additionalProperties: false,
  };
  const manifest = { note: 'x'.repeat(20_000), rows: Array.from({ length: 2_000 }, (_, n) => ({ n })) };
  await db.sql`update leasehold.pattern_versions set json_schema = ${JSON.stringify(rowsSchema)}::text::json where pattern_id = ${pattern.id}`;
  await db.sql`update leasehold.jobs set result = jsonb_set(result, '{manifest}', ${JSON.stringify(manifest)}::text::jsonb) where id = ${job_id}`;
  const big = await api.request(key, 'GET', `/v1/jobs/${job_id}/manifest?format=csv`);
  const bigBody = (await big.json()) as { code: string; detail: string };
  expect([big.status, bigBody.code], bigBody.detail).toEqual([422, 'validation_failed']);
  expect((await api.request(key, 'GET', `/v1/jobs/${job_id}/manifest?format=yaml`)).status).toBe(200);
});
