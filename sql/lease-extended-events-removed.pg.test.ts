import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { connect, type Sql } from '#shared/db/connect.js';
import { migrate, readMigrations } from '#shared/db/migrator.js';
import { withDatabase } from '../test/helpers/db.js';

// Migration 0008 on a database that already holds `job.lease_extended` events (written by
// extend_lease up to 0007): they go, their facts stay in admin_actions, and the type is refused.

const name = `t_0008_${randomBytes(5).toString('hex')}`;
let sql: Sql;
beforeAll(async () => {
  const admin = connect(inject('pgAdminUrl'), { max: 1 });
  await admin.unsafe(`create database ${name} template template0`).finally(() => admin.end());
  sql = connect(withDatabase(inject('pgAdminUrl'), name), { max: 2 });
});
afterAll(async () => {
  await sql.end({ timeout: 5 });
  const admin = connect(inject('pgAdminUrl'), { max: 1 });
  await admin.unsafe(`drop database if exists ${name} with (force)`).finally(() => admin.end());
});

test('0008 deletes the lease_extended events, keeps the extension in admin_actions with its worker, and tightens the check', async () => {
  const all = readMigrations();
  await migrate(sql, all.filter((m) => m.version < '0008'));
  const job = randomUUID();
  await sql`insert into leasehold.jobs (id, kind, status, attempts, lease_owner, lease_token, lease_expires_at)
            values (${job}, 'system.sleep', 'running', 1, 'worker-7', ${randomUUID()}, now() + interval '30 seconds')`;
  const [{ until }] = await sql`select leasehold.extend_lease(${job}, '5 minutes', null, 'ops:dana') as until`;
  expect((await sql`select type from leasehold.job_events where job_id = ${job} order by id`).map((r) => r.type))
    .toEqual(['job.running', 'job.lease_extended']);

  expect(await migrate(sql, all)).toEqual(all.filter((m) => m.version >= '0008').map((m) => `${m.version}_${m.name}`));
  expect((await sql`select type from leasehold.job_events where job_id = ${job} order by id`).map((r) => r.type)).toEqual(['job.running']);
  const [action] = await sql`select actor, target, args, result from leasehold.admin_actions where action = 'extend_lease'`;
  expect(action).toEqual({ actor: 'ops:dana', target: job, args: { by: '00:05:00' }, result: { lease_expires_at: expect.any(String), worker: 'worker-7' } });
  expect(new Date(action!.result.lease_expires_at).getTime()).toBe(until.getTime());
  const [check] = await sql`select convalidated, pg_get_constraintdef(oid) as def from pg_constraint where conname = 'job_events_type_check'`;
  expect(check!.convalidated).toBe(true);
  expect(check!.def).not.toContain('lease_extended');
});
