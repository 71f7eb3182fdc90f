import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createApiKey, revokeApiKey } from '#shared/auth/api-keys.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { runCli } from '../test/helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { waitFor } from '../test/helpers/wait.js';

// `leasehold start` as a developer runs it, against this file's database (DATABASE_URL), each run
// with a data directory of its own unless a test shares one between two starts.
const ROOT = fileURLToPath(new URL('..', import.meta.url));
let db: TestDatabase;
const children: ChildProcess[] = [];
const dirs: string[] = [];
beforeAll(async () => (db = await createTestDatabase()));
afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => (c.kill('SIGTERM'), exited(c))));
});
afterAll(async () => {
  await db?.drop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const newDataDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'leasehold-start-'));
  dirs.push(dir);
  return dir;
};

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))));

interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

/** Runs `leasehold start [--json]` until `ready` finds what it waits for in stdout, or the process exits. */
async function start(env: Record<string, string>, args: string[] = [], ready = /Leasehold is running at/): Promise<Started & { code?: number | null }> {
  const full: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: db.url,
    LEASEHOLD_DATA_DIR: newDataDir(),
    PORT: '0',
    LOG_LEVEL: 'info',
    WORKER_SHUTDOWN_GRACE_MS: '1000',
    ...env,
  };
  if (!('LEASEHOLD_API_KEY' in env)) delete full.LEASEHOLD_API_KEY;
  const child = spawn(process.execPath, ['scripts/leasehold.mjs', 'start', ...args], { cwd: ROOT, env: full, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const gone = exited(child).then((code) => ({ code }));
  const result = await Promise.race([waitFor(() => ready.test(out), `leasehold start (output: ${out}${err})`, 90_000).then(() => ({})), gone]);
  return { child, stdout: () => out, stderr: () => err, ...result };
}

/** The key the banner shows, and its note. */
function bannerKey(out: string): { key: string; note: string | undefined } {
  const m = /^ {2}API key: +(\S+)(?: {2}\((.+)\))?$/m.exec(out);
  expect(m, `no key in the banner:\n${out}`).toBeTruthy();
  return { key: m![1]!, note: m![2] };
}

const urlOf = (out: string) => /Leasehold is running at (\S+)/.exec(out)![1]!;

/** The status GET /v1/jobs answers to `key` on the started server. */
const statusFor = async (url: string, key: string) => (await fetch(`${url}/v1/jobs`, { headers: { authorization: `Bearer ${key}` } })).status;

describe('leasehold start prints a working development key', () => {
  test('LEASEHOLD_API_KEY=test-key is the key it prints, and it works as a Bearer key with the admin scope', async () => {
    const run = await start({ LEASEHOLD_API_KEY: 'test-key' });
    expect(run.code, run.stderr()).toBeUndefined();
    expect(bannerKey(run.stdout())).toEqual({ key: 'test-key', note: 'from LEASEHOLD_API_KEY' });
    expect(run.stdout()).toContain(`curl -H 'Authorization: Bearer test-key' ${urlOf(run.stdout())}/v1/jobs`);
    const url = urlOf(run.stdout());
    expect(await statusFor(url, 'test-key')).toBe(200);
    expect((await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer test-key' } })).status).toBe(200);
    // Only the banner holds it: no log line does.
    expect(run.stdout().split('\n').filter((l) => l.includes('test-key')).every((l) => !l.startsWith('{'))).toBe(true);
  }, 180_000);

  test('a second start prints the key the first one generated; after a revoke, a new one', async () => {
    const dir = newDataDir();
    const first = await start({ LEASEHOLD_DATA_DIR: dir });
    const made = bannerKey(first.stdout());
    expect(await statusFor(urlOf(first.stdout()), made.key)).toBe(200);
    first.child.kill('SIGTERM');
    expect(await exited(first.child)).toBe(0);

    const second = await start({ LEASEHOLD_DATA_DIR: dir });
    expect(bannerKey(second.stdout()).key).toBe(made.key);
    expect([made.note, bannerKey(second.stdout()).note]).toEqual([`new, kept in ${path.join(dir, 'dev-api-key')}`, `kept in ${path.join(dir, 'dev-api-key')}`]);
    expect(await statusFor(urlOf(second.stdout()), made.key)).toBe(200);
    second.child.kill('SIGTERM');
    expect(await exited(second.child)).toBe(0);

    expect(await revokeApiKey(db.sql, made.key.split('_')[1]!)).toBe(true);
    const third = await start({ LEASEHOLD_DATA_DIR: dir });
    const remade = bannerKey(third.stdout());
    expect(remade.key).not.toBe(made.key);
    expect(remade.note).toMatch(/^new, kept in /);
    expect(await statusFor(urlOf(third.stdout()), remade.key)).toBe(200);
  }, 180_000);

  test('non-admin keys of the development tenant (leasehold keys create) do not stop it from making one', async () => {
    const made = await runCli(['keys', 'create', '--scopes', 'jobs:read', '--json'], { DATABASE_URL: db.url });
    expect(made.code, made.stderr).toBe(0);
    expect(made.json()).toMatchObject({ tenant: 'dev' });
    const run = await start({});
    const { key } = bannerKey(run.stdout());
    const url = urlOf(run.stdout());
    expect((await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
  }, 180_000);

  test('--json prints one JSON line with the URL and the key', async () => {
    const run = await start({ LEASEHOLD_API_KEY: 'json-demo-key' }, ['--json'], /"api_key"/);
    const line = run.stdout().split('\n').find((l) => l.includes('"api_key"'))!;
    const banner = JSON.parse(line);
    expect(banner).toEqual({ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/), docs: `${banner.url}/docs`, dashboard: `${banner.url}/dashboard`, api_key: 'json-demo-key', api_key_source: 'LEASEHOLD_API_KEY' });
    expect(await statusFor(banner.url, 'json-demo-key')).toBe(200);
  }, 180_000);
});

describe('leasehold start refuses a LEASEHOLD_API_KEY it cannot use', () => {
  test('a revoked key, or one with the prefix of another key, ends the start with one line saying what to do', async () => {
    const dev = await ensureTenant(db.sql, 'dev', 'Development');
    const { key: revoked } = await createApiKey(db.sql, { tenantId: dev.id, name: 'old', scopes: ['admin'] });
    await revokeApiKey(db.sql, revoked.split('_')[1]!);
    const { key: other } = await createApiKey(db.sql, { tenantId: dev.id, name: 'other', scopes: ['admin'] });
    const sharesPrefix = `lh_${other.split('_')[1]}_${'B'.repeat(43)}`;
    for (const [key, reason] of [[revoked, /was revoked at/], [sharesPrefix, /has the lookup prefix of another API key/]] as const) {
      const run = await start({ LEASEHOLD_API_KEY: key });
      expect(run.code, run.stdout()).toBe(1);
      const lines = run.stderr().trim().split('\n');
      expect(lines, run.stderr()).toHaveLength(1);
      expect(lines[0]).toMatch(/^leasehold start: LEASEHOLD_API_KEY /);
      expect(lines[0]).toMatch(reason);
      expect(lines[0]).toMatch(/set LEASEHOLD_API_KEY to another value, or unset it for a generated key$/);
      expect(run.stdout() + run.stderr()).not.toContain(key);
    }
    const [row] = await db.sql`select revoked_at from leasehold.api_keys where prefix = ${revoked.split('_')[1]!}`;
    expect(row!.revoked_at).not.toBeNull();
  }, 180_000);

  test('a key with whitespace is a configuration error naming the variable, not the value', async () => {
    const run = await runCli(['start'], { DATABASE_URL: db.url, LEASEHOLD_API_KEY: 'my demo key' });
    expect(run.code).toBe(78);
    expect(run.stderr).toContain('LEASEHOLD_API_KEY: must be 1 to 512 visible ASCII characters, with no spaces');
    expect(run.stdout + run.stderr).not.toContain('demo');
  });
});
