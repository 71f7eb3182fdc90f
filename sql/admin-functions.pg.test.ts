import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { deferred } from '../test/helpers/deferred.js';
import { WorkerPool, queueFor } from '../test/helpers/engine.js';
import { insertJob } from '../test/helpers/job-factory.js';
import { seedOperatorFixture } from '../test/helpers/operator-fixture.js';
import { waitFor } from '../test/helpers/wait.js';
import { reclaimExpired } from '../worker/reclaimer.js';

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => (db = await createTestDatabase()));
afterAll(async () => {
  await pool.stopAll();
  await db.drop();
});

const lastEvent = async (sql: Sql, id: string) =>
  (await sql<{ type: string; data: Record<string, unknown> | null }[]>`
    select type, data from leasehold.job_events where job_id = ${id} order by id desc limit 1`)[0]!;
const audit = (sql: Sql, action: string) =>
  sql<{ actor: string; target: string | null; args: unknown; result: unknown }[]>`
    select actor, target, args, result from leasehold.admin_actions where action = ${action} order by id`;

describe('every admin function records who called it', () => {
  test('retry_job, cancel_job and requeue_dead_letter: in job_events and admin_actions; current_user by default', async () => {
    const f = await seedOperatorFixture(db.sql);
    expect((await db.sql`select leasehold.retry_job(${f.failed}, p_actor => 'cli:alice') as ok`)[0]!.ok).toBe(true);
    expect(await lastEvent(db.sql, f.failed)).toEqual({ type: 'job.queued', data: { reason: 'retry', by: 'cli:alice' } });
    expect(await audit(db.sql, 'retry_job')).toEqual([{ actor: 'cli:alice', target: f.failed, args: {}, result: null }]);

    expect((await db.sql`select leasehold.cancel_job(${f.queued})::text as s`)[0]!.s).toBe('cancelled');
    const [{ user }] = await db.sql`select current_user as user`;
    expect(await lastEvent(db.sql, f.queued)).toEqual({ type: 'job.cancelled', data: { reason: 'cancel', by: user } });
    expect((await db.sql`select leasehold.cancel_job(${f.running}, null, 'key:123')::text as s`)[0]!.s).toBe('running');
    expect(await audit(db.sql, 'cancel_job')).toEqual([
      { actor: user, target: f.queued, args: {}, result: { was: 'queued', now: 'cancelled' } },
      { actor: 'key:123', target: f.running, args: {}, result: { was: 'running', now: 'running' } },
    ]);

    const g = await seedOperatorFixture(db.sql);
    expect((await db.sql`select leasehold.requeue_dead_letter(${g.deadLetter}, null, 'cli:bob') as id`)[0]!.id).toBe(g.failed);
    expect(await lastEvent(db.sql, g.failed)).toEqual({ type: 'job.queued', data: { reason: 'requeue', by: 'cli:bob', dead_letter_id: g.deadLetter } });
  });

  test('pause_queue and resume_queue say whether they changed anything, and are audited when they did', async () => {
    const call = async (fn: 'pause_queue' | 'resume_queue') =>
      (await db.sql`select ${db.sql.unsafe(`leasehold.${fn}`)}('audited', 'ops:carol') as changed`)[0]!.changed;
    expect([await call('pause_queue'), await call('pause_queue'), await call('resume_queue'), await call('resume_queue')])
      .toEqual([true, false, true, false]);
    expect((await audit(db.sql, 'pause_queue')).filter((a) => a.target === 'audited')).toEqual([{ actor: 'ops:carol', target: 'audited', args: {}, result: null }]);
    expect((await audit(db.sql, 'resume_queue')).filter((a) => a.target === 'audited')).toHaveLength(1);
  });
});

describe('the audited functions keep whatever cancel_job and retry_job do', () => {
  test('they delegate to the bodies renamed *_unaudited, so a redefinition by another migration survives', async () => {
    const f = await seedOperatorFixture(db.sql);
    await db.sql.begin(async (tx) => {
      // As a migration that settles credit on cancel would have redefined it before 0005.
      await tx.unsafe(`create or replace function leasehold.cancel_job_unaudited(p_job_id uuid, p_tenant_id uuid default null)
                       returns leasehold.job_status language plpgsql as $$
                       begin
                         insert into leasehold.admin_actions (actor, action, target) values ('redefined', 'settle', p_job_id::text);
                         update leasehold.jobs set status = 'cancelled', finished_at = now() where id = p_job_id;
                         insert into leasehold.job_events (job_id, tenant_id, type, attempt) select id, tenant_id, 'job.cancelled', attempts from leasehold.jobs where id = p_job_id;
                         return 'cancelled';
                       end $$`);
      expect((await tx`select leasehold.cancel_job(${f.queued}, null, 'ops:x')::text as s`)[0]!.s).toBe('cancelled');
      expect(await tx`select actor, action from leasehold.admin_actions where target = ${f.queued} order by id`)
        .toEqual([{ actor: 'redefined', action: 'settle' }, { actor: 'ops:x', action: 'cancel_job' }]);
      expect((await lastEvent(tx as unknown as Sql, f.queued)).data).toEqual({ reason: 'cancel', by: 'ops:x' });
      throw new Error('rollback');
    }).catch((err: Error) => expect(err.message).toBe('rollback'));
  });
});

describe('requeue_dead_letters', () => {
  test('requeues exactly the open dead letters that match every filter given, and counts them', async () => {
    const acme = await ensureTenant(db.sql, 'dlq-acme');
    const other = await ensureTenant(db.sql, 'dlq-other');
    const letters: Record<string, string> = {};
    const make = async (name: string, f: { kind: string; queue: string; tenant: string; error: string; ago: string }) => {
      const jobId = await insertJob(db.sql, { kind: f.kind, queue: f.queue, status: 'failed', attempts: 3 });
      await db.sql`update leasehold.jobs set tenant_id = ${f.tenant}, last_error = ${f.error} where id = ${jobId}`;
      const [d] = await db.sql<{ id: string }[]>`
        insert into leasehold.dead_letters (job_id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, last_error, errors, job_created_at, failed_at)
        values (${jobId}, ${f.tenant}, ${f.kind}, ${f.queue}, '{}', 100, 3, 3, ${f.error}, '[]', now(), now() - ${f.ago}::interval)
        returning id`;
      letters[name] = jobId;
      return d!.id;
    };
    await make('timeoutOld', { kind: 'dlq.a', queue: 'dlq-q', tenant: acme.id, error: 'Fetch TIMEOUT after 30 s', ago: '3 days' });
    await make('timeoutNew', { kind: 'dlq.a', queue: 'dlq-q', tenant: acme.id, error: 'fetch timeout after 30 s', ago: '1 hour' });
    await make('schema', { kind: 'dlq.a', queue: 'dlq-q', tenant: acme.id, error: 'output did not match the schema', ago: '1 hour' });
    await make('otherKind', { kind: 'dlq.b', queue: 'dlq-q', tenant: acme.id, error: 'fetch timeout', ago: '1 hour' });
    await make('otherTenant', { kind: 'dlq.a', queue: 'dlq-q', tenant: other.id, error: 'fetch timeout', ago: '1 hour' });
    const requeue = async (args: string) => (await db.sql.unsafe(`select leasehold.requeue_dead_letters(${args}) as n`))[0]!.n;
    const status = async (name: string) => (await db.sql`select status::text from leasehold.jobs where id = ${letters[name]!}`)[0]!.status;

    // kind + tenant + since + error pattern (case-insensitive regular expression): only the new timeout.
    expect(await requeue(`p_kind => 'dlq.a', p_tenant_id => '${acme.id}', p_since => now() - interval '1 day', p_error_pattern => 'time ?out', p_actor => 'cli:dave'`)).toBe(1);
    expect(await Promise.all(['timeoutOld', 'timeoutNew', 'schema', 'otherKind', 'otherTenant'].map(status)))
      .toEqual(['failed', 'queued', 'failed', 'failed', 'failed']);
    expect(await lastEvent(db.sql, letters.timeoutNew!)).toMatchObject({ type: 'job.queued', data: { reason: 'requeue', by: 'cli:dave' } });
    expect((await audit(db.sql, 'requeue_dead_letters')).at(-1)).toMatchObject({
      actor: 'cli:dave', args: { kind: 'dlq.a', tenant_id: acme.id, error_pattern: 'time ?out', limit: 10000 }, result: { requeued: 1 },
    });
    // Already requeued ones are not counted again; the queue filter takes all that is left in it, up to the limit.
    expect(await requeue(`p_queue => 'dlq-q', p_error_pattern => 'timeout', p_limit => 2`)).toBe(2);
    expect(await requeue(`p_queue => 'dlq-q', p_error_pattern => 'timeout'`)).toBe(1);
    expect(await requeue(`p_queue => 'dlq-q', p_error_pattern => 'timeout'`)).toBe(0);
    expect(await status('schema')).toBe('failed');
    // A malformed pattern is an error (SQLSTATE 2201B), not a silent zero.
    await expect(requeue(`p_error_pattern => '(unclosed'`)).rejects.toMatchObject({ code: '2201B' });
    await expect(requeue(`p_limit => 0`)).rejects.toMatchObject({ code: '22023' });
  });
});

describe('job_events types', () => {
  test('exactly the seven of DESIGN.md: job.lease_extended and other names are refused (23514)', async () => {
    const id = await insertJob(db.sql, { kind: 'test.x' });
    for (const type of ['job.lease_extended', 'job.whatever']) {
      await expect(db.sql`insert into leasehold.job_events (job_id, tenant_id, type) values (${id}, '00000000-0000-0000-0000-000000000000', ${type})`)
        .rejects.toMatchObject({ code: '23514', constraint_name: 'job_events_type_check' });
    }
    for (const type of ['job.queued', 'job.running', 'job.progress', 'job.retrying', 'job.succeeded', 'job.failed', 'job.cancelled']) {
      await db.sql.begin(async (tx) => {
        await tx`insert into leasehold.job_events (job_id, tenant_id, type) values (${id}, '00000000-0000-0000-0000-000000000000', ${type})`;
        throw new Error('roll back');
      }).catch((err: Error) => expect(err.message).toBe('roll back'));
    }
  });
});

describe('extend_lease', () => {
  test('extends only running jobs, within bounds, audited in admin_actions only; the reclaimer then leaves the job alone', async () => {
    const expired = await insertJob(db.sql, { kind: 'test.x', status: 'running', leaseOwner: 'slow-worker', leaseExpiresAt: new Date(Date.now() - 5_000) });
    const queued = await insertJob(db.sql, { kind: 'test.x' });
    const events = () => db.sql`select id, type, data from leasehold.job_events where job_id = ${expired} order by id`;
    const before = await events();
    const [{ until }] = await db.sql`select leasehold.extend_lease(${expired}, '10 minutes', null, 'cli:erin') as until`;
    expect(until.getTime() - Date.now()).toBeGreaterThan(9 * 60_000);
    // Not a transition (DESIGN.md lists seven event types): the job's events are as they were.
    expect(await events()).toEqual(before);
    const [record] = (await audit(db.sql, 'extend_lease')).slice(-1);
    expect(record).toEqual({ actor: 'cli:erin', target: expired, args: { by: '00:10:00' }, result: { lease_expires_at: expect.any(String), worker: 'slow-worker' } });
    expect(new Date((record!.result as { lease_expires_at: string }).lease_expires_at).getTime()).toBe(until.getTime());
    const report = await reclaimExpired(db.sql);
    expect((await db.sql`select status::text from leasehold.jobs where id = ${expired}`)[0]!.status).toBe('running');
    // The pass did take back the fixtures' expired leases from the tests above: it ran, and skipped this one.
    expect(report.requeued + report.failed).toBeGreaterThan(0);

    expect((await db.sql`select leasehold.extend_lease(${queued}, '1 minute') as until`)[0]!.until).toBeNull();
    await expect(db.sql`select leasehold.extend_lease(${expired}, '2 days')`).rejects.toMatchObject({ code: '22023' });
    await expect(db.sql`select leasehold.extend_lease(${expired}, '-1 minute')`).rejects.toMatchObject({ code: '22023' });
  });

  test("a worker's heartbeat does not shorten an extended lease", async () => {
    const gate = deferred();
    await pool.start({
      sql: db.sql,
      handlers: { 'test.hold': () => gate.promise },
      settings: { queues: [{ name: 'extend' }], pollMs: 50, heartbeatMs: 100, leaseMs: 3_000 },
    });
    const { id } = await queueFor(db.sql).enqueue({ kind: 'test.hold', queue: 'extend' });
    await waitFor(async () => (await db.sql`select 1 from leasehold.jobs where id = ${id} and status = 'running'`).length, 'the claim');
    const [{ until }] = await db.sql`select leasehold.extend_lease(${id}, '1 hour') as until`;
    const [{ beat }] = await db.sql`select heartbeat_at as beat from leasehold.jobs where id = ${id}`;
    await waitFor(async () => (await db.sql`select 1 from leasehold.jobs where id = ${id} and heartbeat_at > ${beat}`).length, 'a heartbeat');
    const [row] = await db.sql`select lease_expires_at from leasehold.jobs where id = ${id}`;
    expect(row!.lease_expires_at.getTime()).toBe(until.getTime());
    gate.resolve();
    await waitFor(async () => (await db.sql`select 1 from leasehold.jobs where id = ${id} and status = 'succeeded'`).length, 'success');
  });
});
