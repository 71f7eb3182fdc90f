import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { serveTestApi, type ServedApi } from '../test/helpers/served-api.js';
import { WorkerPool } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';

type Json = Record<string, any>;
// A real 1×1 PNG; the others differ in trailing bytes so each has its own hash.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const PNGS = [PNG, Buffer.concat([PNG, Buffer.from('a')]), Buffer.concat([PNG, Buffer.from('bb')])];

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
  a = await api.tenant('galleries-a');
  b = await api.tenant('galleries-b');
});
afterAll(async () => {
  await workers.stopAll();
  await served.close();
  await db.drop();
});

const call = (method: string, path: string, key: string, body?: unknown) => served.call(method, path, key, body);
const uploadPng = (bytes: Buffer) => served.uploadPng(a.key, bytes);

describe('POST /v1/galleries and GET /v1/galleries/{id}', () => {
  test('three uploads → a gallery job → a real worker → albums covering every image once, with working signed URLs', async () => {
    const keys = [];
    for (const bytes of PNGS) keys.push(await uploadPng(bytes));
    const created = await call('POST', '/v1/galleries', a.key, { images: keys, hint: 'by colour' });
    expect(created).toEqual({ status: 202, body: { gallery_id: expect.any(String), status: 'queued' } });
    const id = created.body.gallery_id;
    expect((await call('GET', `/v1/galleries/${id}`, a.key)).body).toEqual({ id, status: 'queued' });

    await workers.start({ sql: db.sql, config: api.config, storage: api.storage, settings: { pollMs: 50 } });
    const done = await waitFor(async () => {
      const r = await call('GET', `/v1/galleries/${id}`, a.key);
      return r.body.status === 'succeeded' || r.body.status === 'failed' ? r : undefined;
    }, 'the gallery to finish');
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ id, status: 'succeeded', fallback: false });
    const placed = done.body.albums.flatMap((album: Json) => album.images.map((img: Json) => img.storage_key));
    expect([...placed].sort()).toEqual([...keys].sort());
    for (const album of done.body.albums) {
      expect(album).toMatchObject({ title: expect.any(String), description: expect.any(String) });
      for (const img of album.images) {
        const download = await fetch(img.url);
        expect(download.status).toBe(200);
        expect(Buffer.from(await download.arrayBuffer())).toEqual(PNGS[keys.indexOf(img.storage_key)]);
      }
    }

    expect((await call('GET', `/v1/galleries/${id}`, b.key)).status).toBe(404);
    expect((await call('GET', '/v1/galleries/not-a-uuid', a.key)).status).toBe(404);
  });

  test('a result stored under the old album field name (theme_description) is served as description', async () => {
    const key = await uploadPng(PNG);
    const [row] = await db.sql<{ id: string }[]>`
      insert into leasehold.jobs (id, kind, queue, tenant_id, status, payload, result, finished_at)
      values (leasehold.uuid_v7(), 'gallery.group', 'ai', ${a.tenantId}, 'succeeded', '{}',
              ${db.sql.json({ albums: [{ title: 'Old', theme_description: 'Stored before the rename.', images: [key] }], fallback: false })}, now())
      returning id`;
    const r = await call('GET', `/v1/galleries/${row!.id}`, a.key);
    expect(r.status).toBe(200);
    expect(r.body.albums).toEqual([{ title: 'Old', description: 'Stored before the rename.', images: [{ storage_key: key, url: expect.any(String) }] }]);
  });

  test("a missing upload, another tenant's key, too few images and a duplicate are 422", async () => {
    const mine = await uploadPng(PNG);
    const missing = mine.replace(/[^/]+$/, 'nothing.png');
    const r1 = await call('POST', '/v1/galleries', a.key, { images: [mine, missing] });
    expect(r1.status).toBe(422);
    expect(r1.body.errors).toEqual([{ path: 'body.images[1]', message: expect.stringContaining('no object') }]);

    const r2 = await call('POST', '/v1/galleries', b.key, { images: [mine, mine.replace(/[^/]+$/, 'x.png')] });
    expect(r2.status).toBe(422);
    expect(r2.body.errors[0]).toEqual({ path: 'body.images[0]', message: expect.stringContaining(b.tenantId) });

    expect((await call('POST', '/v1/galleries', a.key, { images: [mine] })).status).toBe(422);
    expect((await call('POST', '/v1/galleries', a.key, { images: [mine, mine] })).status).toBe(422);
  });
});
