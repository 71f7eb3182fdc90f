import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { solidPng } from '#shared/ai/fake-image.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { loadConfig } from '#shared/config.js';
import { MAX_UPLOAD_BYTES, createObjectStore, type ObjectStore } from '#shared/storage/object-store.js';
import { startModelDouble, type ModelDouble } from '../test/fixtures/model-double.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, jobRow, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';

const INPUT = solidPng([10, 20, 30]);
const EDITED = solidPng([200, 100, 50]);

let db: TestDatabase;
let double: ModelDouble;
let storage: ObjectStore;
let config: ReturnType<typeof loadConfig>;
let tenantId: string;
let key: string;
const pool = new WorkerPool();

beforeAll(async () => {
  db = await createTestDatabase();
  double = await startModelDouble();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'leasehold-edit-'));
  config = loadConfig({ LOG_LEVEL: 'silent', LEASEHOLD_DATA_DIR: dataDir, OPENAI_API_KEY: 'sk-double', OPENAI_BASE_URL: double.baseURL });
  storage = createObjectStore(config, { dataDir });
  tenantId = (await ensureTenant(db.sql, 'edit')).id;
  key = `uploads/${tenantId}/${randomUUID()}/in.png`;
  await storage.put(key, INPUT, 'image/png');
});
beforeEach(() => double.reset());
afterEach(() => pool.stopAll());
afterAll(async () => {
  await double.close();
  await db.drop();
});

/** Enqueues an image.edit job over the stored image and waits for it to finish. */
async function editAndSettle(image = key) {
  await pool.start({ sql: db.sql, config, storage, settings: { pollMs: 50 } });
  const { id } = await queueFor(db.sql).enqueue({ kind: 'image.edit', tenantId, payload: { image, prompt: 'make it red', size: '1024x1024' } });
  return waitFor(async () => {
    const row = await jobRow(db.sql, id);
    return (row.status === 'succeeded' || row.status === 'failed') && row;
  }, `job ${id} to finish`);
}

describe('image.edit with the OpenAI SDK against the model double', () => {
  test('the edited image is stored under the tenant, sent as a multipart edit with model and prompt', async () => {
    double.reply({ type: 'image', b64: EDITED.toString('base64') });
    const row = await editAndSettle();
    expect(row.status).toBe('succeeded');
    expect(row.result).toMatchObject({
      storage_key: expect.stringMatching(new RegExp(`^uploads/${tenantId}/[0-9a-f-]{36}/edited\\.png$`)),
      content_type: 'image/png',
      bytes: EDITED.byteLength,
      provider: 'openai',
      model: 'gpt-image-1',
      usage: { input_tokens: 50, output_tokens: 200, total_tokens: 250 },
      latency_ms: expect.any(Number),
    });
    expect(await storage.get(row.result.storage_key, { maxBytes: EDITED.byteLength })).toEqual(EDITED);
    // Recorded in uploads as the job's own, so retention deletes it once the job is gone.
    expect(await db.sql`select tenant_id, content_type, size_bytes, created_by, received_at from leasehold.uploads where storage_key = ${row.result.storage_key}`)
      .toEqual([{ tenant_id: tenantId, content_type: 'image/png', size_bytes: String(EDITED.byteLength), created_by: `job:${row.id}`, received_at: expect.any(Date) }]);
    // The result also carries a signed link to the edit, valid for a week.
    expect(row.result.url).toContain(encodeURIComponent(row.result.storage_key));
    expect(Date.parse(row.result.url_expires_at) - Date.now()).toBeGreaterThan(6 * 24 * 3600 * 1000);
    expect(double.requests).toHaveLength(1);
    const sent = double.requests[0]!;
    expect(sent.path).toBe('/v1/images/edits');
    expect(sent.headers['content-type']).toMatch(/^multipart\/form-data/);
    expect(sent.body).toMatchObject({ model: 'gpt-image-1', prompt: 'make it red', size: '1024x1024', image: { type: 'image/png', size: INPUT.byteLength } });
  });

  test('a 429 is retried, and the next attempt stores the edit', async () => {
    double.reply({ type: 'rate_limit', retryAfterMs: '100' }, { type: 'image', b64: EDITED.toString('base64') });
    const row = await editAndSettle();
    expect(row.status).toBe('succeeded');
    expect(row.attempts).toBe(2);
    expect(row.errors[0]).toMatchObject({ code: 'rate_limited' });
    expect(double.requests).toHaveLength(2);
  });

  test('a content-policy 400 fails the job for good on the first attempt', async () => {
    double.reply({ type: 'content_policy' });
    const row = await editAndSettle();
    expect(row.status).toBe('failed');
    expect(row.attempts).toBe(1);
    expect(row.errors[0]).toMatchObject({ code: 'content_policy' });
    expect(double.requests).toHaveLength(1);
  });

  test('an image over the upload limit fails the job for good, unread past the limit and never sent', async () => {
    // A PNG as far as its first bytes tell, one byte longer than POST /v1/uploads allows.
    const huge = `uploads/${tenantId}/${randomUUID()}/huge.png`;
    await storage.put(huge, Buffer.concat([INPUT, Buffer.alloc(MAX_UPLOAD_BYTES + 1 - INPUT.byteLength)]), 'image/png');
    double.reply({ type: 'image', b64: EDITED.toString('base64') });
    const row = await editAndSettle(huge);
    expect(row.status).toBe('failed');
    expect(row.attempts).toBe(1);
    expect(row.errors[0]).toMatchObject({ code: 'storage_too_large' });
    expect(row.last_error).toBe(`the object at ${huge} is ${MAX_UPLOAD_BYTES + 1} bytes, more than the ${MAX_UPLOAD_BYTES} bytes an image may have`);
    expect(double.requests).toHaveLength(0);
  });
});
