import { userInfo } from 'node:os';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { runCli } from '../test/helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { insertJob } from '../test/helpers/job-factory.js';
import { seedOperatorFixture } from '../test/helpers/operator-fixture.js';

// Each CLI run is a fresh Node process (~1–3 s on a busy 2-core machine), and a test makes several.
vi.setConfig({ testTimeout: 90_000 });

let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());

/** The CLI against this file's database, logging at info so stray log lines on stdout would break --json. */
const leasehold = (args: string[]) => runCli(args, { DATABASE_URL: db.url, LOG_LEVEL: 'info' });
const ME = `cli:${userInfo().username}`;

describe('leasehold doctor', () => {
  test('explains a queued job in plain words, with its diagnosis, history and errors', async () => {
    const f = await seedOperatorFixture(db.sql);
    await db.sql`select leasehold.pause_queue('images')`;
    const run = await leasehold(['doctor', f.overdue]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`job ${f.overdue}: system.sleep in queue images (tenant system)`);
    expect(run.stdout).toMatch(/why: queued, not running: queue images was paused at .* \[queue_paused\]/);
    expect(run.stdout).toMatch(/history:\n {2}\S+ {2}job\.queued \(attempt 0\)/);

    const json = (await leasehold(['doctor', f.overdue, '--json'])).json();
    expect(json).toMatchObject({ reason: 'queue_paused', job: { id: f.overdue, status: 'queued' }, events: [{ type: 'job.queued' }] });
    await db.sql`select leasehold.resume_queue('images')`;
    // No worker runs at all here: the same job is now waiting for one.
    expect((await leasehold(['doctor', f.overdue, '--json'])).json()).toMatchObject({ reason: 'no_worker' });
  });

  test('says how a failed job ended, with every error and its open dead letter; a stuck lease; a cancellation and by whom', async () => {
    const f = await seedOperatorFixture(db.sql);
    const failed = await leasehold(['doctor', f.failed]);
    expect(failed.code).toBe(0);
    expect(failed.stdout).toContain(`failed for good`);
    expect(failed.stdout).toContain(`after 3 of 3 attempt(s): boom 3; dead letter ${f.deadLetter} is open: requeue it with "leasehold dlq requeue ${f.deadLetter}"`);
    expect(failed.stdout).toMatch(/errors:\n {2}attempt 1 at .*: boom 1\n {2}attempt 2 at .*: boom 2\n {2}attempt 3 at .*: boom 3/);
    expect(failed.stdout).toContain('last error: boom 3');

    const stuck = (await leasehold(['doctor', f.expired, '--json'])).json();
    expect(stuck.reason).toBe('lease_expired');
    expect(stuck.explanation).toMatch(/^stuck: held by worker worker-dead \(not seen in the last minute\), whose lease expired 5m \d+s ago/);

    expect((await leasehold(['jobs', 'cancel', f.queued])).code).toBe(0);
    const cancelled = await leasehold(['doctor', f.queued]);
    expect(cancelled.stdout).toMatch(new RegExp(`why: cancelled \\d+s ago by ${ME}; "leasehold jobs retry ${f.queued}" runs it again \\[cancelled\\]`));
    expect(cancelled.stdout).toContain(`job.cancelled (attempt 0) {"by":"${ME}","reason":"cancel"}`);
  });

  test('an unknown job exits 1 with the reason; a malformed id exits 64', async () => {
    const unknown = await leasehold(['doctor', '00000000-0000-7000-8000-000000000000', '--json']);
    expect(unknown.code).toBe(1);
    expect(unknown.json()).toEqual({ error: 'no job 00000000-0000-7000-8000-000000000000' });
    expect(unknown.stderr).toContain('no job');
    const bad = await leasehold(['doctor', 'nope']);
    expect([bad.code, bad.stderr]).toEqual([64, 'usage: leasehold doctor <job-id>\n']);
    expect((await leasehold(['doctor'])).code).toBe(64);
  });
});

describe('leasehold queues', () => {
  test('pause and resume a queue, recorded with the OS user; ls shows depth, paused and live workers', async () => {
    await insertJob(db.sql, { kind: 'system.noop', queue: 'cli-q' });
    const paused = await leasehold(['queues', 'pause', 'cli-q', '--json']);
    expect([paused.code, paused.json()]).toEqual([0, { queue: 'cli-q', paused: true, changed: true }]);
    expect((await leasehold(['queues', 'pause', 'cli-q', '--json'])).json()).toEqual({ queue: 'cli-q', paused: true, changed: false, note: 'it was already paused' });
    const ls = (await leasehold(['queues', 'ls', '--json'])).json();
    expect(ls).toContainEqual(expect.objectContaining({ name: 'cli-q', paused: true, ready: 1, running: 0, live_workers: 0 }));
    const human = await leasehold(['queues', 'ls']);
    expect(human.stdout).toMatch(/^name\s+paused\s+ready/);
    expect((await leasehold(['queues', 'resume', 'cli-q', '--json'])).json()).toEqual({ queue: 'cli-q', paused: false, changed: true });
    const audit = await db.sql`select actor, action from leasehold.admin_actions where target = 'cli-q' order by id`;
    expect(audit).toEqual([{ actor: ME, action: 'pause_queue' }, { actor: ME, action: 'resume_queue' }]);

    const missing = await leasehold(['queues', 'resume', 'no-such-queue']);
    expect([missing.code, missing.stderr]).toEqual([1, 'leasehold queues resume: no queue named no-such-queue\n']);
    expect((await leasehold(['queues', 'pause'])).code).toBe(64);
    expect((await leasehold(['queues', 'frob'])).code).toBe(64);
  });
});

describe('leasehold dlq requeue by filter', () => {
  test('requeues the matching open dead letters and says how many; no filter is refused', async () => {
    const a = await seedOperatorFixture(db.sql);
    await db.sql`update leasehold.dead_letters set last_error = 'image fetch timed out' where id = ${a.deadLetter}`;
    const b = await seedOperatorFixture(db.sql);
    const run = await leasehold(['dlq', 'requeue', '--error', 'timed out', '--kind', 'system.noop', '--json']);
    expect([run.code, run.json()]).toEqual([0, { requeued: 1, filters: { kind: 'system.noop', error: 'timed out' } }]);
    const [ja, jb] = await Promise.all([a.failed, b.failed].map(async (id) => (await db.sql`select status::text from leasehold.jobs where id = ${id}`)[0]!.status));
    expect([ja, jb]).toEqual(['queued', 'failed']);
    expect((await db.sql`select actor from leasehold.admin_actions where action = 'requeue_dead_letters'`)[0]!.actor).toBe(ME);

    const none = await leasehold(['dlq', 'requeue']);
    expect(none.code).toBe(64);
    expect(none.stderr).toContain('--all for every open one');
    expect((await leasehold(['dlq', 'requeue', '--since', 'yesterday-ish'])).code).toBe(64);
    // Dates JavaScript parses but PostgreSQL refuses (year 0000; past 9999 in UTC) are usage errors too.
    for (const since of ['0000-06-01T00:00:00Z', '9999-12-31T23:59:59-15:00']) {
      const run = await leasehold(['dlq', 'requeue', '--since', since]);
      expect(run.code, `${since}: ${run.stderr}`).toBe(64);
      expect(run.stderr).toContain('years 0001 to 9999');
    }
    const tenant = await leasehold(['dlq', 'requeue', '--tenant', 'nobody', '--json']);
    expect([tenant.code, tenant.json()]).toEqual([1, { error: 'no tenant with slug nobody' }]);
    const bad = await leasehold(['dlq', 'requeue', '--error', '(', '--json']);
    expect(bad.code).toBe(1);
    expect(bad.json().error).toMatch(/regular expression/);
  });
});

describe('leasehold jobs extend', () => {
  test('extends a running lease; a queued job has none (exit 1); --by is checked (exit 64)', async () => {
    const f = await seedOperatorFixture(db.sql);
    const run = await leasehold(['jobs', 'extend', f.running, '--by', '600', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json()).toMatchObject({ id: f.running, extended: true });
    expect(new Date(run.json().lease_expires_at).getTime() - Date.now()).toBeGreaterThan(600_000);
    const queued = await leasehold(['jobs', 'extend', f.queued, '--by', '60']);
    expect([queued.code, queued.stderr]).toEqual([1, 'leasehold jobs extend: only a running job has a lease to extend\n']);
    expect((await leasehold(['jobs', 'extend', f.running, '--by', '0'])).code).toBe(64);
    expect((await leasehold(['jobs', 'extend', f.running])).code).toBe(64);
  });
});

describe('leasehold schedules', () => {
  test('add, ls, pause, resume, rm; bad input exits 64 and names the problem, conflicts and unknown names exit 1', async () => {
    const add = await leasehold(['schedules', 'add', 'nightly-sleep', '--cron', '0 3 * * *', '--tz', 'Europe/Paris', '--kind', 'system.sleep',
                                 '--payload', '{"ms":5}', '--json']);
    expect(add.code, add.stderr).toBe(0);
    expect(add.json()).toMatchObject({ name: 'nightly-sleep', cron: '0 3 * * *', timezone: 'Europe/Paris', kind: 'system.sleep', queue: 'default' });
    const ls = (await leasehold(['schedules', 'ls', '--json'])).json();
    expect(ls).toEqual([expect.objectContaining({ name: 'nightly-sleep', enabled: true, payload: { ms: 5 }, tenant: 'system' })]);
    // 03:00 in Paris is 01:00 or 02:00 UTC.
    expect(new Date(ls[0].next_tick_at).getUTCHours()).toBeOneOf([1, 2]);

    expect((await leasehold(['schedules', 'pause', 'nightly-sleep', '--json'])).json()).toEqual({ name: 'nightly-sleep', enabled: false, changed: true });
    expect((await leasehold(['schedules', 'resume', 'nightly-sleep', '--json'])).json()).toEqual({ name: 'nightly-sleep', enabled: true, changed: true });
    const again = await leasehold(['schedules', 'add', 'nightly-sleep', '--cron', '* * * * *', '--kind', 'system.noop', '--json']);
    expect([again.code, again.json()]).toEqual([1, { error: 'a schedule named nightly-sleep exists already' }]);

    const bad = await Promise.all([
      ['--cron', 'whenever', '--kind', 'system.noop'],
      ['--cron', '* * * * *', '--kind', 'system.noop', '--tz', 'Mars/Olympus'],
      ['--cron', '* * * * *', '--kind', 'no.such.kind'],
      ['--cron', '* * * * *', '--kind', 'system.sleep', '--payload', '{"ms":-1}'],
      ['--cron', '* * * * *', '--kind', 'system.noop', '--payload', 'not json'],
      ['--kind', 'system.noop'],
    ].map((flags) => leasehold(['schedules', 'add', 'x', ...flags])));
    expect(bad.map((r) => r.code)).toEqual([64, 64, 64, 64, 64, 64]);
    expect(bad.map((r) => r.stderr)).toEqual([
      expect.stringContaining('bad cron expression "whenever"'),
      expect.stringContaining('unknown time zone "Mars/Olympus"'),
      expect.stringContaining('unknown kind "no.such.kind"'),
      expect.stringContaining('--payload does not fit system.sleep: ms:'),
      expect.stringContaining('--payload must be JSON'),
      expect.stringContaining('needs --cron and --kind'),
    ]);

    expect((await leasehold(['schedules', 'rm', 'nightly-sleep', '--json'])).json()).toEqual({ name: 'nightly-sleep', removed: true });
    const gone = await leasehold(['schedules', 'rm', 'nightly-sleep']);
    expect([gone.code, gone.stderr]).toEqual([1, 'leasehold schedules rm: no schedule named nightly-sleep\n']);
    expect((await leasehold(['schedules', 'pause', 'nightly-sleep'])).code).toBe(1);
    const audit = await db.sql`select action from leasehold.admin_actions where target = 'nightly-sleep' order by id`;
    expect(audit.map((a) => a.action)).toEqual(['add_schedule', 'pause_schedule', 'resume_schedule', 'remove_schedule']);
  });
});
