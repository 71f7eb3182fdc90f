import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { loadConfig } from '#shared/config.js';
import { Governor } from '#shared/governor/governor.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { runDueSchedules } from './schedules.js';

// A daily schedule ran twice on the night clocks go back (01:30 happened at 05:30Z and again at
// 06:30Z, and each instant was a tick of its own) and not at all on the day they go forward when
// its time fell in the skipped hour. America/New_York in 2026: forward on 8 March at 02:00 EST
// (07:00Z) to 03:00 EDT, back on 1 November at 02:00 EDT (06:00Z) to 01:00 EST.

let db: TestDatabase;
const governor = new Governor(loadConfig({}));
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());
afterEach(async () => {
  await db.sql`update leasehold.schedules set enabled = false`;
});

const poll = (now: Date) => runDueSchedules(db.sql, governor, now);

/**
 * Adds a schedule (ticks from `from` on) and runs the scheduler every `stepMs` from `from` to `to`,
 * as the maintenance runners would; returns the ticks that got a job, and the number of jobs.
 */
async function firings(name: string, cron: string, timezone: string, from: string, to: string, stepMs = 5 * 60_000) {
  const [s] = await db.sql<{ id: string }[]>`
    insert into leasehold.schedules (name, cron, timezone, kind, queue, ticks_from)
    values (${name}, ${cron}, ${timezone}, 'system.noop', 'dst-q', ${new Date(from)}) returning id`;
  for (let t = new Date(from).getTime(); t <= new Date(to).getTime(); t += stepMs) await poll(new Date(t));
  const ticks = await db.sql<{ tick_at: Date }[]>`
    select tick_at from leasehold.schedule_ticks where schedule_id = ${s!.id} and job_id is not null order by tick_at`;
  const [jobs] = await db.sql<{ n: number }[]>`
    select count(*)::int as n from leasehold.jobs j join leasehold.schedule_ticks t on t.job_id = j.id where t.schedule_id = ${s!.id}`;
  return { ticks: ticks.map((t) => t.tick_at.toISOString()), jobs: jobs!.n };
}

test('the night clocks go back: 01:30 happens twice and the daily job runs once, at the first (EDT)', async () => {
  expect(await firings('fall-0130', '30 1 * * *', 'America/New_York', '2026-11-01T03:00:00Z', '2026-11-01T12:00:00Z'))
    .toEqual({ ticks: ['2026-11-01T05:30:00.000Z'], jobs: 1 });
});

test('the night clocks go back: a 02:30 job runs once', async () => {
  expect(await firings('fall-0230', '30 2 * * *', 'America/New_York', '2026-11-01T03:00:00Z', '2026-11-01T12:00:00Z'))
    .toEqual({ ticks: ['2026-11-01T07:30:00.000Z'], jobs: 1 });
});

test('the day clocks go forward: 02:30 does not exist, and the daily job runs once, at 03:00 EDT, the first instant after the gap', async () => {
  // Every 5 minutes through the night, then every 20 to the end of the local day (04:00Z).
  expect(await firings('spring-0230', '30 2 * * *', 'America/New_York', '2026-03-08T05:00:00Z', '2026-03-08T09:00:00Z'))
    .toEqual({ ticks: ['2026-03-08T07:00:00.000Z'], jobs: 1 });
  expect(await firings('spring-0230-day', '30 2 * * *', 'America/New_York', '2026-03-08T05:00:00Z', '2026-03-09T04:00:00Z', 20 * 60_000))
    .toEqual({ ticks: ['2026-03-08T07:00:00.000Z'], jobs: 1 });
  // The days around it are ordinary: 02:30 EST, then 02:30 EDT.
  expect(await firings('spring-0230-days', '30 2 * * *', 'America/New_York', '2026-03-07T03:00:00Z', '2026-03-10T03:00:00Z', 60 * 60_000))
    .toEqual({ ticks: ['2026-03-07T07:30:00.000Z', '2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z'], jobs: 3 });
});

test('an hourly schedule keeps running by elapsed time through both changes: every real hour, each once', async () => {
  expect((await firings('hourly-fall', '0 * * * *', 'America/New_York', '2026-11-01T03:30:00Z', '2026-11-01T09:30:00Z')).ticks)
    .toEqual(['04:00', '05:00', '06:00', '07:00', '08:00', '09:00'].map((h) => `2026-11-01T${h}:00.000Z`));
  expect((await firings('hourly-spring', '0 * * * *', 'America/New_York', '2026-03-08T04:30:00Z', '2026-03-08T09:30:00Z')).ticks)
    .toEqual(['05:00', '06:00', '07:00', '08:00', '09:00'].map((h) => `2026-03-08T${h}:00.000Z`));
});
