/**
 * The statements of the API's event reader and streams. Each runs with bound, cast parameters;
 * api/events/event-sql.pg.test.ts prepares every one against the real schema.
 */

/** A job_events row as the reader hands it on. */
export interface EventRow {
  id: number;
  job_id: string;
  tenant_id: string;
  type: string;
  attempt: number | null;
  data: Record<string, unknown> | null;
  created_at: Date;
}

/**
 * The reader, once per process start: the newest id and, in the same snapshot, which ids of the
 * last $1 below it are visible (the others may belong to transactions still open, so are watched),
 * and an xid taken after that snapshot (`after`: see gap-tracker.ts).
 */
export const READ_START = `
with s as materialized (
  select pg_current_snapshot()::text as snap, coalesce((select max(id) from leasehold.job_events), 0) as max_id,
         pg_current_xact_id()::text as after
)
select s.snap, s.after, s.max_id::float8 as max_id,
       array(select id::float8 from leasehold.job_events where id > s.max_id - $1::bigint and id <= s.max_id order by id) as ids
from s`;

/**
 * The reader, on every wake-up: a page of events above the cursor ($1, at most $2 rows), plus the
 * watched ids that may arrive late ($3[i]..$4[i]), with the snapshot the statement saw (one
 * statement, one snapshot: the gap logic relies on it), and an xid taken after that snapshot (`after`:
 * see gap-tracker.ts). Always one row at least, for the snapshot.
 * `durable` is true when the WAL is flushed as far as it was written once the snapshot was taken:
 * every transaction the snapshot sees wrote its commit record before it became visible, so all the
 * rows read are on disk. Otherwise some may come from a transaction that committed without waiting
 * for the flush (a claim, by default) and a crash could still take them back: see wal-flush.ts.
 */
export const READ_EVENTS = `
with s as materialized (
  select pg_current_snapshot()::text as snap, pg_current_xact_id()::text as after, pg_current_wal_insert_lsn() as lsn
),
page as (
  select * from leasehold.job_events where id > $1::bigint order by id limit $2::int
),
late as (
  select e.* from unnest($3::bigint[], $4::bigint[]) as r(lo, hi)
  cross join lateral (select * from leasehold.job_events e where e.id between r.lo and r.hi) e
),
rows as (select * from page union all select * from late)
select s.snap, s.after, s.lsn::text as lsn, pg_current_wal_flush_lsn() >= s.lsn as durable,
       r.id::float8 as id, r.job_id, r.tenant_id, r.type, r.attempt, r.data, r.created_at,
       (select count(*) from page)::int as page_rows
from s left join rows r on true
order by r.id`;

/**
 * Makes the WAL durable up to $1 (a read's `lsn`): unless it is flushed that far already, a
 * transactional logical message (no table, any wal_level; it gives the transaction an id, so its
 * commit waits for the flush, which covers every record before its own) is committed with
 * synchronous_commit on, whatever the connection's setting.
 */
export const FLUSH_WAL = `
select set_config('synchronous_commit', 'on', true) as synchronous_commit,
       case when pg_current_wal_flush_lsn() >= $1::pg_lsn then false
            else pg_logical_emit_message(true, 'leasehold', 'flush') is not null end as flushed`;

/** True once the WAL is flushed to $1 (by another commit or the WAL writer, within wal_writer_delay). */
export const WAL_FLUSHED = `select pg_current_wal_flush_lsn() >= $1::pg_lsn as flushed`;

/** The public view's columns of `jobs j`, as a stream shows them (no result: a link instead). */
const VIEW_COLUMNS = `
  j.id, j.tenant_id, j.kind, j.status::text as status, j.attempts, j.max_attempts, j.progress, j.progress_message,
  j.last_error, j.pattern_id`;

/** The hub, per batch of events: the current state of their jobs, addressed by primary key. */
export const READ_JOB_VIEWS = `
select ${VIEW_COLUMNS} from leasehold.jobs j where j.id = any($1::uuid[])`;

/**
 * `GET /v1/events` resuming after Last-Event-ID: the tenant's ($1) events in ($2, $3], with their
 * jobs' views, $4 rows at most, narrowed to a kind ($5), a pattern ($6) and event types ($7) when
 * given. Walks the primary key range and joins each job by id.
 */
export const REPLAY_EVENTS = `
select e.id::float8 as event_id, e.type, e.attempt, e.data, e.created_at as event_at, ${VIEW_COLUMNS}
from leasehold.job_events e
join leasehold.jobs j on j.id = e.job_id and j.tenant_id = e.tenant_id
where e.tenant_id = $1::uuid and e.id > $2::bigint and e.id <= $3::bigint
  and ($5::text is null or j.kind = $5::text)
  and ($6::uuid is null or j.pattern_id = $6::uuid)
  and ($7::text[] is null or e.type = any($7::text[]))
order by e.id
limit $4::int`;

/** `GET /v1/jobs/:id/events` resuming: one job's ($1, of tenant $5) events in ($2, $3], $4 at most, by job_events_job_idx. */
export const REPLAY_JOB_EVENTS = `
select e.id::float8 as event_id, e.type, e.attempt, e.data, e.created_at as event_at, ${VIEW_COLUMNS}
from leasehold.job_events e
join leasehold.jobs j on j.id = e.job_id and j.tenant_id = $5::uuid
where e.job_id = $1::uuid and e.id > $2::bigint and e.id <= $3::bigint
order by e.id
limit $4::int`;

/**
 * Where a per-job stream without Last-Event-ID starts (tenant-scoped): the job's status and its two
 * newest terminal event ids. A job retried after it ended has more than one; the stream replays
 * its current run, from just after the terminal event that ended the run before (or from its first
 * event).
 */
export const READ_JOB_STREAM_START = `
select j.status::text as status, t.ids[1] as terminal_event_id, t.ids[2] as previous_terminal_event_id
from leasehold.jobs j
cross join lateral (
  select array(
    select e.id::float8 from leasehold.job_events e
    where e.job_id = j.id and e.type in ('job.succeeded', 'job.failed', 'job.cancelled')
    order by e.id desc limit 2) as ids
) t
where j.id = $1::uuid and j.tenant_id = $2::uuid`;

/** Every statement above, for the test that prepares each one. */
export const EVENT_STATEMENTS = { READ_START, READ_EVENTS, FLUSH_WAL, WAL_FLUSHED, READ_JOB_VIEWS, REPLAY_EVENTS, REPLAY_JOB_EVENTS, READ_JOB_STREAM_START } as const;
