import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli } from '../test/helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { seedOperatorFixture } from '../test/helpers/operator-fixture.js';
import { freePort } from '#shared/db/free-port.js';

let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());

/** The CLI against `url`, logging at info so stray log lines on stdout would break --json. */
const leasehold = (args: string[], url = db.url) => runCli(args, { DATABASE_URL: url, LOG_LEVEL: 'info' });

describe('leasehold dlq', () => {
  test('ls shows open dead letters with their last error; requeue hands the job back once', async () => {
    const f = await seedOperatorFixture(db.sql);
    const ls = await leasehold(['dlq', 'ls', '--json']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.json()).toContainEqual(
      expect.objectContaining({ id: f.deadLetter, job_id: f.failed, attempts: 3, last_error: 'boom 3', requeued_at: null }),
    );

    const requeue = await leasehold(['dlq', 'requeue', f.deadLetter, '--json']);
    expect([requeue.code, requeue.json()]).toEqual([0, { dead_letter_id: f.deadLetter, requeued: true, job_id: f.failed }]);
    const [job] = await db.sql`select status::text, attempts from leasehold.jobs where id = ${f.failed}`;
    expect(job).toEqual({ status: 'queued', attempts: 0 });

    const [again, open, all] = await Promise.all([
      leasehold(['dlq', 'requeue', f.deadLetter, '--json']),
      leasehold(['dlq', 'ls', '--json']),
      leasehold(['dlq', 'ls', '--all', '--json']),
    ]);
    expect(again.code).toBe(1);
    expect(again.json()).toMatchObject({ requeued: false, reason: expect.stringContaining('already requeued') });
    expect(again.stderr).toBe('leasehold dlq requeue: no open dead letter with this id (unknown, or already requeued)\n');
    expect(open.json().map((d: { id: string }) => d.id)).not.toContain(f.deadLetter);
    expect(all.json().map((d: { id: string }) => d.id)).toContain(f.deadLetter);
    expect((await leasehold(['dlq', 'requeue', 'not-a-uuid'])).code).toBe(64);
  });
});

describe('leasehold stats', () => {
  test('counts jobs by queue, kind and state, and lists live workers with the leases they hold', async () => {
    const own = await createTestDatabase();
    try {
      await seedOperatorFixture(own.sql);
      await own.sql`insert into leasehold.workers (id, host, pid, queues, kinds, concurrency)
                    values ('worker-a', 'host-1', 4242, null, '{system.sleep}', 10)`;
      const run = await leasehold(['stats', '--json'], own.url);
      expect(run.code, run.stderr).toBe(0);
      const { queues, workers } = run.json();
      const zero = {
        paused: false, ready: 0, scheduled: 0, running: 0, succeeded_1m: 0, failed_1m: 0, succeeded_1h: 0, failed_1h: 0,
        retried_1h: 0, cancelled_1h: 0, per_s_1m: 0, per_s_1h: 0, failure_rate_1h: null, oldest_ready_s: null,
      };
      // The fixture's rows were inserted just now, so their finishing events fall in the last minute.
      expect(queues).toEqual([
        { queue: 'default', kind: 'system.noop', ...zero, ready: 1, scheduled: 1, succeeded_1m: 1, failed_1m: 1, succeeded_1h: 1, failed_1h: 1,
          per_s_1m: 0.03, per_s_1h: 0, failure_rate_1h: 0.5, oldest_ready_s: expect.any(Number) },
        { queue: 'default', kind: 'system.sleep', ...zero, running: 2 },
        { queue: 'images', kind: 'system.sleep', ...zero, ready: 1, oldest_ready_s: expect.any(Number) },
      ]);
      expect(queues[2].oldest_ready_s).toBeGreaterThanOrEqual(7200);
      expect(workers).toEqual([expect.objectContaining({ id: 'worker-a', concurrency: 10, holding: 1, free_slots: 9 })]);
    } finally {
      await own.drop();
    }
  });
});


describe('leasehold with no configuration', () => {
  test('starts an embedded PostgreSQL, migrates, prints clean JSON, and stops the server again', async () => {
    // The temp dir must be traversable by the `postgres` user the embedded server runs as under root.
    const dataDir = mkdtempSync(path.join(tmpdir(), 'leasehold-cli-'));
    chmodSync(dataDir, 0o755);
    try {
      const run = await runCli(['stats', '--json'], {
        DATABASE_URL: undefined,
        LEASEHOLD_DATA_DIR: dataDir,
        EMBEDDED_PG_PORT: String(await freePort()),
        LOG_LEVEL: 'info',
      }, 150_000);
      expect(run.code, run.stderr).toBe(0);
      expect(run.json()).toEqual({ queues: [], workers: [] });
      expect(run.stderr).toContain('embedded PostgreSQL ready');
      expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'postgres left running').toBe(false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});
