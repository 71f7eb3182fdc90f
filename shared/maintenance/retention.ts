import type { Sql } from '#shared/db/connect.js';
import type { LocalObjectStore } from '#shared/storage/local-store.js';

/** How long finished rows are kept. */
export interface RetentionPolicy {
  /**
   * Succeeded, failed and cancelled jobs (and their events) and finished webhook deliveries older
   * than this go; deleted patterns with the last job that names them; uploads a day later
   * (UPLOAD_MARGIN_DAYS), once no job left names them.
   */
  jobsDays: number;
  /** Dead letters (and the admin audit log) older than this go. */
  deadLettersDays: number;
  /** Queues with no queued or running job, not paused, go once found so for this long (default 24). */
  queueIdleHours?: number;
  /** How long a batch of idle queues waits for its lock on queues, holding producers back meanwhile (default 100). */
  queueLockTimeoutMs?: number;
  /** Rows per statement; each statement is its own short transaction. */
  batchSize?: number;
}

/** What one retention pass deleted. */
export interface RetentionReport {
  jobs: number;
  events: number;
  deadLetters: number;
  scheduleTicks: number;
  adminActions: number;
  /** Finished webhook deliveries (their attempts go with them, by cascade). */
  webhookDeliveries: number;
  /** Rows of `uploads`: presigned uploads and jobs' outputs. */
  uploads: number;
  /** Idle queues deleted; null when the lock on queues was not had in time for any (the next pass tries again). */
  queues: number | null;
  /** Deleted patterns no job or schedule names any more. */
  patterns: number;
  /** The versions of those patterns. */
  patternVersions: number;
  /** Their objects, removed from the local store (on S3, a lifecycle rule expires them). */
  objects: number;
  /** Temporary files of local store transfers whose process died mid-way. */
  abandonedFiles: number;
}

/**
 * How much longer than RETENTION_JOBS_DAYS an upload is kept after its presign or its last use.
 * A job is made just after the API marks its uploads used: with this margin, every job that named
 * an upload that old was made before the jobs cutoff, where DELETE_UNUSED_UPLOADS looks for it.
 */
export const UPLOAD_MARGIN_DAYS = 1;

/** Temporary files of the local store older than this belong to no live transfer (one lasts at most 5 minutes). */
const ABANDONED_FILE_MS = 3_600_000;

/** The advisory lock one retention runner holds across every process ("leasehrt"). */
export const RETENTION_LOCK_KEY = 0x6c6561736568_7274n;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/**
 * How long a deleted pattern is kept whatever names it. An ingest that read the pattern just before
 * the delete committed may commit its job just after; its transaction is long over by then.
 */
const DELETED_PATTERN_GRACE_MS = HOUR_MS;

/**
 * One batch of finished jobs, with their events, tenant_jobs rows and job_settlements rows.
 * Candidates are a primary-key range: ids are UUIDv7, so jobs created before the cutoff sort below
 * uuid_v7_floor(cutoff), and a cursor ($1) walks past rows kept (still running, finished later, or
 * failed with an open dead letter: those stay until the dead letter is requeued or pruned, so
 * requeueing it still works). Events go through job_events_job_idx, tenant_jobs and
 * job_settlements by their primary keys.
 */
export const PRUNE_JOBS = `
with cand as (
  select id from leasehold.jobs
  where id > $1::uuid and id < leasehold.uuid_v7_floor($2::timestamptz)
  order by id limit $3::int
), del as (
  delete from leasehold.jobs j
  where j.id = any(array(select id from cand))
    and j.status in ('succeeded', 'failed', 'cancelled') and j.finished_at < $2::timestamptz
    and not exists (select 1 from leasehold.dead_letters d where d.job_id = j.id and d.requeued_at is null)
  returning j.id, j.tenant_id
), ev as (
  delete from leasehold.job_events where job_id = any(array(select id from del)) returning 1
), tj as (
  delete from leasehold.tenant_jobs t using del where t.tenant_id = del.tenant_id and t.job_id = del.id returning 1
), js as (
  delete from leasehold.job_settlements where job_id = any(array(select id from del)) returning 1
)
select (select id from cand order by id desc limit 1)::text as last_id, (select count(*) from cand)::int as scanned,
       (select count(*) from del)::int as jobs, (select count(*) from ev)::int as events`;

/** One batch of dead letters failed before $2, walked by primary key (UUIDv7 of the failure time). */
export const PRUNE_DEAD_LETTERS = `
with cand as (
  select id from leasehold.dead_letters
  where id > $1::uuid and id < leasehold.uuid_v7_floor($2::timestamptz)
  order by id limit $3::int
), del as (
  delete from leasehold.dead_letters where id = any(array(select id from cand)) and failed_at < $2::timestamptz
  returning 1
)
select (select id from cand order by id desc limit 1)::text as last_id, (select count(*) from cand)::int as scanned,
       (select count(*) from del)::int as deleted`;

/**
 * One batch of webhook deliveries that finished (delivered, failed, skipped) before $2, walked by
 * primary key (UUIDv7 of when the delivery was made); their webhook_delivery_attempts go by
 * cascade. A delivery still pending stays, however old.
 */
export const PRUNE_WEBHOOK_DELIVERIES = `
with cand as (
  select id from leasehold.webhook_deliveries
  where id > $1::uuid and id < leasehold.uuid_v7_floor($2::timestamptz)
  order by id limit $3::int
), del as (
  delete from leasehold.webhook_deliveries
  where id = any(array(select id from cand)) and status in ('delivered', 'failed', 'skipped')
    and coalesce(delivered_at, last_attempt_at, occurred_at) < $2::timestamptz
  returning 1
)
select (select id from cand order by id desc limit 1)::text as last_id, (select count(*) from cand)::int as scanned,
       (select count(*) from del)::int as deleted`;

/**
 * One batch of uploads made before $2 whose URL has expired and that no job has named since $2
 * (`used_at`), walked by primary key (UUIDv7 of the presign), locked for the delete that follows in
 * the same transaction. SKIP LOCKED: rows the API is marking used are left for the next pass.
 */
export const STALE_UPLOADS = `
with cand as (
  select id from leasehold.uploads
  where id > $1::uuid and id < leasehold.uuid_v7_floor($2::timestamptz)
  order by id limit $3::int
), stale as (
  select u.id from leasehold.uploads u
  where u.id = any(array(select id from cand))
    and u.expires_at < $2::timestamptz and coalesce(u.used_at, u.created_at) < $2::timestamptz
  for update of u skip locked
)
select (select id from cand order by id desc limit 1)::text as last_id, (select count(*) from cand)::int as scanned,
       array(select id from stale)::text[] as ids`;

/** What an upload's key looks like anywhere in a payload or a result (the whole key is group 1). */
const UPLOAD_KEY_PATTERN = `'(uploads/[0-9A-Fa-f-]{36}/[A-Za-z0-9._/-]+)'`;

/**
 * Once per pass, before the uploads are walked: the keys (lowercased) that the jobs and schedules
 * which may still need an upload name, into a table of this session's that DELETE_UNUSED_UPLOADS
 * probes by primary key. Jobs made by the API since an upload was last used would have marked it
 * used, so the jobs to search are those made before the jobs cutoff ($1: what PRUNE_JOBS left
 * there, which is what may still run, be retried, or point at an output), and every queued or
 * running job and every schedule (made by SQL or by a schedule, they mark nothing). A key is found
 * by its shape anywhere in a payload or result, so every kind's references count, not only the
 * built-in paths (image.storage_key, images[], image, mask, result.storage_key). Each search goes
 * through the primary key or a partial index.
 */
export const COLLECT_NAMED_UPLOADS = `
create temporary table retention_named_uploads on commit preserve rows as
with named as (
  select j.payload::text || coalesce(j.result::text, '') as text from leasehold.jobs j where j.id < leasehold.uuid_v7_floor($1::timestamptz)
  union all
  select j.payload::text from leasehold.jobs j where j.status = 'queued'
  union all
  select j.payload::text from leasehold.jobs j where j.status = 'running'
  union all
  select s.payload::text from leasehold.schedules s
)
select distinct lower(m[1]) as key
from named cross join lateral regexp_matches(named.text, ${UPLOAD_KEY_PATTERN}, 'g') m`;

/** The collected keys' primary key, for DELETE_UNUSED_UPLOADS's probes. */
export const INDEX_NAMED_UPLOADS = `alter table pg_temp.retention_named_uploads add primary key (key)`;

/** Drops the collected keys at the end of a pass (the session's end would too). */
export const DROP_NAMED_UPLOADS = `drop table if exists pg_temp.retention_named_uploads`;

/**
 * Deletes the uploads $1 that no job or schedule names, returning their keys: none that
 * COLLECT_NAMED_UPLOADS found, and none that a queued or running job made since then ($2: the
 * start of its transaction, less JOBS_SINCE_MARGIN_MS; a walk of the primary key from there) or
 * any schedule names, read again for every batch: those are what an operator's SQL or the CLI may
 * add mid-pass. Jobs the API makes mark their uploads used first, which STALE_UPLOADS sees.
 */
export const DELETE_UNUSED_UPLOADS = `
with named as (
  select j.payload::text as text from leasehold.jobs j
  where j.id >= leasehold.uuid_v7_floor($2::timestamptz) and j.status in ('queued', 'running')
  union all
  select s.payload::text from leasehold.schedules s
), refs as (
  select lower(m[1]) as key
  from named cross join lateral regexp_matches(named.text, ${UPLOAD_KEY_PATTERN}, 'g') m
)
delete from leasehold.uploads u
where u.id = any($1::uuid[])
  and not exists (select 1 from pg_temp.retention_named_uploads n where n.key = lower(u.storage_key))
  and not exists (select 1 from refs where refs.key = lower(u.storage_key))
returning u.storage_key`;

/**
 * One batch of deleted patterns, with their versions, that nothing reads any more: deleted before
 * $2 and named by no job (a job keeps its pattern_id until PRUNE_JOBS takes it, and the manifest
 * route, the worker and webhooks read its version through it) nor by a schedule's manifest.extract
 * payload. Walked by primary key: patterns are few (MAX_PATTERNS_PER_TENANT live per tenant);
 * the jobs are probed through jobs_pattern_idx.
 */
export const PRUNE_DELETED_PATTERNS = `
with cand as (
  select id from leasehold.patterns where id > $1::uuid order by id limit $3::int
), del as (
  delete from leasehold.patterns p
  where p.id = any(array(select id from cand)) and p.deleted_at < $2::timestamptz
    and not exists (select 1 from leasehold.jobs j where j.tenant_id = p.tenant_id and j.pattern_id = p.id)
    and not exists (select 1 from leasehold.schedules s
                    where s.tenant_id = p.tenant_id and s.kind = 'manifest.extract' and s.payload->>'pattern_id' = p.id::text)
  returning p.id
), ver as (
  delete from leasehold.pattern_versions where pattern_id = any(array(select id from del)) returning 1
)
select (select id from cand order by id desc limit 1)::text as last_id, (select count(*) from cand)::int as scanned,
       (select count(*) from del)::int as patterns, (select count(*) from ver)::int as versions`;

/** One batch of schedule ticks older than $1 (each schedule's range of the primary key). */
export const PRUNE_SCHEDULE_TICKS = `
delete from leasehold.schedule_ticks where ctid = any(array(
  select t.ctid from leasehold.schedules s
  cross join lateral (select ctid from leasehold.schedule_ticks t
                      where t.schedule_id = s.id and t.tick_at < $1::timestamptz limit $2::int) t
  limit $2::int))
returning 1`;

/**
 * One batch of the admin audit log older than $1, a range of admin_actions_at_idx: tenants' API
 * cancels and retries are logged as well as operators' actions, so the table can grow large.
 */
export const PRUNE_ADMIN_ACTIONS = `
delete from leasehold.admin_actions where id = any(array(
  select id from leasehold.admin_actions where at < $1::timestamptz order by at limit $2::int))
returning 1`;

/**
 * A queue is live while a job in it is queued (a probe of jobs_claim_idx, whose leading column is
 * the queue) or running (the running rows are read once, through jobs_lease_expiry_idx: at most
 * the workers' total concurrency). Finished jobs do not hold a queue: only a retry brings one back,
 * and retry_job_unaudited registers its queue again.
 */
const LIVE = `(exists (select 1 from leasehold.jobs j where j.status = 'queued' and j.queue = q.name)
   or q.name in (select r.queue from leasehold.jobs r where r.status = 'running'))`;

/**
 * Marks each queue found without a live job idle since now, and clears the mark of one found
 * live; only queues whose state changed are written. Retention's passes (RETENTION_CRON) are the
 * only observer, so the insert path never pays for knowing when a queue was last used.
 */
export const MARK_IDLE_QUEUES = `
update leasehold.queues q set idle_since = case when q.idle_since is null then now() end
where (q.idle_since is not null) = ${LIVE}`;

/** Whether any queue is due to go: then, and only then, PRUNE_IDLE_QUEUES takes its lock. */
export const IDLE_QUEUES_DUE = `
select exists (select 1 from leasehold.queues where idle_since < $1::timestamptz and paused_at is null) as due`;

/**
 * One batch of queues marked idle before $1, not paused and still without a live job, walked by
 * name from $3. Run under PRUNE_QUEUES_LOCK: every statement that registers a queue (the jobs
 * insert trigger, admit_queues, pause_queue, retry_job_unaudited) holds ROW EXCLUSIVE on queues
 * to its commit, so taking the lock waits for every transaction that may hold a job this
 * statement's snapshot could not see, and holds back those that come after it until this commits
 * (they then register the queue again). Without it, a job inserted into an existing queue while
 * the delete ran would commit into a queue that no longer exists, and no worker serving all
 * queues would claim it.
 */
export const PRUNE_IDLE_QUEUES = `
with cand as (
  select name from leasehold.queues
  where name > $3::text and idle_since < $1::timestamptz and paused_at is null
  order by name limit $2::int
), del as (
  delete from leasehold.queues q
  where q.name = any(array(select name from cand)) and not ${LIVE}
  returning 1
)
select (select max(name) from cand) as last_name, (select count(*) from cand)::int as scanned,
       (select count(*) from del)::int as deleted`;

/** Taken for each PRUNE_IDLE_QUEUES batch: conflicts with ROW EXCLUSIVE (every insert), not with reads (claims). */
export const PRUNE_QUEUES_LOCK = `lock table leasehold.queues in share row exclusive mode`;

// Producers that register a queue wait behind the lock: for no longer than this while retention
// waits for it, then for one batch. A pass that does not get it leaves the queues to the next.
const QUEUE_LOCK_TIMEOUT_MS = 100;
// SQLSTATE 55P03 lock_not_available: lock_timeout expired.
const LOCK_NOT_AVAILABLE = '55P03';

const MIN_UUID = '00000000-0000-0000-0000-000000000000';

/**
 * How far before COLLECT_NAMED_UPLOADS's snapshot DELETE_UNUSED_UPLOADS looks for jobs made since.
 * A job's UUIDv7 id is made as it is inserted, so one committed after the snapshot has an id from
 * after it, or from an insert whose transaction was still open then: those open for longer than
 * this are missed, as a transaction still open at a DELETE's snapshot always was. Every batch reads
 * the queued and running jobs made in this window, so it stays short.
 */
const JOBS_SINCE_MARGIN_MS = 10_000;

/**
 * Deletes what the policy says is old enough, in batches of short transactions, so the hot jobs
 * table stays small. Holds a session advisory lock meanwhile: a second runner, in this process or
 * any other, returns null at once instead of doing the same work.
 */
export async function runRetention(
  sql: Sql,
  policy: RetentionPolicy,
  now = new Date(),
  /** The local store, whose objects go with their rows; absent on S3 (a bucket lifecycle rule expires objects there). */
  store?: Pick<LocalObjectStore, 'delete' | 'sweepIncoming'>,
): Promise<RetentionReport | null> {
  const batch = policy.batchSize ?? 1_000;
  const jobsCutoff = new Date(now.getTime() - policy.jobsDays * DAY_MS);
  const deadCutoff = new Date(now.getTime() - policy.deadLettersDays * DAY_MS);
  const uploadsCutoff = new Date(jobsCutoff.getTime() - UPLOAD_MARGIN_DAYS * DAY_MS);
  const conn = await sql.reserve();
  try {
    const [lock] = await conn<{ got: boolean }[]>`select pg_try_advisory_lock(${RETENTION_LOCK_KEY.toString()}::bigint) as got`;
    if (!lock!.got) return null;
    try {
      const report: RetentionReport = {
        jobs: 0, events: 0, deadLetters: 0, scheduleTicks: 0, adminActions: 0, webhookDeliveries: 0, uploads: 0, patterns: 0, patternVersions: 0, queues: 0, objects: 0, abandonedFiles: 0,
      };
      // Dead letters first: a failed job is kept while its dead letter is open, so one pass frees both.
      await walk<{ deleted: number }>(conn, PRUNE_DEAD_LETTERS, deadCutoff, batch, (r) => (report.deadLetters += r.deleted));
      await walk<{ jobs: number; events: number }>(conn, PRUNE_JOBS, jobsCutoff, batch, (r) => {
        report.jobs += r.jobs;
        report.events += r.events;
      });
      await walk<{ deleted: number }>(conn, PRUNE_WEBHOOK_DELIVERIES, jobsCutoff, batch, (r) => (report.webhookDeliveries += r.deleted));
      // After the jobs: an upload stays while a job still in the table names it.
      await pruneUploads(conn, uploadsCutoff, jobsCutoff, batch, store, (deleted) => {
        report.uploads += deleted;
        if (store) report.objects += deleted;
      });
      if (store) report.abandonedFiles = await store.sweepIncoming(ABANDONED_FILE_MS);
      // After the jobs: a deleted pattern goes once the last job that ran with it has.
      await walk<{ patterns: number; versions: number }>(conn, PRUNE_DELETED_PATTERNS, new Date(now.getTime() - DELETED_PATTERN_GRACE_MS), batch, (r) => {
        report.patterns += r.patterns;
        report.patternVersions += r.versions;
      });
      report.scheduleTicks = await drain(conn, PRUNE_SCHEDULE_TICKS, [jobsCutoff.toISOString(), batch], batch);
      report.adminActions = await drain(conn, PRUNE_ADMIN_ACTIONS, [deadCutoff.toISOString(), batch], batch);
      // Last: the jobs deleted above no longer hold their queues.
      const queueCutoff = new Date(now.getTime() - (policy.queueIdleHours ?? 24) * HOUR_MS);
      report.queues = await pruneIdleQueues(sql, conn, queueCutoff, batch, policy.queueLockTimeoutMs ?? QUEUE_LOCK_TIMEOUT_MS);
      return report;
    } finally {
      await conn`select pg_advisory_unlock(${RETENTION_LOCK_KEY.toString()}::bigint)`;
    }
  } finally {
    conn.release();
  }
}

/**
 * Marks idle queues, then deletes those idle since before `cutoff`, a batch per transaction, each
 * under PRUNE_QUEUES_LOCK. Returns how many went; null when the first lock was not had in time.
 */
async function pruneIdleQueues(sql: Sql, conn: Sql, cutoff: Date, batch: number, lockTimeoutMs: number): Promise<number | null> {
  await conn.unsafe(MARK_IDLE_QUEUES);
  const [due] = await conn.unsafe<{ due: boolean }[]>(IDLE_QUEUES_DUE, [cutoff.toISOString()]);
  let deleted = 0;
  if (!due!.due) return deleted;
  for (let cursor = ''; ; ) {
    let r: { last_name: string | null; scanned: number; deleted: number };
    try {
      r = await sql.begin(async (tx) => {
        await tx`select set_config('lock_timeout', ${`${lockTimeoutMs}ms`}, true)`;
        await tx.unsafe(PRUNE_QUEUES_LOCK);
        const [row] = await tx.unsafe<{ last_name: string | null; scanned: number; deleted: number }[]>(PRUNE_IDLE_QUEUES, [cutoff.toISOString(), batch, cursor]);
        return row!;
      });
    } catch (err) {
      if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) return deleted || null;
      throw err;
    }
    deleted += r.deleted;
    if (r.scanned < batch || r.last_name === null) return deleted;
    cursor = r.last_name;
  }
}

/**
 * Runs a primary-key-walking batch delete (params: cursor, cutoff, batch; one row with `last_id`
 * and `scanned`) from the lowest id until a batch scans short, handing each batch's row to `add`.
 */
async function walk<R>(conn: Sql, statement: string, cutoff: Date, batch: number, add: (r: R) => void): Promise<void> {
  for (let cursor = MIN_UUID; ; ) {
    const [r] = await conn.unsafe<(R & { last_id: string | null; scanned: number })[]>(statement, [cursor, cutoff.toISOString(), batch]);
    add(r!);
    if (r!.scanned < batch || !r!.last_id) return;
    cursor = r!.last_id;
  }
}

/**
 * Deletes unused uploads batch by batch (STALE_UPLOADS, then DELETE_UNUSED_UPLOADS), each batch in
 * one transaction that removes the objects before it commits: a failure rolls the rows back, and
 * the next pass removes what is left (removing a missing object is no error). Until the commit the
 * rows stay locked, so the API, marking one used, waits and then finds neither row nor object.
 * The payloads of the jobs that may name an upload are read once per pass (COLLECT_NAMED_UPLOADS),
 * not once per batch (~360 ms a batch at 20,000 queued jobs): with 5,000 stale uploads, a whole
 * retention pass ran 5.2–5.8× faster in batches of 1,000 (1.9 s → 0.36 s) and 39× in batches of 100.
 */
async function pruneUploads(
  conn: Sql,
  cutoff: Date,
  jobsCutoff: Date,
  batch: number,
  store: Pick<LocalObjectStore, 'delete'> | undefined,
  add: (deleted: number) => void,
): Promise<void> {
  let since: string | undefined;
  try {
    for (let cursor: string | null = MIN_UUID; cursor; ) {
      await conn`begin`;
      try {
        const [r]: { last_id: string | null; scanned: number; ids: string[] }[] = await conn.unsafe(STALE_UPLOADS, [cursor, cutoff.toISOString(), batch]);
        let deleted: { storage_key: string }[] = [];
        if (r!.ids.length) {
          // A pass that finds no stale upload reads no payload; one that does reads them once.
          since ??= await collectNamedUploads(conn, jobsCutoff);
          deleted = await conn.unsafe<{ storage_key: string }[]>(DELETE_UNUSED_UPLOADS, [r!.ids, since]);
        }
        for (const { storage_key } of deleted) await store?.delete(storage_key);
        await conn`commit`;
        add(deleted.length);
        cursor = r!.scanned < batch ? null : r!.last_id;
      } catch (err) {
        await conn`rollback`;
        throw err;
      }
    }
  } finally {
    if (since) await conn.unsafe(DROP_NAMED_UPLOADS);
  }
}

/**
 * Runs COLLECT_NAMED_UPLOADS in the caller's transaction (its table outlives the commit) and
 * returns where DELETE_UNUSED_UPLOADS starts looking for jobs made since.
 */
async function collectNamedUploads(conn: Sql, jobsCutoff: Date): Promise<string> {
  // A table left by a pass whose connection failed mid-way would make the collection fail.
  await conn.unsafe(DROP_NAMED_UPLOADS);
  // The transaction's start: everything committed before it is in the collection's snapshot.
  const [now] = await conn<{ at: Date }[]>`select now() as at`;
  await conn.unsafe(COLLECT_NAMED_UPLOADS, [jobsCutoff.toISOString()]);
  await conn.unsafe(INDEX_NAMED_UPLOADS);
  return new Date(now!.at.getTime() - JOBS_SINCE_MARGIN_MS).toISOString();
}

/** Runs a batch delete until a batch comes back short; returns the rows deleted. */
async function drain(conn: Sql, statement: string, params: (string | number)[], batch: number): Promise<number> {
  let total = 0;
  for (;;) {
    const rows = await conn.unsafe(statement, params);
    total += rows.length;
    if (rows.length < batch) return total;
  }
}
