import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, eventTypes, queueFor } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';
import { CREATE_RUNS_TABLE, recordingHandler } from '../test/fixtures/recording-handler.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHILD_ID = `crash-child-${process.pid}`;

let db: TestDatabase;
const pool = new WorkerPool();
let child: ChildProcess | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql.unsafe(CREATE_RUNS_TABLE);
});
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }
  child = undefined;
  await pool.stopAll();
});
afterAll(() => db.drop());

/** Starts test/fixtures/worker-child.ts under tsx, against this file's database. */
function startChild(): { proc: ChildProcess; output: () => string } {
  let output = '';
  const proc = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/worker-child.ts'], {
    cwd: ROOT,
    env: { ...process.env, LEASEHOLD_TEST_DATABASE_URL: db.url, LEASEHOLD_TEST_WORKER_ID: CHILD_ID, LEASEHOLD_TEST_CONCURRENCY: '4' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  return { proc, output: () => output };
}

describe('worker crash', () => {
  test('a worker SIGKILLed mid-job has its jobs finished by another worker, each exactly once', async () => {
    // Quick jobs first (priority 1): the child finishes them. Slow ones it is still holding when
    // it dies: four running in handlers, the rest claimed but waiting in its local buffer.
    const q = queueFor(db.sql);
    const quick = (await q.enqueueMany(Array.from({ length: 10 }, () => ({ kind: 'test.record', queue: 'crash', priority: 1, payload: { ms: 0 } })))).ids;
    const slow = (await q.enqueueMany(Array.from({ length: 6 }, () => ({ kind: 'test.record', queue: 'crash', priority: 2, payload: { ms: 60_000 } })))).ids;
    const all = [...quick, ...slow];

    const started = startChild();
    child = started.proc;
    const childAlive = () => {
      if (child!.exitCode !== null) throw new Error(`worker child exited early (${child!.exitCode}):\n${started.output()}`);
    };
    await waitFor(async () => {
      childAlive();
      const [r] = await db.sql<{ quick_done: number; slow_held: number; slow_started: number }[]>`
        select (select count(*)::int from leasehold.jobs where id = any(${quick}::uuid[]) and status = 'succeeded') as quick_done,
               (select count(*)::int from leasehold.jobs where id = any(${slow}::uuid[]) and status = 'running'
                  and lease_owner = ${CHILD_ID}) as slow_held,
               (select count(distinct job_id)::int from public.handler_runs where job_id = any(${slow}::uuid[])) as slow_started`;
      return r!.quick_done === 10 && r!.slow_held === 6 && r!.slow_started === 4;
    }, 'the child to finish the quick jobs and hold every slow one', 20_000);

    const startedInChild = new Set(
      (await db.sql<{ job_id: string }[]>`select job_id from public.handler_runs where worker = ${CHILD_ID} and job_id = any(${slow}::uuid[])`).map((r) => r.job_id),
    );
    const exited = new Promise<NodeJS.Signals | null>((r) => child!.once('exit', (_code, signal) => r(signal)));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const rescuer = await pool.start({
      sql: db.sql,
      settings: { leaseMs: 1_500, heartbeatMs: 500, reclaimMs: 200, pollMs: 100 },
      handlers: { 'test.record': recordingHandler(db.sql, 'rescuer', { sleep: false }) },
      kinds: { 'test.record': { queue: 'crash' } },
    });
    await waitFor(async () => {
      const [r] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from leasehold.jobs where id = any(${all}::uuid[]) and status = 'succeeded'`;
      return r!.n === all.length;
    }, 'every job to succeed after the crash', 15_000);
    expect(rescuer.counters.succeeded).toBe(slow.length);

    // Exactly one success per job, in the events and in the handler's own record.
    const succeeded = await db.sql<{ job_id: string; n: number }[]>`
      select job_id, count(*)::int as n from leasehold.job_events
      where job_id = any(${all}::uuid[]) and type = 'job.succeeded' group by job_id`;
    expect(succeeded).toHaveLength(all.length);
    expect(succeeded.every((r) => r.n === 1)).toBe(true);
    const finishes = await db.sql<{ job_id: string; worker: string; n: number }[]>`
      select job_id, min(worker) as worker, count(*)::int as n from public.handler_runs
      where phase = 'finish' group by job_id`;
    expect(finishes).toHaveLength(all.length);
    for (const f of finishes) {
      expect(f.n).toBe(1);
      expect(f.worker).toBe(slow.includes(f.job_id) ? 'rescuer' : CHILD_ID);
    }

    const rows = await db.sql<{ id: string; attempts: number; rescues: number; errors: { code: string; worker: string }[] }[]>`
      select id, attempts, rescues, errors from leasehold.jobs where id = any(${all}::uuid[])`;
    for (const r of rows) {
      if (quick.includes(r.id)) {
        expect({ attempts: r.attempts, rescues: r.rescues }).toEqual({ attempts: 1, rescues: 0 });
        continue;
      }
      // The crashed claim used attempt 1; the rescue itself costs nothing; the new claim is attempt 2.
      expect({ attempts: r.attempts, rescues: r.rescues }).toEqual({ attempts: 2, rescues: 1 });
      expect(r.errors).toMatchObject([{ code: 'lease_expired', worker: CHILD_ID }]);
      expect(await eventTypes(db.sql, r.id)).toEqual(['job.queued', 'job.running', 'job.retrying', 'job.running', 'job.succeeded']);
      const [starts] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from public.handler_runs where job_id = ${r.id} and phase = 'start'`;
      // Jobs that were in a handler when the child died ran twice; buffered ones only once.
      expect(starts!.n).toBe(startedInChild.has(r.id) ? 2 : 1);
    }
  });
});
