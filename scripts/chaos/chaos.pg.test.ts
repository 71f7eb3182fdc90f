import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { ROOT } from './harness.js';

// The fast variants of the chaos and load scripts, run as users run them: a child process per
// script, which starts real `leasehold` processes of its own and exits non-zero when an invariant
// breaks. Generous timeouts: these share two cores with the rest of the suite.

/** Runs `node --import tsx scripts/chaos/<script> …args`; resolves with its exit code and output. */
function runScript(script: string, args: string[], env: Record<string, string | undefined>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `scripts/chaos/${script}`, ...args], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** The summary line a script printed (its name, then ok or FAILED). */
const summary = (out: string, name: string) => out.split('\n').find((l) => l.startsWith(`${name} `)) ?? `(no summary line) ${out.slice(-2000)}`;

// The restart needs postgres.js with patches/postgres+3.4.9.patch applied (`npx patch-package`):
// unpatched, a write that outlives its socket throws an uncaught TypeError and the API dies.
const postgresJs = readFileSync(createRequire(import.meta.url).resolve('postgres').replace(/cjs\/src\/index\.js$/, 'src/connection.js'), 'utf8');
const patched = postgresJs.includes('porsager/postgres#1208');

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('chaos and load scripts (fast variants)', () => {
  test('chaos:kill: 1,000 jobs, 3 SIGKILLed workers, every job succeeded exactly once and rescued in time', async () => {
    const { code, out } = await runScript(
      'kill-loop.ts',
      ['--jobs', '1000', '--max-sleep-ms', '300', '--kill-every-ms', '700', '--max-kills', '3', '--concurrency', '5', '--lease-ms', '2000', '--heartbeat-ms', '500', '--reclaim-ms', '250', '--slack-ms', '5000'],
      { DATABASE_URL: db.url },
    );
    // Kills wait until at most one replacement is still starting; on a loaded machine replacements
    // take seconds, and the work may end before the third kill (seen once in a full parallel run).
    expect(summary(out, 'chaos:kill')).toMatch(/^chaos:kill ok: 1000 jobs, 4 workers, [1-3] SIGKILLs, [1-9]\d* held jobs rescued .* 1000 job\.succeeded events for 1000 succeeded jobs/);
    expect(code).toBe(0);
  }, 240_000);

  test('chaos:kill exits 1 and names the broken invariant when jobs are left over', async () => {
    const { code, out } = await runScript('kill-loop.ts', ['--jobs', '200', '--workers', '1', '--timeout-s', '0'], { DATABASE_URL: db.url });
    expect(summary(out, 'chaos:kill')).toMatch(/^chaos:kill FAILED: .* broken: \d+ jobs not succeeded after 0 s/);
    expect(code).toBe(1);
  }, 120_000);

  test.skipIf(!patched)('chaos:pg-restart: 503 problems while PostgreSQL is down, recovery by itself, one job per request', async () => {
    const { code, out } = await runScript('pg-restart.ts', ['--rate', '30', '--workers', '1', '--before-s', '2', '--down-s', '2', '--after-s', '3', '--hang-ms', '20000'], {});
    expect(summary(out, 'chaos:pg-restart')).toMatch(/^chaos:pg-restart ok: \d+ requests at 30\/s, PostgreSQL down 2 s: [1-9]\d* answers 503 and \/ready 503 ×[1-9]/);
    expect(code).toBe(0);
  }, 240_000);

  test('load:ingest: 10 s at a fixed rate with no error and a bounded p99', async () => {
    const { code, out } = await runScript(
      'sustained-ingest.ts',
      ['--rate', '20', '--duration-s', '10', '--window-s', '5', '--workers', '1', '--p99-factor', '10', '--p99-floor-ms', '3000'],
      { DATABASE_URL: db.url },
    );
    expect(summary(out, 'load:ingest')).toMatch(/^load:ingest ok: 200 ingests at 20\/s .* 0 errors/);
    expect(code).toBe(0);
  }, 240_000);
});
