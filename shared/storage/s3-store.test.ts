import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import S3rver from '@20minutes/s3rver';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../config.js';
import { newUploadKey } from './keys.js';
import { createObjectStore } from './object-store.js';
import { S3ObjectStore } from './s3-store.js';

const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const TENANT = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';

let server: S3rver;
let endpoint: string;
let store: S3ObjectStore;

/** s3rver refuses bucket-level paths with a trailing slash (`/bucket/`), which real S3 accepts: test-only fix-up. */
function stripBucketSlash(s: S3ObjectStore): void {
  s.client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { path?: string };
      if (req.path && /^\/[^/]+\/$/.test(req.path)) req.path = req.path.slice(0, -1);
      return next(args);
    },
    { step: 'build', name: 'stripBucketSlash' },
  );
}

const storeFor = (env: Record<string, string>) => {
  const config = loadConfig({ S3_BUCKET: 'leasehold', S3_ENDPOINT: endpoint, S3_FORCE_PATH_STYLE: 'true', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', ...env });
  const s = createObjectStore(config, { dataDir: '/nonexistent' }) as S3ObjectStore;
  stripBucketSlash(s);
  return s;
};

beforeAll(async () => {
  server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: mkdtempSync(path.join(tmpdir(), 's3rver-')), configureBuckets: [{ name: 'leasehold' }] });
  const { port } = await server.run();
  endpoint = `http://127.0.0.1:${port}`;
  store = storeFor({});
});
afterAll(() => server.close());

describe('S3ObjectStore against an S3 server that checks SigV4', () => {
  test('S3_BUCKET selects it; check() reaches the bucket, and fails for a missing bucket or wrong secret', async () => {
    expect(store).toBeInstanceOf(S3ObjectStore);
    await store.check();
    await expect(storeFor({ S3_BUCKET: 'nope' }).check()).rejects.toThrow();
    await expect(storeFor({ AWS_SECRET_ACCESS_KEY: 'wrong' }).check()).rejects.toThrow();
  });

  test('upload through the presigned URL, then head and get', async () => {
    const key = newUploadKey(TENANT, 'image/png', 'receipt.png');
    const p = await store.presignUpload({ key, contentType: 'image/png', size: PNG.byteLength, expiresInS: 60 });
    expect(p).toMatchObject({ method: 'PUT', headers: { 'content-type': 'image/png' } });
    const res = await fetch(p.url, { method: p.method, headers: p.headers, body: PNG });
    expect(res.status, await res.text()).toBe(200);
    expect(await store.head(key)).toEqual({ size: PNG.byteLength, contentType: 'image/png' });
    expect(await store.get(key)).toEqual(PNG);
    const download = await fetch(await store.signedDownloadUrl(key, 60));
    expect(Buffer.from(await download.arrayBuffer())).toEqual(PNG);
    expect(await store.head(newUploadKey(TENANT, 'image/png'))).toBeUndefined();
  });

  test('a tampered and an expired presigned URL are refused with 403', async () => {
    const key = newUploadKey(TENANT, 'image/png');
    const p = await store.presignUpload({ key, contentType: 'image/png', size: PNG.byteLength, expiresInS: 60 });
    const tampered = new URL(p.url);
    tampered.pathname = tampered.pathname.replace(/[^/]+$/, 'other.png');
    expect((await fetch(tampered, { method: 'PUT', headers: p.headers, body: PNG })).status).toBe(403);
    const sig = new URL(p.url);
    sig.searchParams.set('X-Amz-Signature', '0'.repeat(64));
    expect((await fetch(sig, { method: 'PUT', headers: p.headers, body: PNG })).status).toBe(403);

    const short = await store.presignUpload({ key, contentType: 'image/png', size: PNG.byteLength, expiresInS: 1 });
    await new Promise((r) => setTimeout(r, 2_100));
    expect((await fetch(short.url, { method: 'PUT', headers: short.headers, body: PNG })).status).toBe(403);
    expect(await store.head(key)).toBeUndefined();
  });
});
