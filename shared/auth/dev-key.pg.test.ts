import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { testLog } from '../../test/helpers/engine.js';
import { createApiKey, keyLookup, revokeApiKey, verifyApiKey } from './api-keys.js';
import { DEV_KEY_FILE, DevKeyConflict, ensureDevKey } from './dev-key.js';
import { DEV_TENANT_SLUG, ensureTenant } from './tenants.js';

let db: TestDatabase;
const dirs: string[] = [];
beforeAll(async () => (db = await createTestDatabase()));
afterAll(async () => {
  await db?.drop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const dataDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'leasehold-dev-key-'));
  dirs.push(dir);
  return dir;
};
const devTenant = () => ensureTenant(db.sql, DEV_TENANT_SLUG, 'Development');
/** The rows stored for a key text, found the way verifyApiKey finds them. */
const rowsOf = (key: string) =>
  db.sql<{ name: string; tenant_id: string; scopes: string[]; revoked_at: Date | null }[]>`
    select name, tenant_id, scopes, revoked_at from leasehold.api_keys where prefix = ${keyLookup(key)!.prefix}`;

/** ensureDevKey's DevKeyConflict for `configured`, or a failure when it succeeds or throws anything else. */
async function conflict(configured: string): Promise<DevKeyConflict> {
  const err = await ensureDevKey(db.sql, { configured, dataDir: dataDir(), log: testLog }).then(
    () => new Error(`ensureDevKey accepted ${configured}`),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DevKeyConflict);
  const message = (err as Error).message;
  expect(message).not.toContain(configured);
  expect(message).toMatch(/: set LEASEHOLD_API_KEY to another value, or unset it for a generated key$/);
  expect(message).not.toContain('\n');
  return err as DevKeyConflict;
}

describe('LEASEHOLD_API_KEY', () => {
  test('a plain chosen text (test-key) becomes an admin key of the development tenant, once', async () => {
    const dev = await devTenant();
    const first = await ensureDevKey(db.sql, { configured: 'test-key', dataDir: dataDir(), log: testLog });
    expect(first).toMatchObject({ key: 'test-key', source: 'LEASEHOLD_API_KEY', tenant: { id: dev.id } });
    expect(await verifyApiKey(db.sql, 'test-key')).toMatchObject({ tenantId: dev.id, scopes: ['jobs:write', 'jobs:read', 'admin'] });
    const again = await ensureDevKey(db.sql, { configured: 'test-key', dataDir: dataDir(), log: testLog });
    expect(again.key).toBe('test-key');
    expect(await rowsOf('test-key')).toEqual([{ name: 'LEASEHOLD_API_KEY', tenant_id: dev.id, scopes: ['jobs:write', 'jobs:read', 'admin'], revoked_at: null }]);
  });

  test('a key with the prefix of another but another secret is a conflict, not a key that would get 401', async () => {
    const { key: other } = await createApiKey(db.sql, { tenantId: (await devTenant()).id, name: 'other', scopes: ['admin'] });
    const [, prefix] = other.split('_');
    const mine = `lh_${prefix}_${'A'.repeat(43)}`;
    expect((await conflict(mine)).message).toMatch(/^LEASEHOLD_API_KEY has the lookup prefix of another API key \(key [0-9a-f-]{36}\) but not its secret/);
    expect(await verifyApiKey(db.sql, mine)).toBeUndefined();
    expect(await verifyApiKey(db.sql, other)).toBeDefined();
  });

  test('a revoked key stays revoked: the start fails and says so', async () => {
    await ensureDevKey(db.sql, { configured: 'revoked-demo-key', dataDir: dataDir(), log: testLog });
    expect(await revokeApiKey(db.sql, keyLookup('revoked-demo-key')!.prefix)).toBe(true);
    expect((await conflict('revoked-demo-key')).message).toMatch(/^LEASEHOLD_API_KEY was revoked at \d{4}-\d\d-\d\dT[\d:.]+Z \(key [0-9a-f-]{36}\); start does not bring a revoked key back/);
    expect(await verifyApiKey(db.sql, 'revoked-demo-key')).toBeUndefined();
    expect((await rowsOf('revoked-demo-key'))[0]!.revoked_at).not.toBeNull();
  });

  test("another tenant's key, or one without the admin scope, is a conflict too", async () => {
    const acme = await ensureTenant(db.sql, 'acme-dev-key');
    await createApiKey(db.sql, { tenantId: acme.id, name: 'acme', scopes: ['admin'], key: 'acme-demo-key' });
    expect((await conflict('acme-demo-key')).message).toMatch(/^LEASEHOLD_API_KEY belongs to tenant "acme-dev-key" \(key [0-9a-f-]{36}\), not to the development tenant "dev"/);
    await createApiKey(db.sql, { tenantId: (await devTenant()).id, name: 'reader', scopes: ['jobs:read'], key: 'reader-demo-key' });
    expect((await conflict('reader-demo-key')).message).toMatch(/^LEASEHOLD_API_KEY lacks the admin scope \(key [0-9a-f-]{36} has jobs:read\)/);
    expect(await verifyApiKey(db.sql, 'reader-demo-key')).toMatchObject({ scopes: ['jobs:read'] });
  });
});

describe('the generated development key', () => {
  test('is made once, kept (0600) with the id of its database\'s development tenant, and returned by every later start', async () => {
    const dir = dataDir();
    const first = await ensureDevKey(db.sql, { dataDir: dir, log: testLog });
    const file = path.join(dir, DEV_KEY_FILE);
    expect(first).toMatchObject({ source: 'created', file });
    expect(first.key).toMatch(/^lh_[a-z0-9]{10}_[A-Za-z0-9_-]{43}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ key: first.key, dev_tenant_id: (await devTenant()).id });
    const second = await ensureDevKey(db.sql, { dataDir: dir, log: testLog });
    expect(second).toMatchObject({ key: first.key, source: 'saved', file });
    expect(await verifyApiKey(db.sql, second.key)).toMatchObject({ scopes: expect.arrayContaining(['admin']) });
  });

  test('other keys of the development tenant do not stand in for it', async () => {
    const dev = await devTenant();
    await createApiKey(db.sql, { tenantId: dev.id, name: 'ci', scopes: ['jobs:read', 'jobs:write'] });
    const made = await ensureDevKey(db.sql, { dataDir: dataDir(), log: testLog });
    expect(made.source).toBe('created');
    expect(await verifyApiKey(db.sql, made.key)).toMatchObject({ tenantId: dev.id, scopes: expect.arrayContaining(['admin']) });
  });

  test('a revoked saved key, a key of another database and an unreadable file each give a new key, saved over the old', async () => {
    const dir = dataDir();
    const file = path.join(dir, DEV_KEY_FILE);
    const first = await ensureDevKey(db.sql, { dataDir: dir, log: testLog });
    expect(await revokeApiKey(db.sql, first.key.split('_')[1]!)).toBe(true);
    const second = await ensureDevKey(db.sql, { dataDir: dir, log: testLog });
    expect(second.source).toBe('created');
    expect(second.key).not.toBe(first.key);
    expect(await verifyApiKey(db.sql, second.key)).toBeDefined();
    expect(JSON.parse(readFileSync(file, 'utf8')).key).toBe(second.key);

    // A key that works here but was saved for another database is not shown for this one.
    writeFileSync(file, JSON.stringify({ key: second.key, dev_tenant_id: '00000000-0000-7000-8000-000000000001' }));
    const third = await ensureDevKey(db.sql, { dataDir: dir, log: testLog });
    expect(third.source).toBe('created');
    expect(third.key).not.toBe(second.key);

    writeFileSync(file, 'not json');
    const fourth = await ensureDevKey(db.sql, { dataDir: dir, log: testLog });
    expect(fourth.source).toBe('created');
    expect(JSON.parse(readFileSync(file, 'utf8')).key).toBe(fourth.key);
  });
});
