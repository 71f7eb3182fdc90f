import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { GALLERY_SCHEMA } from '#shared/ai/gallery-albums.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { loadConfig } from '#shared/config.js';
import { MAX_UPLOAD_BYTES, createObjectStore, type ObjectStore } from '#shared/storage/object-store.js';
import { startModelDouble, successWith, type ModelDouble } from '../test/fixtures/model-double.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, jobRow, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';

// A real 1×1 PNG and a real 1×1 GIF.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');

let db: TestDatabase;
let double: ModelDouble;
let storage: ObjectStore;
let config: ReturnType<typeof loadConfig>;
let tenantId: string;
let keys: string[];
const pool = new WorkerPool();

beforeAll(async () => {
  db = await createTestDatabase();
  double = await startModelDouble();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'leasehold-gallery-'));
  config = loadConfig({ LOG_LEVEL: 'silent', LEASEHOLD_DATA_DIR: dataDir, OPENAI_API_KEY: 'sk-double', OPENAI_BASE_URL: double.baseURL });
  storage = createObjectStore(config, { dataDir });
  tenantId = (await ensureTenant(db.sql, 'gallery')).id;
  keys = ['one.png', 'two.gif', 'three.png'].map((name) => `uploads/${tenantId}/${randomUUID()}/${name}`);
  await storage.put(keys[0]!, PNG, 'image/png');
  await storage.put(keys[1]!, GIF, 'image/gif');
  await storage.put(keys[2]!, Buffer.concat([PNG, Buffer.from('x')]), 'image/png');
});
beforeEach(() => double.reset());
afterEach(() => pool.stopAll());
afterAll(async () => {
  await double.close();
  await db.drop();
});

/** Enqueues a gallery.group job over the three stored images and waits for it to finish. */
async function groupAndSettle(images = keys) {
  await pool.start({ sql: db.sql, config, storage, settings: { pollMs: 50 } });
  const { id } = await queueFor(db.sql).enqueue({ kind: 'gallery.group', tenantId, payload: { images, hint: 'by trip' } });
  return waitFor(async () => {
    const row = await jobRow(db.sql, id);
    return (row.status === 'succeeded' || row.status === 'failed') && row;
  }, `job ${id} to finish`);
}

const FALLBACK_ALBUM = { title: 'All photos', description: expect.any(String), images: undefined as unknown };

describe('gallery.group with the OpenAI SDK against the model double', () => {
  test("the model's grouping is kept, sent in one strict call with every image after its key", async () => {
    const albums = [
      { title: 'Beach', description: 'Sand and sea.', images: [keys[2], keys[0]] },
      { title: 'Night', description: 'After dark.', images: [keys[1]] },
    ];
    double.reply(successWith({ albums }));
    const row = await groupAndSettle();
    expect(row.status).toBe('succeeded');
    expect(row.result).toMatchObject({ albums, fallback: false, provider: 'openai' });
    expect(double.requests).toHaveLength(1);
    const sent = double.requests[0]!.body;
    expect(sent.response_format.json_schema).toMatchObject({ name: 'gallery_albums', strict: true, schema: GALLERY_SCHEMA });
    expect(sent.messages[0].content).toContain("The owner's hint: by trip");
    const parts = sent.messages[1].content;
    expect(parts.map((p: { type: string }) => p.type)).toEqual(['text', 'image_url', 'text', 'image_url', 'text', 'image_url']);
    expect(parts[2].text).toBe(`Image 2: ${keys[1]}`);
    expect(parts[3].image_url.url).toBe(`data:image/gif;base64,${GIF.toString('base64')}`);
  });

  test('a grouping that drops an image succeeds with one fallback album in input order, saying why', async () => {
    double.reply(successWith({ albums: [{ title: 'Beach', description: 'Sand.', images: [keys[0], keys[2]] }] }));
    const row = await groupAndSettle();
    expect(row.status).toBe('succeeded');
    expect(row.attempts).toBe(1);
    expect(row.result.albums).toEqual([{ ...FALLBACK_ALBUM, images: keys }]);
    expect(row.result.fallback).toBe(true);
    expect(row.result.fallback_reason).toEqual({ code: 'output_invalid', message: expect.stringContaining(keys[1]!) });
  });

  test('a refusal succeeds with the fallback album and the refusal as the reason', async () => {
    double.reply({ type: 'refusal', refusal: 'I cannot sort these.' });
    const row = await groupAndSettle();
    expect(row.status).toBe('succeeded');
    expect(row.result).toMatchObject({ fallback: true, fallback_reason: { code: 'refused', message: 'the model refused: I cannot sort these.' } });
    expect(row.result.albums).toEqual([{ ...FALLBACK_ALBUM, images: keys }]);
  });

  test('a 429 is retried, and the next attempt keeps the grouping', async () => {
    const albums = [{ title: 'All', description: 'Everything.', images: keys }];
    double.reply({ type: 'rate_limit', retryAfterMs: '100' }, successWith({ albums }));
    const row = await groupAndSettle();
    expect(row.status).toBe('succeeded');
    expect(row.attempts).toBe(2);
    expect(row.errors[0]).toMatchObject({ code: 'rate_limited' });
    expect(row.result).toMatchObject({ albums, fallback: false });
    expect(double.requests).toHaveLength(2);
  });

  test('an image over the upload limit fails the job for good (no fallback album), and no model call is made', async () => {
    const huge = `uploads/${tenantId}/${randomUUID()}/huge.png`;
    await storage.put(huge, Buffer.concat([PNG, Buffer.alloc(MAX_UPLOAD_BYTES + 1 - PNG.byteLength)]), 'image/png');
    const row = await groupAndSettle([keys[0]!, huge]);
    expect(row.status).toBe('failed');
    expect(row.attempts).toBe(1);
    expect(row.errors[0]).toMatchObject({ code: 'storage_too_large' });
    expect(row.last_error).toBe(`the object at ${huge} is ${MAX_UPLOAD_BYTES + 1} bytes, more than the ${MAX_UPLOAD_BYTES} bytes an image may have`);
    expect(double.requests).toHaveLength(0);
  });
});
