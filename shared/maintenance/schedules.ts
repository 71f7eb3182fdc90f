import type { Sql, Tx } from '#shared/db/connect.js';
import { AppError } from '#shared/errors.js';
import type { Governor } from '#shared/governor/governor.js';
import { insertPaidJobs } from '#shared/governor/insert-paid.js';
import { isPaidKind, manifestPattern } from '#shared/jobs/kinds.js';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { latestTick } from './cron-ticks.js';

/** A row of leasehold.schedules as the scheduler reads it. */
interface ScheduleRow {
  id: string;
  name: string;
  kind: string;
  cron: string;
  timezone: string;
  ticks_from: Date;
  last_tick_at: Date | null;
  last_error: string | null;
}

/** One tick this scheduler handled: the job it enqueued, or why the governor refused it one. */
export interface HandledTick {
  schedule: string;
  tickAt: Date;
  queue: string;
  /** Null when refused. */
  jobId: string | null;
  /** Why no job was enqueued (a paid kind the governor refused), or null. */
  refusal: string | null;
}

/** The schedule $1 if tick $2 is due for it, locked: a racing scheduler waits, then finds the tick taken. */
const DUE_SCHEDULE = `s as (
  select id, tenant_id, kind, queue, payload, priority, max_attempts from leasehold.schedules
  where id = $1::uuid and enabled and ticks_from < $2::timestamptz
    and (last_tick_at is null or last_tick_at < $2::timestamptz)
  for update
)`;

/**
 * Schedulers, every poll, for a free kind: enqueues one job for a tick, once whatever the number
 * of schedulers. The schedule row is locked and its last tick re-checked under the lock (a racing
 * scheduler waits, then finds the tick taken), the tick's primary key refuses a second row, and
 * the job insert happens only when the tick row did, all in this one statement.
 */
export const ENQUEUE_TICK = `
with ${DUE_SCHEDULE}, tick as (
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
 * Schedulers, for a paid kind's tick: ENQUEUE_TICK's lock, re-check and tick row, but not the job,
 * which the governor must allow first (in the same transaction). Returns what the job is made of.
 */
export const CLAIM_TICK = `
with ${DUE_SCHEDULE}, tick as (
  insert into leasehold.schedule_ticks (schedule_id, tick_at)
  select id, $2::timestamptz from s
  on conflict do nothing
  returning schedule_id
)
select s.tenant_id, s.kind, s.queue, s.payload, s.priority, s.max_attempts from s join tick on tick.schedule_id = s.id`;

/**
 * Schedulers, closing a claimed tick: its job ($3) or the refusal ($4) on the tick row, and on the
 * schedule its last tick, job and error ($5), so the tick counts as handled either way.
 */
export const FINISH_TICK = `
with t as (
  update leasehold.schedule_ticks set job_id = $3::uuid, refusal = $4::text
  where schedule_id = $1::uuid and tick_at = $2::timestamptz
)
update leasehold.schedules
set last_tick_at = $2::timestamptz, last_job_id = $3::uuid, last_error = $5::text, updated_at = now()
where id = $1::uuid`;

/** A claimed tick's schedule, as CLAIM_TICK returns it. */
interface ClaimedTick {
  tenant_id: string;
  kind: string;
  queue: string;
  payload: unknown;
  priority: number;
  max_attempts: number;
}

/**
 * A paid kind's tick goes through the governor as an API request does (insertPaidJobs: estimate,
 * margin floor, every ceiling and the credit check, the reservation). A refusal is no error: the
 * tick is recorded as handled, with the refusal on the tick and in the schedule's last_error, and
 * the next tick asks again. Undefined when another scheduler took the tick.
 */
async function enqueuePaidTick(sql: Sql, governor: Governor, s: ScheduleRow, tick: Date): Promise<HandledTick | undefined> {
  return sql.begin(async (tx) => {
    const [claimed] = await tx.unsafe<ClaimedTick[]>(CLAIM_TICK, [s.id, tick.toISOString()]);
    if (!claimed) return undefined;
    const job = {
      id: uuidv7(), tenantId: claimed.tenant_id, kind: claimed.kind, queue: claimed.queue, payload: claimed.payload,
      priority: claimed.priority, maxAttempts: claimed.max_attempts,
      // As the API does: the row names the pattern version its payload reads, so retention keeps it.
      ...manifestPattern(claimed.kind, claimed.payload),
    };
    let refusal: string | null = null;
    try {
      // A savepoint: a refusal rolls back the job, not the claim.
      await tx.savepoint((sp: Tx) => insertPaidJobs(sp, governor, [job]));
    } catch (err) {
      if (!(err instanceof AppError && (err.code === 'budget_exceeded' || err.code === 'margin_floor'))) throw err;
      refusal = `the governor refused it: ${err.message}`;
    }
    const jobId = refusal === null ? job.id : null;
    await tx.unsafe(FINISH_TICK, [s.id, tick.toISOString(), jobId, refusal, refusal && `tick ${tick.toISOString()}: ${refusal}`]);
    return { schedule: s.name, tickAt: tick, queue: claimed.queue, jobId, refusal };
  }) as Promise<HandledTick | undefined>;
}

/**
 * Enqueues the latest due tick of every enabled schedule. After downtime only the most recent
 * missed tick runs (the ones before it are skipped), and ticks of a paused schedule never run.
 * Safe to call from any number of processes at once. A tick of a paid kind is reserved through the
 * governor, and refused (no job, the refusal recorded) as the API would refuse it. A schedule whose
 * expression cannot be read, or whose job cannot be made, gets `last_error` set and is skipped
 * (and tried again at the next poll); the others go on.
 */
export async function runDueSchedules(sql: Sql, governor: Governor, now = new Date()): Promise<HandledTick[]> {
  const rows = await sql<ScheduleRow[]>`
    select id, name, kind, cron, timezone, ticks_from, last_tick_at, last_error
    from leasehold.schedules where enabled order by id`;
  const done: HandledTick[] = [];
  for (const s of rows) {
    let tick: Date;
    try {
      tick = latestTick(s.cron, s.timezone, now);
    } catch (err) {
      await noteError(sql, s, `cannot compute ticks: ${(err as Error).message}`);
      continue;
    }
    if (tick <= s.ticks_from || (s.last_tick_at && tick <= s.last_tick_at)) continue;
    try {
      const handled = isPaidKind(s.kind) ? await enqueuePaidTick(sql, governor, s, tick) : await enqueueTick(sql, s, tick);
      if (handled) done.push(handled);
    } catch (err) {
      await noteError(sql, s, `cannot enqueue the tick of ${tick.toISOString()}: ${(err as Error).message}`);
    }
  }
  return done;
}

/** A free kind's tick: ENQUEUE_TICK. Undefined when another scheduler took the tick. */
async function enqueueTick(sql: Sql, s: ScheduleRow, tick: Date): Promise<HandledTick | undefined> {
  const [job] = await sql.unsafe<{ id: string; queue: string }[]>(ENQUEUE_TICK, [s.id, tick.toISOString(), uuidv7()]);
  return job && { schedule: s.name, tickAt: tick, queue: job.queue, jobId: job.id, refusal: null };
}

/** Sets a schedule's last_error, unless it says that already. */
async function noteError(sql: Sql, s: ScheduleRow, message: string): Promise<void> {
  if (s.last_error !== message) await sql`update leasehold.schedules set last_error = ${message} where id = ${s.id}`;
}
