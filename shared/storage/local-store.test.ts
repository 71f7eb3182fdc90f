import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { InvalidStorageKey, ObjectMissing, ObjectTooLarge, newUploadKey } from './keys.js';
import { LocalObjectStore } from './local-store.js';

const TENANT = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
const UUID = '0190a1b2-c3d4-7e5f-8a9b-000000000001';
const store = (now = Date.now) => new LocalObjectStore({ dataDir: mkdtempSync(path.join(tmpdir(), 'local-store-')), secret: 'x'.repeat(32), now });

describe('LocalObjectStore', () => {
  test('keys outside uploads/<tenant>/<uuid>/<safe-name> are refused before touching the disk', async () => {
    const s = store();
    for (const key of [`uploads/${TENANT}/../${TENANT}/${UUID}/a.png`, `/etc/passwd`, `uploads/${TENANT}/${UUID}/..`, `uploads/${TENANT}/a.png`, `uploads/${TENANT}/${UUID}/a/b.png`, `uploads/${TENANT}/${UUID}/.hidden`]) {
      await expect(s.put(key, Buffer.from('x'), 'image/png'), key).rejects.toBeInstanceOf(InvalidStorageKey);
      await expect(s.head(key), key).rejects.toBeInstanceOf(InvalidStorageKey);
    }
  });

  test('new keys sanitise the file name and stay under the tenant prefix', () => {
    expect(newUploadKey(TENANT, 'image/png', '../../etc/pass wd')).toMatch(new RegExp(`^uploads/${TENANT}/[0-9a-f-]{36}/pass_wd$`));
    expect(newUploadKey(TENANT, 'image/jpeg', '...')).toMatch(/\/upload\.jpg$/);
  });

  test('put, head, get; a missing object is ObjectMissing; signatures cover every parameter and expire', async () => {
    let now = 1_700_000_000_000;
    const s = store(() => now);
    const key = `uploads/${TENANT}/${UUID}/a.png`;
    await s.put(key, Buffer.from('abc'), 'image/png');
    expect(await s.head(key)).toEqual({ size: 3, contentType: 'image/png' });
    expect(await s.get(key, { maxBytes: 3 })).toEqual(Buffer.from('abc'));
    await expect(s.get(`uploads/${TENANT}/${UUID}/b.png`, { maxBytes: 3 })).rejects.toBeInstanceOf(ObjectMissing);
    await expect(s.get(key, { maxBytes: 2 })).rejects.toMatchObject(new ObjectTooLarge(key, 2, 3, true));

    const q = Object.fromEntries(new URL((await s.presignUpload({ key, contentType: 'image/png', size: 3, expiresInS: 60 })).url, 'http://x').searchParams);
    expect(s.verifyUpload(q)).toEqual({ key, contentType: 'image/png', size: 3 });
    for (const field of ['key', 'exp', 'ct', 'size', 'sig']) expect(s.verifyUpload({ ...q, [field]: `${q[field]}0` }), field).toHaveProperty('refused');
    now += 61_000;
    expect(s.verifyUpload(q)).toEqual({ refused: 'the upload URL has expired' });
  });
});
