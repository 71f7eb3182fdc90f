/**
 * The queue's hot statements, in one place. Each names who runs it and the invariant it protects.
 * Rules, from measurements on the development machine: many rows per statement; rows addressed
 * by primary key (`id = any($ids)`), never by joining a CTE; events written by a data-modifying
 * CTE in the same statement as the transition; NOTIFY after commit, coalesced (Notifier), except the *_AND_WAKE
 * producer statements, which carry it only while no other wake-up of theirs is under way.
 */

import { SYSTEM_TENANT } from './system-tenant.js';

/**
 * Options for running these statements: postgres.js leaves `unsafe()` text unprepared by default,
 * which re-parses and re-plans the claim on every call.
 */
export const PREPARED = { prepare: true } as const;

/** Copies the rows of a `changed` CTE that ended failed into dead_letters, error history and all. */
const DEAD_LETTER_FAILED = `
  insert into leasehold.dead_letters (job_id, tenant_id, kind, queue, payload, priority, attempts,
                                      max_attempts, last_error, errors, job_created_at)
  select id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, last_error, errors, created_at
  from changed where status = 'failed'
  returning 1`;

/**
 * Settles the paid jobs (estimate on record) of a CTE `$ROWS` that reached a terminal state: one
 * governor_settle call for the lot, none when the batch holds no paid job (free kinds pay nothing).
 * The outer statement must read `settled` for it to run.
 */
const SETTLE_PAID = `settled as (
  select leasehold.governor_settle(array_agg(id), array_agg(tenant_id), array_agg(kind), array_agg(estimate_micros))
  from $ROWS where estimate_micros is not null and status in ('succeeded', 'failed', 'cancelled')
  having count(*) > 0
)`;

/**
 * Producers write what the jobs_inserted trigger writes for other inserts (COPY, plain SQL), in
 * their own statement: the `job.queued` events, the queue registration and the tenant_jobs rows,
 * as CTEs over `ins` (RETURNING). The trigger's plpgsql call and its three statements took ~45 µs
 * of a single-job INSERT's ~150 µs in a warm loop; on an idle worker the INSERT's execution fell
 * from 0.30–0.34 to 0.22–0.25 ms (pg_stat_statements, three interleaved runs).
 *
 * The trigger's WHEN (migration 0018) skips a statement that has leasehold.events_written on when
 * its insert ends. EVENTS_WRITTEN_ON is a materialized CTE the insert reads its rows through, so the
 * setting is on before the insert's last row; EVENTS_WRITTEN_OFF sits in the select list of an
 * aggregate over `ins`, computed only after its last row, so a caller's next statement in the same
 * transaction gets the trigger again. A statement that fails leaves nothing: its transaction or
 * savepoint rolls back the setting with the rows.
 *
 * The queue registration is an `insert … on conflict do nothing`, as in the trigger: it holds ROW
 * EXCLUSIVE on queues to the commit, which retention's queue pruning relies on (PRUNE_IDLE_QUEUES).
 */
const EVENTS_WRITTEN_ON = `events_written as materialized (select set_config('leasehold.events_written', 'on', true))`;
const EVENTS_WRITTEN_OFF = `set_config('leasehold.events_written', 'off', true) as events_written`;

/** The CTEs that write an `ins` CTE's events, queue registration and tenant_jobs rows. */
const OWN_EVENTS = `ev as (
  insert into leasehold.job_events (job_id, tenant_id, type, attempt)
  select id, tenant_id, 'job.queued', attempts from ins
), registered as (
  insert into leasehold.queues (name) select distinct queue from ins
  on conflict (name) do nothing
), listed as (
  insert into leasehold.tenant_jobs (tenant_id, job_id)
  select tenant_id, id from ins where tenant_id <> '${SYSTEM_TENANT}'
)`;

/** What `ins` returns for OWN_EVENTS. */
const RETURNING = `returning id, tenant_id, queue, attempts`;

/** The columns a producer's INSERT sets, in its parameters' order ($1…$11; queue.ts columns()). */
const INSERT_INTO_JOBS = `
  insert into leasehold.jobs (id, tenant_id, kind, queue, payload, priority, run_at, max_attempts, idempotency_key,
                             pattern_id, pattern_version)`;

/** The insert the array-taking producer statements share: one typed array per column, unnested. */
const INSERT_FROM_ARRAYS = `${INSERT_INTO_JOBS}
  select id, tenant_id, kind, queue, payload::jsonb, priority, coalesce(run_at, now()), max_attempts, idempotency_key,
         pattern_id, pattern_version
  from events_written,
       unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[], $7::timestamptz[],
              $8::int[], $9::text[], $10::uuid[], $11::int[])
    as x(id, tenant_id, kind, queue, payload, priority, run_at, max_attempts, idempotency_key, pattern_id, pattern_version)`;

/**
 * Producers: inserts a batch given as one typed array per column (fully defaulted; payload as JSON
 * text) with its events. unnest of typed arrays measured ~2× faster than json_to_recordset. Bulks
 * of thousands go through COPY instead (copy-jobs.ts).
 */
export const INSERT_JOBS = `
with ${EVENTS_WRITTEN_ON}, ins as (${INSERT_FROM_ARRAYS}
  ${RETURNING}
), ${OWN_EVENTS}
select count(*)::int as inserted, ${EVENTS_WRITTEN_OFF} from ins`;

/**
 * Producers, when this process has no wake-up on its way: INSERT_JOBS with the NOTIFY for $12's
 * queues in the same transaction, delivered at its commit. That saves a second statement (and its
 * round trip and signal) between the commit and the worker's claim. Under load the wake-ups go
 * after commit, coalesced (Notifier): a NOTIFY inside a write transaction holds the cluster's
 * notify lock through the commit's WAL flush, serialising every notifying commit.
 */
export const INSERT_JOBS_AND_WAKE = `
with ${EVENTS_WRITTEN_ON}, ins as (${INSERT_FROM_ARRAYS}
  ${RETURNING}
), ${OWN_EVENTS}
select count(*)::int as inserted,
       (select count(pg_notify('leasehold_jobs', q)) from unnest($12::text[]) as q)::int as woken,
       ${EVENTS_WRITTEN_OFF}
from ins`;

/**
 * INSERT_JOBS_AND_WAKE for a single job (the common `enqueue()`), one parameter per column instead
 * of one array per column: no arrays to serialise, parse and unnest. Beside the array form,
 * alternating on one connection: 0.57 against 0.61 ms per round trip at p50, 2.0–2.1 against
 * 2.6–2.7 ms at p99, and PostgreSQL's execution 0.140 against 0.156 ms.
 */
export const INSERT_JOB_AND_WAKE = `
with ${EVENTS_WRITTEN_ON}, ins as (${INSERT_INTO_JOBS}
  select $1::uuid, $2::uuid, $3::text, $4::text, $5::text::jsonb, $6::int, coalesce($7::timestamptz, now()), $8::int,
         $9::text, $10::uuid, $11::int
  from events_written
  ${RETURNING}
), ${OWN_EVENTS}
select count(*)::int as inserted, (select count(pg_notify('leasehold_jobs', $4::text)))::int as woken, ${EVENTS_WRITTEN_OFF}
from ins`;

/**
 * The API, for jobs a tenant sent to queues of its choosing: INSERT_JOBS, inserting only when
 * admit_queues($12 names, at most $13 queues, of which at most $15 made by tenant $14) lets every
 * queue exist; a `refusal` ('total' or 'tenant': the bound that refused) means nothing was
 * written. One statement, so a refusal leaves nothing behind with or without a transaction, and
 * no round trip is added: for a queue that exists, one primary-key probe (median
 * ~60 µs over INSERT_JOBS's ~300 µs for one job, on a busy 2-core machine where `select 1` took
 * ~120 µs). Other producers use INSERT_JOBS, and their jobs pay nothing for the bound.
 */
export const INSERT_JOBS_ADMITTED = `
with admit as materialized (
  select leasehold.admit_queues($12::text[], $13::int, $14::uuid, $15::int) as refusal
), ${EVENTS_WRITTEN_ON}, ins as (${INSERT_FROM_ARRAYS}
  where (select refusal from admit) is null
  ${RETURNING}
), ${OWN_EVENTS}
select count(*)::int as inserted, (select refusal from admit) as refusal, ${EVENTS_WRITTEN_OFF} from ins`;

/**
 * The API's ingest, in one statement: reads the pattern's current version (tenant-scoped, not
 * deleted), and only when it is active inserts one manifest.extract job per image with that
 * version stamped into job and payload and $8 (the estimated cost of each; null: not estimated, so
 * not reserved) on record. One round
 * trip instead of two measurably raised ingest throughput on a 2-core machine, where each loopback
 * write costs the API process dearly. The governor's reservation is folded in: it runs only for a
 * metered tenant or under a global ceiling (two primary-key probes otherwise), and a refusal
 * inserts nothing and is returned.
 */
export const INGEST_JOBS = `
with p as (
  select p.current_version as version, v.is_active
  from leasehold.patterns p
  join leasehold.pattern_versions v on v.pattern_id = p.id and v.version = p.current_version
  where p.id = $1::uuid and p.tenant_id = $2::uuid and p.deleted_at is null
), g as (
  select leasehold.governor_reserve($2::uuid, 'manifest.extract', $8::bigint, $6::uuid[]) as refusal
  from p
  where p.is_active and $8::bigint is not null
    and (exists (select 1 from leasehold.credit_accounts where tenant_id = $2::uuid)
         or exists (select 1 from leasehold.governor_settings where global_daily_micros is not null))
), ${EVENTS_WRITTEN_ON}, ins as (
  insert into leasehold.jobs (id, tenant_id, kind, queue, payload, priority, max_attempts, pattern_id, pattern_version,
                              estimate_micros)
  select x.id, $2::uuid, 'manifest.extract', $3::text,
         jsonb_set(x.payload::jsonb, '{pattern_version}', to_jsonb(p.version)), $4::int, $5::int, $1::uuid, p.version,
         $8::bigint
  from events_written, unnest($6::uuid[], $7::text[]) as x(id, payload), p
  where p.is_active and not exists (select 1 from g where g.refusal is not null)
  ${RETURNING}
), ${OWN_EVENTS}
select (select version from p) as version, (select is_active from p) as is_active,
       (select refusal from g) as refusal, count(*)::int as inserted, ${EVENTS_WRITTEN_OFF}
from ins`;

/**
 * Producers with idempotency keys: as INSERT_JOBS, but a key already used by the tenant inserts
 * nothing; `ids` are the jobs inserted.
 */
export const INSERT_JOBS_IDEMPOTENT = `
with ${EVENTS_WRITTEN_ON}, ins as (${INSERT_FROM_ARRAYS}
  on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing
  ${RETURNING}
), ${OWN_EVENTS}
select coalesce(array_agg(id), '{}') as ids, ${EVENTS_WRITTEN_OFF} from ins`;

/** Producers: ids of existing jobs for idempotency keys that INSERT_JOBS_IDEMPOTENT skipped. */
export const SELECT_IDEMPOTENT_IDS = `
select idempotency_key, id from leasehold.jobs
where tenant_id = $1::uuid and idempotency_key = any($2::text[])`;

/**
 * Workers: claims up to $limits[i] ready jobs of each queue $queues[i] (and $total overall) of the
 * kinds it handles. SKIP LOCKED means two claimers never take the same row; each queue's range
 * of jobs_claim_idx is read in claim order (priority, run_at), so the claim stays an index scan
 * at any depth. The lease token is new per claim and fences every later write.
 * With $8 true the claim commits without waiting for the WAL flush, whatever the connection's
 * synchronous_commit (WORKER_ASYNC_CLAIMS, the default): a claim lost in a PostgreSQL crash
 * leaves its jobs queued, and the worker's outcomes for them are refused by the fence, so they run
 * again, as after a worker crash; any durable commit after it (a completion, a cost record)
 * flushes it too. Its job.running events vanish with it, so the event reader sends none before the
 * flush (api/events/wal-flush.ts).
 */
export const CLAIM_JOBS = `
with async_commit as materialized (
  select set_config('synchronous_commit', case when $8::bool then 'off' else current_setting('synchronous_commit') end, true)
),
picked as (
  select j.id
  from async_commit, unnest($1::text[], $2::int[]) as q(name, lim)
  cross join lateral (
    -- The constant limit (no claim takes more: WORKER_BATCH_SIZE ≤ 1,000) keeps the planner's cost
    -- of this scan from growing with the queue: for a limit it cannot know it assumes a tenth of
    -- the table, and at 1,000,000 queued jobs the generic plan then cost ~10 % more than a custom
    -- one, so every claim was planned anew (~0.4 ms, half a single-job claim). Rows are locked as
    -- the outer limit pulls them: no more than q.lim.
    select id from (
      select id from leasehold.jobs
      where status = 'queued' and queue = q.name and run_at <= now() and kind = any($3::text[])
      order by priority, run_at, id
      limit 1000
      for update skip locked
    ) capped
    limit q.lim
  ) j
  -- Pausing takes effect at the next claim, whatever a worker's cached queue list says. The paused
  -- queues' names are read once (queues_paused_idx, nearly always empty) and filtered out of the
  -- list as it is read, in its order. NOT EXISTS made a hash anti join that hashed the worker's
  -- list and handed the queues on in hash order, so the worker's order (busy queues first, each
  -- plan starting one queue further on) never reached the claim.
  where q.name <> all(array(select p.name from leasehold.queues p where p.paused_at is not null))
  limit $4::int
), claimed as (
  update leasehold.jobs
  set status = 'running', attempts = attempts + 1, lease_owner = $5::text, lease_token = $6::uuid,
      lease_expires_at = now() + make_interval(secs => $7::float8 / 1000), heartbeat_at = now(),
      started_at = coalesce(started_at, now()), updated_at = now()
  where id = any(array(select id from picked)) and status = 'queued'
  returning id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, run_at,
            cancel_requested_at is not null as cancel_requested
), ev as (
  insert into leasehold.job_events (job_id, tenant_id, type, attempt)
  select id, tenant_id, 'job.running', attempts from claimed
)
-- The update returns rows in primary-key order (its array scan sorts the ids); hand them out in
-- claim order, so a batch runs lowest priority value first. How long each waited past its run_at
-- comes back as a number: parsing timestamps into Dates was ~3 % of a busy worker's CPU.
select id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, cancel_requested,
       extract(epoch from now() - run_at)::float8 * 1000 as waited_ms
from claimed order by priority, run_at, id`;

/**
 * Workers: records successes. Fenced: a row changes only while it still holds the lease token
 * given for it ($2[i] for $1[i]), so a worker whose lease was reclaimed cannot overwrite the new
 * owner's result, not even when a later claim of its own supplied another token in the same batch.
 * $1 is sorted ascending without duplicates, so width_bucket finds each row's i by binary search:
 * array_position scanned the array for every row (quadratic; ~6 % of PostgreSQL's CPU per job
 * at 350-row batches in a perf profile).
 * $3 maps job id → result (absent means null); the sub-select parses it once (an InitPlan), where a
 * bare `$3::text::jsonb` was re-parsed for every row of a generic plan: 500 rows with results took
 * ~180 ms against ~8 ms without.
 * The webhook outbox commits with the success: a delivery per enabled subscription of the tenant
 * and per job `webhook_url` (webhook_outbox(); a trigger adds each one's webhook.deliver job);
 * `webhooks` counts them so the worker wakes the webhooks queue. An INSERT in a CTE here cost
 * ~25 % more per statement even with no rows (setting up the table, its indexes and trigger), so
 * the function is called only when a row qualifies. Failures and cancellations get theirs from a
 * job_events trigger.
 * With $4 true it carries the worker's `leasehold_events` wake-up (Notifier.takeEventsWake),
 * delivered at its commit, instead of a statement of its own after it.
 * One row comes back, whatever the batch: how many were written, the webhook count, and the ids the
 * fence refused (null when none was). A row per job cost the worker ~1 µs of parsing each.
 */
export const COMPLETE_JOBS = `
with done as (
  update leasehold.jobs
  set status = 'succeeded', result = (select $3::text::jsonb) -> id::text, progress = 100, finished_at = now(),
      updated_at = now(), lease_token = null, lease_expires_at = null
  where id = any($1::uuid[]) and lease_token = ($2::uuid[])[width_bucket(id, $1::uuid[])]
  returning id, tenant_id, kind, status, attempts, estimate_micros, payload ->> 'webhook_url' as webhook_url
), ev as (
  insert into leasehold.job_events (job_id, tenant_id, type, attempt)
  select id, tenant_id, 'job.succeeded', attempts from done
), hooks as (
  select leasehold.webhook_outbox('job.succeeded', array_agg(id), array_agg(tenant_id), array_agg(webhook_url),
                                  array_agg(null::text)) as n
  from done
  where kind <> 'webhook.deliver'
    and (webhook_url is not null
         or tenant_id = any(select tenant_id from leasehold.webhooks where disabled_at is null and 'job.succeeded' = any(events)))
  -- No call, and no insert to set up, when no row has a callback due: the common case costs a hashed probe.
  having count(*) > 0
), ${SETTLE_PAID.replace('$ROWS', 'done')}
select d.written, coalesce((select n from hooks), 0) as webhooks,
       case when d.written < cardinality($1::uuid[]) then array(select unnest($1::uuid[]) except select id from done) end as fenced,
       (select count(pg_notify('leasehold_events', '')) where $4::bool)::int as woke
from (select count(*)::int as written from done) as d cross join (select count(*) from settled) as s`;

/**
 * Workers: records failed, cancelled and handed-back attempts, fenced like COMPLETE_JOBS. A job
 * with attempts left returns to queued at its retry time; otherwise it fails and is copied to
 * dead_letters with its error history. A handed-back job (shutdown) gets its attempt back.
 */
export const FAIL_JOBS = `
with input as (
  select * from json_to_recordset($1::text::json) as x(id uuid, lease_token uuid, outcome text, message text,
                                                error jsonb, retry_at timestamptz)
), changed as (
  update leasehold.jobs j
  set status = case
        when i.outcome = 'cancelled' then 'cancelled'
        when i.outcome = 'handback' then 'queued'
        when i.outcome = 'permanent' or j.attempts >= j.max_attempts then 'failed'
        else 'queued' end::leasehold.job_status,
      run_at = case when i.outcome = 'retry' then i.retry_at
                    when i.outcome = 'handback' then now() else j.run_at end,
      attempts = case when i.outcome = 'handback' then j.attempts - 1 else j.attempts end,
      last_error = coalesce(i.message, j.last_error),
      errors = case when i.error is null then j.errors else leasehold.append_error(j.errors, i.error) end,
      finished_at = case when i.outcome = 'handback' or (i.outcome = 'retry' and j.attempts < j.max_attempts)
                         then null else now() end,
      lease_token = null, lease_expires_at = null, updated_at = now()
  from input i
  where j.id = any(array(select id from input)) and j.id = i.id and j.lease_token = i.lease_token
    and j.status = 'running'
  returning j.*, i.outcome, i.message
), dead as (${DEAD_LETTER_FAILED}
), ev as (
  insert into leasehold.job_events (job_id, tenant_id, type, attempt, data)
  select id, tenant_id,
         case status when 'queued' then case outcome when 'handback' then 'job.queued' else 'job.retrying' end
                     when 'failed' then 'job.failed' else 'job.cancelled' end,
         attempts,
         case when outcome = 'handback' then '{"reason":"worker_shutdown"}'::jsonb
              else jsonb_build_object('error', message, 'run_at', case when status = 'queued' then run_at end) end
  from changed
), ${SETTLE_PAID.replace('$ROWS', 'changed')}
select id, status::text, queue, (select count(*) from dead)::int as dead_lettered
from changed cross join (select count(*) from settled) as s`;

/**
 * Workers: extends the leases of every job the worker holds, in one statement; returns the ids
 * still held (a missing id means the lease was lost) and whether cancellation was requested.
 * Also records that the worker is alive. Never shortens a lease an operator extended (extend_lease).
 */
export const HEARTBEAT = `
with alive as (
  insert into leasehold.workers (id, host, pid, queues, kinds, concurrency)
  values ($4::text, $5::text, $6::int, $7::text[], $8::text[], $9::int)
  on conflict (id) do update set last_seen_at = now(), stopped_at = null
)
update leasehold.jobs
set lease_expires_at = greatest(lease_expires_at, now() + make_interval(secs => $3::float8 / 1000)), heartbeat_at = now()
where id = any($1::uuid[]) and lease_token = any($2::uuid[]) and status = 'running'
returning id, cancel_requested_at is not null as cancel_requested`;

/** Workers: reports progress of held jobs (fenced), one `job.progress` event each. */
export const REPORT_PROGRESS = `
with input as (
  select * from json_to_recordset($1::text::json) as x(id uuid, lease_token uuid, progress real, message text)
), changed as (
  update leasehold.jobs j
  set progress = i.progress, progress_message = i.message, updated_at = now()
  from input i
  where j.id = any(array(select id from input)) and j.id = i.id and j.lease_token = i.lease_token
    and j.status = 'running'
  returning j.id, j.tenant_id, j.attempts, i.progress, i.message
)
insert into leasehold.job_events (job_id, tenant_id, type, attempt, data)
select id, tenant_id, 'job.progress', attempts, jsonb_build_object('progress', progress, 'message', message)
from changed`;

/**
 * Every worker, every few seconds: takes back leases past expiry. SKIP LOCKED lets many
 * reclaimers run at once without blocking or double-counting; the expiry is re-checked under the
 * row lock, so a heartbeat that just landed wins. A job whose cancellation was asked ends
 * cancelled; one out of attempts fails into dead_letters; the rest run again at once.
 */
export const RECLAIM_EXPIRED = `
with stale as (
  select id from leasehold.jobs
  where status = 'running' and lease_expires_at < now()
  order by lease_expires_at
  limit $1::int
  for update skip locked
), changed as (
  update leasehold.jobs
  set status = case when cancel_requested_at is not null then 'cancelled'
                    when attempts >= max_attempts then 'failed'
                    else 'queued' end::leasehold.job_status,
      run_at = now(), rescues = rescues + 1,
      last_error = 'lease expired: worker ' || coalesce(lease_owner, '?') || ' stopped heartbeating',
      errors = errors || jsonb_build_array(jsonb_build_object(
                 'attempt', attempts, 'at', now(), 'code', 'lease_expired', 'worker', lease_owner,
                 'message', 'lease expired: worker ' || coalesce(lease_owner, '?') || ' stopped heartbeating')),
      finished_at = case when cancel_requested_at is not null or attempts >= max_attempts then now() end,
      lease_token = null, lease_expires_at = null, updated_at = now()
  where id = any(array(select id from stale)) and status = 'running' and lease_expires_at < now()
  returning *
), dead as (${DEAD_LETTER_FAILED}
), ev as (
  insert into leasehold.job_events (job_id, tenant_id, type, attempt, data)
  select id, tenant_id,
         case status when 'queued' then 'job.retrying' when 'failed' then 'job.failed' else 'job.cancelled' end,
         attempts, jsonb_build_object('error', last_error, 'reason', 'lease_expired')
  from changed
), ${SETTLE_PAID.replace('$ROWS', 'changed')}
select id, status::text, queue, kind, (select count(*) from dead)::int as dead_lettered
from changed cross join (select count(*) from settled) as s`;

/** Workers: the queues that exist and whether an operator paused them. */
export const LIST_QUEUES = `select name, paused_at is not null as paused from leasehold.queues`;

/** Workers, on stop: marks the worker gone so diagnosis stops counting it. */
export const WORKER_STOPPED = `update leasehold.workers set stopped_at = now() where id = $1::text`;

/** Workers, at start: forgets workers unseen for a week (a row is added per worker process). */
export const PRUNE_WORKERS = `
delete from leasehold.workers where last_seen_at < now() - interval '7 days'`;

/**
 * Workers, with every queue refresh (about once a second): why paid kinds may not be claimed now
 * (the global daily ceiling is reached), or null. The claim itself stays free of governor checks.
 */
export const GOVERNOR_BRAKE = `select leasehold.governor_brake_reason() as reason`;

/**
 * Producers of paid jobs outside ingest, in their transaction after inserting them: reserves the
 * estimate of each (or refuses all: the caller rolls back) and records it on the jobs.
 */
export const RESERVE_JOBS = `
with r as (
  select leasehold.governor_reserve($1::uuid, $2::text, $3::bigint, $4::uuid[]) as refusal
), u as (
  update leasehold.jobs set estimate_micros = $3::bigint
  where id = any($4::uuid[]) and tenant_id = $1::uuid and (select refusal from r) is null
  returning 1
)
select (select refusal from r) as refusal, (select count(*) from u)::int as reserved`;

/** Workers, when a model call returns: its cost event and the day's roll-up (leasehold.record_cost). */
export const RECORD_COST = `
select leasehold.record_cost($1::uuid, $2::uuid, $3::text, $4::int, $5::text, $6::text, $7::text, $8::date,
                             $9::bigint, $10::bigint, $11::bigint, $12::bigint,
                             $13::bigint, $14::bigint, $15::bigint, $16::bigint, $17::bigint) as id`;

/** Every named statement, for the test that prepares each one against the real schema. */
export const STATEMENTS = {
  INSERT_JOBS,
  INSERT_JOBS_AND_WAKE,
  INSERT_JOB_AND_WAKE,
  INSERT_JOBS_IDEMPOTENT,
  INSERT_JOBS_ADMITTED,
  INGEST_JOBS,
  SELECT_IDEMPOTENT_IDS,
  CLAIM_JOBS,
  COMPLETE_JOBS,
  FAIL_JOBS,
  HEARTBEAT,
  REPORT_PROGRESS,
  RECLAIM_EXPIRED,
  LIST_QUEUES,
  WORKER_STOPPED,
  PRUNE_WORKERS,
  GOVERNOR_BRAKE,
  RESERVE_JOBS,
  RECORD_COST,
} as const;
