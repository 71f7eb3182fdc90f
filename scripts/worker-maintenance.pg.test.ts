import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { daysAgo, uuidv7At } from '../test/helpers/uuid-at.js';
import { waitFor } from '../test/helpers/wait.js';

// `leasehold worker` processes run maintenance beside the worker: schedule ticks (exactly once
// across processes) and retention (node-cron, one process at a time), and stop cleanly on SIGTERM.
const ROOT = fileURLToPath(new URL('..', import.meta.url));
let db: TestDatabase;
const children: ChildProcess[] = [];
beforeAll(async () => (db = await createTestDatabase()));
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});
afterAll(() => db.drop());

function worker(): { child: ChildProcess; exited: Promise<number | null> } {
  const env = {
    ...process.env, DATABASE_URL: db.url, LOG_LEVEL: 'warn', RETENTION_CRON: '* * * * * *', SCHEDULER_POLL_MS: '100',
    WORKER_POLL_MS: '100', WORKER_SHUTDOWN_GRACE_MS: '500',
  };
  const child = spawn(process.execPath, ['scripts/leasehold.mjs', 'worker'], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  return { child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

test('two worker processes: every-second schedule ticks run once each, old jobs are pruned, SIGTERM exits 0', async () => {
  const old = uuidv7At(daysAgo(30));
  await db.sql`insert into leasehold.jobs (id, kind, status, attempts, created_at, finished_at)
               values (${old}, 'system.noop', 'succeeded', 1, now() - interval '30 days', now() - interval '30 days')`;
  const [s] = await db.sql<{ id: string }[]>`
    insert into leasehold.schedules (name, cron, kind, payload) values ('tick', '* * * * * *', 'system.noop', '{}') returning id`;
  const workers = [worker(), worker()];

  await waitFor(async () => {
    const [r] = await db.sql`select count(*)::int as n from leasehold.schedule_ticks t join leasehold.jobs j on j.id = t.job_id
                             where t.schedule_id = ${s!.id} and j.status = 'succeeded'`;
    return r!.n >= 3;
  }, 'three ticks run to success', 40_000, 100);
  await waitFor(async () => (await db.sql`select 1 from leasehold.jobs where id = ${old}`).length === 0, 'retention to prune the old job', 60_000, 100);

  for (const w of workers) w.child.kill('SIGTERM');
  expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);
  const ticks = await db.sql<{ tick_at: Date }[]>`select tick_at from leasehold.schedule_ticks where schedule_id = ${s!.id}`;
  const [jobs] = await db.sql`select count(*)::int as n from leasehold.jobs j join leasehold.schedule_ticks t on t.job_id = j.id where t.schedule_id = ${s!.id}`;
  expect(new Set(ticks.map((t) => t.tick_at.getTime())).size).toBe(ticks.length);
  expect(jobs!.n).toBe(ticks.length);
}, 180_000);
