import type { Sql } from '#shared/db/connect.js';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { latestTick } from './cron-ticks.js';

/** A row of leasehold.schedules as the scheduler reads it. */
interface ScheduleRow {
  id: string;
  name: string;
  cron: string;
  timezone: string;
  ticks_from: Date;
  last_tick_at: Date | null;
  last_error: string | null;
}

/** One tick this scheduler enqueued. */
export interface EnqueuedTick {
  schedule: string;
  tickAt: Date;
  jobId: string;
  queue: string;
}

/**
 * Schedulers, every poll: enqueues one job for a tick, once whatever the number of schedulers.
 * The schedule row is locked and its last tick re-checked under the lock (a racing scheduler
 * waits, then finds the tick taken), the tick's primary key refuses a second row, and the job
 * insert happens only when the tick row did, all in this one statement.
 */
export const ENQUEUE_TICK = `
with s as (
  select id, tenant_id, kind, queue, payload, priority, max_attempts from leasehold.schedules
  where id = $1::uuid and enabled and ticks_from < $2::timestamptz
    and (last_tick_at is null or last_tick_at < $2::timestamptz)
  for update
), tick as (
  insert into leasehold.schedule_ticks (schedule_id, tick_at, job_id)
  select id, $2::timestamptz, $3::uuid from s
  on conflict do nothing
  returning schedule_id
), job as (
  insert into leasehold.jobs (id, tenant_id, kind, queue, payload, priority, max_attempts)
  select $3::uuid, s.tenant_id, s.kind, s.queue, s.payload, s.priority, s.max_attempts
  from s join tick on tick.schedule_id = s.id
  returning id, queue
), upd as (
  update leasehold.schedules set last_tick_at = $2::timestamptz, last_job_id = $3::uuid, last_error = null, updated_at = now()
  where id = (select schedule_id from tick)
)
select id, queue from job`;

/**
 * Enqueues the latest due tick of every enabled schedule. After downtime only the most recent
 * missed tick runs (the ones before it are skipped), and ticks of a paused schedule never run.
 * Safe to call from any number of processes at once. A schedule whose expression cannot be read
 * gets `last_error` set and is skipped.
 */
export async function runDueSchedules(sql: Sql, now = new Date()): Promise<EnqueuedTick[]> {
  const rows = await sql<ScheduleRow[]>`
    select id, name, cron, timezone, ticks_from, last_tick_at, last_error
    from leasehold.schedules where enabled order by id`;
  const done: EnqueuedTick[] = [];
  for (const s of rows) {
    let tick: Date;
    try {
      tick = latestTick(s.cron, s.timezone, now);
    } catch (err) {
      const message = `cannot compute ticks: ${(err as Error).message}`;
      if (s.last_error !== message) await sql`update leasehold.schedules set last_error = ${message} where id = ${s.id}`;
      continue;
    }
    if (tick <= s.ticks_from || (s.last_tick_at && tick <= s.last_tick_at)) continue;
    const jobId = uuidv7();
    const [job] = await sql.unsafe<{ id: string; queue: string }[]>(ENQUEUE_TICK, [s.id, tick.toISOString(), jobId]);
    if (job) done.push({ schedule: s.name, tickAt: tick, jobId: job.id, queue: job.queue });
  }
  return done;
}
