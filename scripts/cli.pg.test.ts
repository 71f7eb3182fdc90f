import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { connect } from '#shared/db/connect.js';
import { runCli } from '../test/helpers/cli.js';
import { createTestDatabase, withDatabase, type TestDatabase } from '../test/helpers/db.js';
import { seedOperatorFixture } from '../test/helpers/operator-fixture.js';
import { readMigrations } from '#shared/db/migrator.js';

/** The CLI against this file's test database, logging at info so stray log lines would show. */
const leasehold = (args: string[], env: Record<string, string> = {}) =>
  runCli(args, { DATABASE_URL: db.url, LOG_LEVEL: 'info', ...env });

let db: TestDatabase;
const emptyDatabases: string[] = [];
beforeAll(async () => (db = await createTestDatabase()));
afterAll(async () => {
  const admin = connect(inject('pgAdminUrl'), { max: 1 });
  for (const name of emptyDatabases) await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.end();
  await db.drop();
});

describe('leasehold migrate', () => {
  test('on an empty database asks for migrate first, then applies every migration once', async () => {
    const name = `t_cli_${randomBytes(5).toString('hex')}`;
    const admin = connect(inject('pgAdminUrl'), { max: 1 });
    await admin.unsafe(`create database ${name} template template0`).finally(() => admin.end());
    emptyDatabases.push(name);
    const env = { DATABASE_URL: withDatabase(inject('pgAdminUrl'), name) };

    const early = await leasehold(['jobs', 'ls', '--json'], env);
    expect(early.code).toBe(1);
    expect(early.json().error).toMatch(/schema is behind .*run "leasehold migrate"/);
    expect(early.stderr).toContain('run "leasehold migrate"');

    const first = await leasehold(['migrate', '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.json()).toEqual({ applied: readMigrations().map((m) => `${m.version}_${m.name}`) });
    const again = await leasehold(['migrate', '--json'], env);
    expect(again.json()).toEqual({ applied: [] });
    expect((await leasehold(['migrate'], env)).stdout).toContain('nothing to apply');
  });
});

describe('leasehold jobs', () => {
  test('ls lists jobs as JSON, filtered by status, and refuses a bad --limit or --status', async () => {
    const f = await seedOperatorFixture(db.sql);
    const all = await leasehold(['jobs', 'ls', '--json', '--limit', '1000']);
    expect(all.code, all.stderr).toBe(0);
    const byId = new Map(all.json().map((j: { id: string; status: string }) => [j.id, j.status]));
    expect([f.queued, f.running, f.succeeded, f.failed].map((id) => byId.get(id))).toEqual(['queued', 'running', 'succeeded', 'failed']);
    const [failedRun, twoRun] = await Promise.all([
      leasehold(['jobs', 'ls', '--status', 'failed', '--json']),
      leasehold(['jobs', 'ls', '--limit', '2', '--json']),
    ]);
    const failed = failedRun.json();
    expect(failed.every((j: { status: string }) => j.status === 'failed')).toBe(true);
    expect(failed.map((j: { id: string }) => j.id)).toContain(f.failed);
    expect(twoRun.json()).toHaveLength(2);
    const bad = [['--limit', '-5'], ['--limit', 'many'], ['--status', 'stuck']];
    const runs = await Promise.all(bad.map((flags) => leasehold(['jobs', 'ls', ...flags])));
    expect(runs.map((r) => r.code)).toEqual([64, 64, 64]);
    runs.forEach((r, i) => expect(r.stderr).toContain(bad[i]![0]));
  });

  test('show prints the job and its events; an unknown id exits 1, a malformed one 64', async () => {
    const f = await seedOperatorFixture(db.sql);
    const run = await leasehold(['jobs', 'show', f.failed, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json()).toMatchObject({ id: f.failed, status: 'failed', attempts: 3, last_error: 'boom 3', events: [{ type: 'job.failed', attempt: 3 }] });
    const unknown = await leasehold(['jobs', 'show', '00000000-0000-7000-8000-000000000000', '--json']);
    expect([unknown.code, unknown.json()]).toEqual([1, { error: 'no job 00000000-0000-7000-8000-000000000000' }]);
    expect((await leasehold(['jobs', 'show', 'nope'])).code).toBe(64);
  });

  test('with --json a malformed command line says so on stdout as JSON too (exit 64), and stderr keeps the usage line', async () => {
    const [malformed, flag, unknown] = await Promise.all([
      leasehold(['jobs', 'show', 'nope', '--json']),
      leasehold(['jobs', 'ls', '--limit', 'many', '--json']),
      leasehold(['frobnicate', '--json']),
    ]);
    expect([malformed.code, malformed.json(), malformed.stderr]).toEqual([64, { error: 'usage: leasehold jobs show <job-id>', usage: true }, 'usage: leasehold jobs show <job-id>\n']);
    expect(flag.code).toBe(64);
    expect(flag.json()).toEqual({ error: expect.stringContaining('--limit'), usage: true });
    expect([unknown.code, unknown.json()]).toEqual([64, { error: 'unknown command "frobnicate"', usage: true }]);
  });

  test('cancel ends a queued job, asks a running one to stop, and refuses a finished one', async () => {
    const f = await seedOperatorFixture(db.sql);
    const queued = await leasehold(['jobs', 'cancel', f.queued, '--json']);
    expect([queued.code, queued.json()]).toEqual([0, { id: f.queued, status: 'cancelled' }]);
    const running = await leasehold(['jobs', 'cancel', f.running, '--json']);
    expect(running.code).toBe(0);
    expect(running.json()).toMatchObject({ id: f.running, status: 'running', note: expect.stringContaining('cancellation requested') });
    const done = await leasehold(['jobs', 'cancel', f.succeeded, '--json']);
    expect(done.code).toBe(1);
    expect(done.json()).toMatchObject({ status: 'succeeded', reason: expect.stringContaining('already ended') });
    expect(done.stderr).toBe(`leasehold jobs cancel: the job already ended succeeded; only queued or running jobs can be cancelled\n`);
    const rows = await db.sql`select id, status::text, cancel_requested_at is not null as asked from leasehold.jobs
                              where id in ${db.sql([f.queued, f.running, f.succeeded])} order by status`;
    expect(rows.map((r) => [r.id, r.status, r.asked])).toEqual([
      [f.queued, 'cancelled', true], [f.running, 'running', true], [f.succeeded, 'succeeded', false],
    ]);
  });

  test('retry puts a failed job back in its queue with a fresh attempt budget', async () => {
    const f = await seedOperatorFixture(db.sql);
    const run = await leasehold(['jobs', 'retry', f.failed, '--json']);
    expect([run.code, run.json()]).toEqual([0, { id: f.failed, retried: true }]);
    const [job] = await db.sql`select status::text, attempts from leasehold.jobs where id = ${f.failed}`;
    expect(job).toEqual({ status: 'queued', attempts: 0 });
    const twice = await leasehold(['jobs', 'retry', f.failed, '--json']);
    expect(twice.code).toBe(1);
    expect(twice.json()).toMatchObject({ retried: false });
    expect(twice.stderr).toBe('leasehold jobs retry: only failed or cancelled jobs can be retried\n');
  });
});

describe('leasehold errors', () => {
  test('an unknown command exits 64 and shows the usage', async () => {
    const run = await leasehold(['frobnicate']);
    expect(run.code).toBe(64);
    expect(run.stderr).toContain('unknown command "frobnicate"');
    expect(run.stderr).toContain('usage: leasehold <command>');
  });

  test('an unknown option exits 64 naming it (as JSON too with --json); a value that starts with a dash is still a value', async () => {
    const [plain, json, short] = await Promise.all([
      leasehold(['stats', '--bogus']),
      leasehold(['jobs', 'ls', '--json', '--statuss=queued']),
      leasehold(['stats', '-x']),
    ]);
    expect([plain.code, plain.stdout, plain.stderr]).toEqual([64, '', 'leasehold: unknown option --bogus; see leasehold --help\n']);
    expect([json.code, json.json()]).toEqual([64, { error: 'unknown option --statuss', usage: true }]);
    expect([short.code, short.stderr]).toEqual([64, 'leasehold: unknown option -x; see leasehold --help\n']);
    // --limit -5 is read as the value -5 (and refused as a limit), not as an unknown option -5.
    const negative = await leasehold(['jobs', 'ls', '--limit', '-5']);
    expect(negative.code).toBe(64);
    expect(negative.stderr).toContain('--limit');
  });

  test('a bad environment value exits non-zero naming every bad key, before touching the database', async () => {
    const run = await leasehold(['stats', '--json'], { PORT: 'abc', WORKER_QUEUES: 'a::2', DATABASE_URL: 'postgres://nowhere.invalid/x' });
    expect(run.code).toBe(78);
    expect(run.stderr).toMatch(/PORT: /);
    expect(run.stderr).toMatch(/WORKER_QUEUES: bad queue spec "a::2"/);
    expect(run.stdout).toBe('');
  });
});
