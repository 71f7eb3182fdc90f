import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { loadConfig } from '#shared/config.js';
import { Governor } from '#shared/governor/governor.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { testLog } from '../../test/helpers/engine.js';
import { waitFor } from '../../test/helpers/wait.js';
import { startMaintenance } from './maintenance.js';
import { latestTick } from './cron-ticks.js';
import { runDueSchedules as runDue } from './schedules.js';

let db: TestDatabase;
const governor = new Governor(loadConfig({}));
const runDueSchedules = (sql: Sql, now: Date) => runDue(sql, governor, now);
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());
const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((m) => m.stop()));
  // Each test looks at its own schedules only.
  await db.sql`update leasehold.schedules set enabled = false`;
});

async function schedule(sql: Sql, name: string, cron: string, fields: { ticksFrom?: Date; timezone?: string; enabled?: boolean } = {}) {
  const [row] = await sql<{ id: string }[]>`
    insert into leasehold.schedules (name, cron, timezone, kind, payload, queue, ticks_from, enabled)
    values (${name}, ${cron}, ${fields.timezone ?? 'UTC'}, 'system.noop', '{}', 'cron-q', ${fields.ticksFrom ?? new Date()}, ${fields.enabled ?? true})
    returning id`;
  return row!.id;
}

async function ticksOf(sql: Sql, scheduleId: string) {
  return sql<{ tick_at: Date; job_id: string; kind: string; queue: string }[]>`
    select t.tick_at, t.job_id, j.kind, j.queue from leasehold.schedule_ticks t
    join leasehold.jobs j on j.id = t.job_id
    where t.schedule_id = ${scheduleId} order by t.tick_at`;
}

test('latestTick honours the time zone and includes a tick falling exactly on now', () => {
  const now = new Date('2026-07-01T07:00:00.000Z'); // 09:00 in Paris (summer time)
  expect(latestTick('0 9 * * *', 'Europe/Paris', now).toISOString()).toBe('2026-07-01T07:00:00.000Z');
  expect(latestTick('0 9 * * *', 'UTC', now).toISOString()).toBe('2026-06-30T09:00:00.000Z');
  expect(latestTick('*/10 * * * * *', 'UTC', new Date('2026-07-01T07:00:09.999Z')).toISOString()).toBe('2026-07-01T07:00:00.000Z');
});

test('eight schedulers racing over the same ticks enqueue exactly one job per tick', async () => {
  const start = new Date('2026-03-01T00:00:00Z');
  const id = await schedule(db.sql, 'race', '*/10 * * * * *', { ticksFrom: new Date(start.getTime() - 1) });
  const pools = Array.from({ length: 8 }, () => db.connect({ max: 2 }));
  const enqueued: string[] = [];
  // 30 ticks, each seen by all eight schedulers at (slightly) different moments within the tick.
  for (let i = 0; i < 30; i++) {
    const results = await Promise.all(pools.map((p, k) => runDueSchedules(p, new Date(start.getTime() + i * 10_000 + k * 300))));
    enqueued.push(...results.flat().map((t) => t.jobId!));
  }
  const ticks = await ticksOf(db.sql, id);
  expect(ticks).toHaveLength(30);
  expect(ticks.map((t) => t.tick_at.getTime() - start.getTime())).toEqual(Array.from({ length: 30 }, (_, i) => i * 10_000));
  expect(new Set(enqueued).size).toBe(30);
  expect(enqueued.sort()).toEqual(ticks.map((t) => t.job_id).sort());
  expect(ticks.every((t) => t.kind === 'system.noop' && t.queue === 'cron-q')).toBe(true);
  const [jobs] = await db.sql`select count(*)::int as n from leasehold.jobs where id = any(${enqueued}::uuid[]) and status = 'queued'`;
  expect(jobs!.n).toBe(30);
});

test('after downtime only the most recent missed tick runs; a paused schedule runs none, and resuming skips the pause', async () => {
  const t0 = new Date('2026-04-01T10:00:30Z');
  const id = await schedule(db.sql, 'hourly', '0 * * * *', { ticksFrom: t0 });
  expect(await runDueSchedules(db.sql, t0)).toEqual([]); // 10:00 is before the schedule existed
  const later = new Date('2026-04-01T15:20:00Z'); // 11:00 … 15:00 were missed
  const [only] = await runDueSchedules(db.sql, later);
  expect(only).toMatchObject({ schedule: 'hourly', tickAt: new Date('2026-04-01T15:00:00Z') });
  expect((await ticksOf(db.sql, id)).map((t) => t.tick_at.toISOString())).toEqual(['2026-04-01T15:00:00.000Z']);

  await db.sql`update leasehold.schedules set enabled = false where id = ${id}`;
  expect(await runDueSchedules(db.sql, new Date('2026-04-01T16:00:00Z'))).toEqual([]);
  // Resuming (the CLI's `schedules resume`) moves ticks_from to the moment of resuming.
  await db.sql`update leasehold.schedules set enabled = true, ticks_from = ${new Date('2026-04-01T17:30:00Z')} where id = ${id}`;
  expect(await runDueSchedules(db.sql, new Date('2026-04-01T17:45:00Z'))).toEqual([]);
  expect((await runDueSchedules(db.sql, new Date('2026-04-01T18:00:00Z'))).map((t) => t.tickAt.toISOString())).toEqual(['2026-04-01T18:00:00.000Z']);
});

test('a schedule whose expression cannot be read gets last_error and does not stop the others', async () => {
  const bad = await schedule(db.sql, 'broken', 'every tuesday-ish', { ticksFrom: new Date('2026-01-01T00:00:00Z') });
  const good = await schedule(db.sql, 'fine', '0 0 * * *', { ticksFrom: new Date('2026-01-01T00:00:00Z') });
  const done = await runDueSchedules(db.sql, new Date('2026-01-02T00:00:01Z'));
  expect(done.map((t) => t.schedule)).toEqual(['fine']);
  const [row] = await db.sql`select last_error from leasehold.schedules where id = ${bad}`;
  expect(row!.last_error).toMatch(/cannot compute ticks/);
  expect(await ticksOf(db.sql, good)).toHaveLength(1);
});

test('three worker processes\' maintenance runners on the real clock: every second ticks once', async () => {
  const id = await schedule(db.sql, 'every-second', '* * * * * *');
  const config = { ...loadConfig({}), SCHEDULER_POLL_MS: 30 };
  for (let i = 0; i < 3; i++) running.push(startMaintenance({ sql: db.connect({ max: 3 }), log: testLog, config }));
  await waitFor(async () => (await ticksOf(db.sql, id)).length >= 3, 'three ticks', 10_000);
  await Promise.all(running.splice(0).map((m) => m.stop()));
  const ticks = await ticksOf(db.sql, id);
  const seconds = ticks.map((t) => t.tick_at.getTime());
  expect(seconds.every((ms) => ms % 1000 === 0)).toBe(true);
  expect(new Set(seconds).size).toBe(ticks.length);
  expect(new Set(ticks.map((t) => t.job_id)).size).toBe(ticks.length);
  const [jobs] = await db.sql`select count(*)::int as n from leasehold.jobs where queue = 'cron-q' and id = any(${ticks.map((t) => t.job_id)}::uuid[])`;
  expect(jobs!.n).toBe(ticks.length);
});
