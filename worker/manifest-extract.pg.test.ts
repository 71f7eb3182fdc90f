import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import http, { type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { validateManifest } from '#shared/ai/validate-output.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { loadConfig } from '#shared/config.js';
import { createPattern } from '#shared/patterns/patterns.js';
import { enqueueIngest } from '#shared/patterns/enqueue-ingest.js';
import { anyOfChain } from '../test/helpers/schema-fixtures.js';
import { startModelDouble, successWith, type ModelDouble } from '../test/fixtures/model-double.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, eventTypes, jobRow, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';

// A real 1×1 PNG and a real 1×1 GIF.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
const SCHEMA = {
  type: 'object',
  properties: {
    merchant: { type: 'string' },
    total: { type: 'number' },
    items: {
      type: 'array',
      items: {
        type: 'object',
        properties: { name: { type: 'string' }, qty: { type: ['integer', 'null'] } },
        required: ['name', 'qty'],
        additionalProperties: false,
      },
    },
  },
  required: ['merchant', 'total', 'items'],
  additionalProperties: false,
};
const MANIFEST = { merchant: 'Café Ünïcode', total: 12.5, items: [{ name: 'flat white', qty: 2 }] };

let db: TestDatabase;
let double: ModelDouble;
let images: Server;
let imageBase: string;
let tenantId: string;
let patternId: string;
const pool = new WorkerPool();

beforeAll(async () => {
  db = await createTestDatabase();
  double = await startModelDouble();
  images = http.createServer((req, res) => {
    const body = req.url === '/receipt.png' ? PNG : req.url === '/other.gif' ? GIF : undefined;
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': req.url!.endsWith('.png') ? 'image/png' : 'image/gif' }).end(body);
  });
  await new Promise<void>((resolve) => images.listen(0, '127.0.0.1', resolve));
  imageBase = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
  tenantId = (await ensureTenant(db.sql, 'acme')).id;
  patternId = await receiptPattern();
});
beforeEach(() => double.reset());
afterEach(() => pool.stopAll());
afterAll(async () => {
  await double.close();
  await new Promise((resolve) => images.close(resolve));
  await db.drop();
});

/** Creates a receipt pattern (version 1) for the test tenant; returns its id. */
async function receiptPattern(): Promise<string> {
  const content = { name: 'Receipt', instructions: 'Extract the receipt (version 1).', json_schema: SCHEMA, format: 'json', model: null, is_active: true } as const;
  return (await createPattern(db.sql, tenantId, content)).id;
}

/** Starts a worker with config from `env` (fake provider, private fetches allowed, unless overridden). */
function startWorker(env: Record<string, string> = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'leasehold-worker-'));
  const config = loadConfig({ LOG_LEVEL: 'silent', FETCH_ALLOW_PRIVATE: 'true', LEASEHOLD_DATA_DIR: dataDir, ...env });
  return pool.start({ sql: db.sql, config, settings: { pollMs: 50 } });
}

/** A worker whose provider is the real OpenAI SDK talking to the double. */
function startOpenAIWorker() {
  return startWorker({ OPENAI_API_KEY: 'sk-double', OPENAI_BASE_URL: double.baseURL });
}

/** Ingests one image URL for the pattern's current version; returns the job id. */
async function ingest(url: string, pattern = patternId): Promise<string> {
  const r = await enqueueIngest(db.sql, tenantId, pattern, [{ url }]);
  if (r.outcome !== 'queued') throw new Error(`ingest: ${r.outcome}`);
  return r.ids[0]!;
}

async function settled(id: string) {
  return waitFor(async () => {
    const row = await jobRow(db.sql, id);
    return (row.status === 'succeeded' || row.status === 'failed') && row;
  }, `job ${id} to finish`);
}

describe('manifest.extract end to end', () => {
  test('the fake provider gives a schema-valid manifest, marked fake, the same for the same image', async () => {
    await startWorker();
    const [first, again, other] = [await ingest(`${imageBase}/receipt.png`), await ingest(`${imageBase}/receipt.png`), await ingest(`${imageBase}/other.gif`)];
    const rows = [await settled(first), await settled(again), await settled(other)];
    for (const row of rows) {
      expect(row.status).toBe('succeeded');
      expect(validateManifest(SCHEMA, row.result.manifest)).toEqual({ ok: true });
      expect(row.result).toMatchObject({ provider: 'fake', model: 'fake', pattern_id: patternId, pattern_version: 1 });
      expect(row.result.usage).toMatchObject({ estimated: true, total_tokens: expect.any(Number) });
    }
    expect(rows[1]!.result.manifest).toEqual(rows[0]!.result.manifest);
    expect(rows[2]!.result.manifest).not.toEqual(rows[0]!.result.manifest);
    expect(double.requests).toHaveLength(0);
  });

  test('reports progress while the model works', async () => {
    await startOpenAIWorker();
    double.reply({ type: 'slow', ms: 400, content: JSON.stringify(MANIFEST) });
    const id = await ingest(`${imageBase}/receipt.png`);
    expect((await settled(id)).status).toBe('succeeded');
    const progress = await db.sql<{ data: { progress: number; message: string } }[]>`
      select data from leasehold.job_events where job_id = ${id} and type = 'job.progress' order by id`;
    expect(progress[0]!.data).toEqual({ progress: 30, message: `image fetched (image/png, ${PNG.length} bytes)` });
  });

  test('the OpenAI provider stores the model’s manifest, usage, model and latency, using the version the job was created with', async () => {
    await startOpenAIWorker();
    double.reply(successWith(MANIFEST, { prompt_tokens: 900, completion_tokens: 40 }));
    const moving = await receiptPattern();
    const id = await ingest(`${imageBase}/receipt.png`, moving);
    // The pattern moves on after ingest; the job still runs with version 1.
    await db.sql`
      insert into leasehold.pattern_versions (pattern_id, version, tenant_id, name, instructions, json_schema, format, model, is_active)
      values (${moving}, 2, ${tenantId}, 'Receipt', 'Extract the receipt (version 2).', ${JSON.stringify(SCHEMA)}::text::json, 'json', 'gpt-4.1', true)`;
    await db.sql`update leasehold.patterns set current_version = 2 where id = ${moving}`;
    const row = await settled(id);
    expect(row.status).toBe('succeeded');
    expect(row.result).toMatchObject({
      manifest: MANIFEST,
      provider: 'openai',
      model: 'gpt-4o-mini-2026-01-01',
      usage: { prompt_tokens: 900, completion_tokens: 40, total_tokens: 940 },
      pattern_id: moving,
      pattern_version: 1,
    });
    expect(row.result.latency_ms).toBeGreaterThanOrEqual(0);
    const sent = double.requests[0]!.body;
    expect(sent.model).toBe('gpt-4o-mini');
    expect(sent.messages[0]).toEqual({ role: 'system', content: 'Extract the receipt (version 1).' });
    expect(sent.messages[1].content[0].image_url.url).toBe(`data:image/png;base64,${PNG.toString('base64')}`);
    expect(sent.messages[1].content[0].image_url.detail).toBe('auto');
    expect(sent.response_format.json_schema).toMatchObject({ name: 'Receipt', strict: true, schema: SCHEMA });
  });

  test('OPENAI_IMAGE_DETAIL sets the image detail the model is asked for', async () => {
    await startWorker({ OPENAI_API_KEY: 'sk-double', OPENAI_BASE_URL: double.baseURL, OPENAI_IMAGE_DETAIL: 'low' });
    double.reply(successWith(MANIFEST));
    const row = await settled(await ingest(`${imageBase}/receipt.png`));
    expect(row.status).toBe('succeeded');
    expect(double.requests.at(-1)!.body.messages[1].content[0].image_url.detail).toBe('low');
  });

  test('a 429 retries the job at the time retry-after-ms names, and the next attempt succeeds', async () => {
    await startOpenAIWorker();
    double.reply({ type: 'rate_limit', retryAfterMs: '100' }, successWith(MANIFEST));
    const id = await ingest(`${imageBase}/receipt.png`);
    const row = await settled(id);
    expect(row.status).toBe('succeeded');
    expect(row.attempts).toBe(2);
    expect(row.errors).toHaveLength(1);
    expect(row.errors[0]).toMatchObject({ code: 'rate_limited' });
    expect(row.result.manifest).toEqual(MANIFEST);
    expect(double.requests).toHaveLength(2);
    expect(await eventTypes(db.sql, id)).toContain('job.retrying');
  });

  test('a refusal fails the job at once, into the dead letters, saying the model refused', async () => {
    await startOpenAIWorker();
    double.reply({ type: 'refusal', refusal: 'I cannot read this document.' });
    const id = await ingest(`${imageBase}/receipt.png`);
    const row = await settled(id);
    expect(row.status).toBe('failed');
    expect(row.attempts).toBe(1);
    expect(row.last_error).toBe('the model refused: I cannot read this document.');
    const [dead] = await db.sql`select last_error, errors from leasehold.dead_letters where job_id = ${id}`;
    expect(dead!.last_error).toContain('refused');
    expect(dead!.errors[0]).toMatchObject({ code: 'refused' });
  });

  test('output that breaks the pattern’s schema fails the job and names the paths', async () => {
    await startOpenAIWorker();
    double.reply(successWith({ merchant: 7, total: 1, items: [{ name: 'x', qty: 1.5 }], extra: true }));
    const id = await ingest(`${imageBase}/receipt.png`);
    const row = await settled(id);
    expect(row.status).toBe('failed');
    expect(row.attempts).toBe(1);
    expect(row.errors[0]).toMatchObject({ code: 'output_invalid' });
    expect(row.last_error).toContain("the model's output does not match the pattern's schema");
    for (const path of ['$.merchant', '$.items[0].qty', '$.extra']) expect(row.last_error).toContain(path);
  });

  test('an image URL on a private address is refused for good without FETCH_ALLOW_PRIVATE', async () => {
    await startWorker({ FETCH_ALLOW_PRIVATE: 'false' });
    const id = await ingest(`${imageBase}/receipt.png`);
    const row = await settled(id);
    expect(row.status).toBe('failed');
    expect(row.attempts).toBe(1);
    expect(row.errors[0]).toMatchObject({ code: 'fetch_private_address' });
    expect(row.last_error).toMatch(/^cannot fetch the image: 127\.0\.0\.1 is not a public address \(loopback\)/);
  });

  test('a presigned image URL that cannot be fetched leaves its host and path, never its signature, in last_error and dead_letters', async () => {
    await startWorker();
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const url = `http://127.0.0.1:${port}/bucket/receipt.png?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=0123456789abcdef`;
    const { id } = await queueFor(db.sql).enqueue({
      kind: 'manifest.extract', tenantId, maxAttempts: 1, payload: { pattern_id: patternId, pattern_version: 1, image: { url } },
    });
    const row = await settled(id);
    expect(row.status).toBe('failed');
    expect(row.last_error).toBe(`cannot fetch the image: cannot fetch http://127.0.0.1:${port}/bucket/receipt.png: ECONNREFUSED`);
    const [letter] = await db.sql`select last_error, errors from leasehold.dead_letters where job_id = ${id}`;
    expect(JSON.stringify([row.errors, letter])).not.toMatch(/X-Amz|AKIA|0123456789abcdef/);
    expect(letter!.last_error).toBe(row.last_error);
  });

  test('a version the tenant does not have, a missing upload and another tenant\'s upload fail for good with their own codes', async () => {
    await startWorker();
    const other = await ensureTenant(db.sql, 'intruder');
    const queue = queueFor(db.sql);
    const job = (tenant: string, version: number, image: object) =>
      queue.enqueue({ kind: 'manifest.extract', tenantId: tenant, payload: { pattern_id: patternId, pattern_version: version, image } });
    const url = { url: `${imageBase}/receipt.png` };
    const ids = [
      (await job(tenantId, 99, url)).id,
      (await job(other.id, 1, url)).id,
      (await job(tenantId, 1, { storage_key: `uploads/${tenantId}/${randomUUID()}/receipt.png` })).id,
      (await job(tenantId, 1, { storage_key: `uploads/${other.id}/${randomUUID()}/receipt.png` })).id,
    ];
    const rows = await Promise.all(ids.map(settled));
    expect(rows.map((r) => [r.status, r.attempts, r.errors[0].code])).toEqual([
      ['failed', 1, 'pattern_not_found'],
      ['failed', 1, 'pattern_not_found'],
      ['failed', 1, 'storage_not_found'],
      ['failed', 1, 'storage_forbidden'],
    ]);
    expect(rows[2]!.last_error).toMatch(/^no object at uploads\//);
  });
});

// Schemas stored before the pattern check refused them (createPattern does not check; the API does).
describe('manifest-extract-hostile-schemas: fail for good, quickly, and the worker stays up', () => {
  const stored = async (json_schema: Record<string, unknown>) =>
    (await createPattern(db.sql, tenantId, { name: 'Hostile', instructions: 'x', json_schema, format: 'json', model: null, is_active: true })).id;
  const coded = (code: Record<string, unknown>) => ({ type: 'object', properties: { code }, required: ['code'], additionalProperties: false });

  test('repeats that filled the heap, a billion minItems and a 2^26-node expansion fail with their own codes', async () => {
    await startWorker();
    const start = Date.now();
    const ids = [
      await ingest(`${imageBase}/receipt.png`, await stored(coded({ type: 'string', pattern: '^(x{100000}){100000}$' }))),
      await ingest(`${imageBase}/receipt.png`, await stored(coded({ type: 'array', items: { type: 'string' }, minItems: 1_000_000_000 }))),
      await ingest(`${imageBase}/receipt.png`, await stored(anyOfChain(25))),
      await ingest(`${imageBase}/receipt.png`),
    ];
    const rows = await Promise.all(ids.map(settled));
    expect(rows.map((r) => [r.status, r.attempts, r.errors[0]?.code])).toEqual([
      ['failed', 1, 'invalid_schema'],
      ['failed', 1, 'schema_too_large'],
      ['failed', 1, 'invalid_schema'],
      ['succeeded', 1, undefined],
    ]);
    expect(rows[0]!.last_error).toMatch(/repeats more than 1000 times/);
    expect(rows[1]!.last_error).toMatch(/^the fake provider cannot fill this schema: minItems 1000000000/);
    expect(rows[2]!.last_error).toMatch(/expands to more than 50000 nodes/);
    expect(Date.now() - start).toBeLessThan(8_000);
  });

  test('a model answer tested against a catastrophic-backtracking pattern fails at once', async () => {
    await startOpenAIWorker();
    // V8 takes about 8 s for ^(a|a)*$ on these 28 characters, blocking every job of the worker.
    double.reply(successWith({ code: `${'a'.repeat(27)}b` }));
    const start = Date.now();
    const row = await settled(await ingest(`${imageBase}/receipt.png`, await stored(coded({ type: 'string', pattern: '^(a|a)*$' }))));
    expect(Date.now() - start).toBeLessThan(4_000);
    expect([row.status, row.errors[0].code]).toEqual(['failed', 'output_invalid']);
    expect(row.last_error).toContain('$.code must match pattern');
  });
});
