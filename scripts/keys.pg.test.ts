import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApi } from '../test/helpers/api.js';
import { runCli } from '../test/helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';

let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(async () => db?.drop());

/** The real CLI against this file's database. */
const leasehold = (...args: string[]) => runCli(args, { DATABASE_URL: db.url, LOG_LEVEL: 'info' });

/** What a fresh API process (no key cache) answers to this credential on an unknown /v1 route: 404 when authenticated, 401 when not. */
async function statusFor(key: string): Promise<number> {
  const res = await createTestApi(db.sql).request(key, 'GET', '/v1/cli-key-probe');
  return res.status;
}

interface Created {
  key: string;
  id: string;
  prefix: string;
  tenant: string;
  scopes: string;
}

async function createKey(...flags: string[]): Promise<Created> {
  const run = await leasehold('keys', 'create', '--json', ...flags);
  expect(run.code, run.stderr).toBe(0);
  return run.json();
}

describe('leasehold tenants', () => {
  test('create makes a tenant once (idempotent by slug), ls lists it, a bad slug exits 64', async () => {
    const first = await leasehold('tenants', 'create', 'acme', '--name', 'Acme Corp', '--json');
    expect(first.code, first.stderr).toBe(0);
    const tenant = first.json();
    expect(tenant).toMatchObject({ slug: 'acme', name: 'Acme Corp', external_id: null, id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const again = await leasehold('tenants', 'create', 'acme', '--json');
    expect(again.json().id).toBe(tenant.id);
    const ls = await leasehold('tenants', 'ls', '--json');
    expect(ls.json().filter((t: { slug: string }) => t.slug === 'acme')).toEqual([expect.objectContaining({ id: tenant.id })]);
    const bad = await leasehold('tenants', 'create', 'Not A Slug');
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('usage: leasehold tenants create');
  });
});

describe('leasehold keys', () => {
  test('create prints the key once, with the note to store it; the key authenticates as its tenant', async () => {
    const run = await leasehold('keys', 'create', '--tenant', 'printer', '--name', 'ci', '--scopes', 'jobs:read');
    expect(run.code, run.stderr).toBe(0);
    const key = /^key\s+(lh_\S+)$/m.exec(run.stdout)?.[1];
    expect(key, run.stdout).toMatch(/^lh_[a-z0-9]{10}_[A-Za-z0-9_-]{43}$/);
    expect(run.stdout.split(key!).length - 1).toBe(1);
    expect(run.stdout).toMatch(/shown once/);
    expect(run.stdout).toMatch(/^scopes\s+jobs:read$/m);
    expect(run.stderr).not.toContain(key!);
    expect(await statusFor(key!)).toBe(404);
    const [row] = await db.sql`
      select k.name, k.scopes, t.slug from leasehold.api_keys k join leasehold.tenants t on t.id = k.tenant_id
      where k.prefix = ${key!.split('_')[1]!}`;
    expect(row).toEqual({ name: 'ci', scopes: ['jobs:read'], slug: 'printer' });
  });

  test('ls never shows a secret, in JSON or as a table', async () => {
    const made = await createKey('--tenant', 'lister', '--scopes', 'jobs:read,jobs:write,admin');
    const secret = made.key.slice(`lh_${made.prefix}_`.length);
    const [json, table] = await Promise.all([leasehold('keys', 'ls', '--json'), leasehold('keys', 'ls')]);
    for (const run of [json, table]) {
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain(made.prefix);
      expect(run.stdout).not.toContain(secret);
      expect(run.stdout).not.toContain(made.key);
      expect(run.stdout).not.toMatch(/secret|sha256/i);
    }
    const listed = json.json().find((k: { id: string }) => k.id === made.id);
    expect(listed).toMatchObject({ prefix: made.prefix, tenant: 'lister', scopes: 'jobs:read,jobs:write,admin', revoked_at: null });
    expect(Object.keys(listed).sort()).toEqual(['created_at', 'id', 'last_used_at', 'name', 'prefix', 'revoked_at', 'scopes', 'tenant', 'tenant_id']);
  });

  test('revoke by id and by prefix: the key then gets 401; revoking again exits 1', async () => {
    const [byId, byPrefix] = await Promise.all([createKey('--tenant', 'revoker'), createKey('--tenant', 'revoker')]);
    expect(await statusFor(byId.key)).toBe(404);
    expect(await statusFor(byPrefix.key)).toBe(404);
    for (const target of [byId.id, byPrefix.prefix]) {
      const run = await leasehold('keys', 'revoke', target, '--json');
      expect(run.code, run.stderr).toBe(0);
      expect(run.json()).toEqual({ key: target, revoked: true });
    }
    expect(await statusFor(byId.key)).toBe(401);
    expect(await statusFor(byPrefix.key)).toBe(401);
    const again = await leasehold('keys', 'revoke', byId.id, '--json');
    expect(again.code).toBe(1);
    expect(again.json()).toMatchObject({ revoked: false });
    expect(again.stderr).toBe('leasehold keys revoke: no active key with that id or prefix\n');
    const listed = (await leasehold('keys', 'ls', '--json')).json().filter((k: { tenant: string }) => k.tenant === 'revoker');
    expect(listed.map((k: { revoked_at: string | null }) => k.revoked_at !== null)).toEqual([true, true]);
  });

  test('a key is a tenant key (jobs:read, jobs:write) unless --scopes asks for admin, which comes with a warning', async () => {
    const plain = await createKey('--tenant', 'defaults');
    expect(plain).toMatchObject({ scopes: 'jobs:read,jobs:write', note: 'shown once: store it now' });
    const operator = await createKey('--tenant', 'defaults', '--scopes', 'admin');
    expect(operator).toMatchObject({ scopes: 'admin', note: expect.stringContaining('admin acts on every tenant') });
    const help = await leasehold('--help');
    expect(help.stdout).toMatch(/keys create .*--scopes jobs:read,jobs:write\]/);
    expect(help.stdout).toMatch(/admin is for operators/);
  });

  test('bad --scopes and a missing revoke target exit 64 and create nothing', async () => {
    const before = await db.sql`select count(*)::int as n from leasehold.api_keys`;
    for (const scopes of ['jobs:delete', 'admin,root', '']) {
      const run = await leasehold('keys', 'create', '--tenant', 'bad-scopes', '--scopes', scopes);
      expect(run.code, `--scopes ${JSON.stringify(scopes)}: ${run.stderr}`).toBe(64);
      expect(run.stderr).toContain('usage: leasehold keys create');
      expect(run.stdout).not.toMatch(/lh_/);
    }
    const missing = await leasehold('keys', 'revoke');
    expect(missing.code).toBe(64);
    expect(await db.sql`select count(*)::int as n from leasehold.api_keys`).toEqual(before);
  });
});
