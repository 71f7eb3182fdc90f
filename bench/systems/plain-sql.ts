import { randomUUID } from 'node:crypto';
import { connect, type Sql } from '#shared/db/connect.js';
import { timeDrain, idleLatency, type QueueSystem } from './system.js';

/**
 * The reference the queue engine's targets are set against: a job table written by hand, with no
 * library, by the rules measured for a fast one on this machine (docs/performance.md, "Where the
 * speed comes from"), and writing a `job_events` row for every transition as Leasehold does. It has what a job table needs to run
 * no-op jobs and nothing more: no tenants, no per-queue limits or pausing, no retries, no
 * heartbeats, no governor, no webhooks, no cancellation.
 *
 * - Bulk enqueue: `unnest` arrays of 1,000 rows per statement, pipelined in one transaction, the
 *   events written by a data-modifying CTE in the same statement.
 * - Claim: a batch per statement with `FOR UPDATE SKIP LOCKED`, rows addressed by primary key, a
 *   lease token per claim; up to two claims in flight, each at most the concurrency.
 * - Completion: batched, one statement per claim token, fenced by the token.
 * - Wake-ups: LISTEN; a single enqueue carries its NOTIFY inside its own INSERT.
 *
 * It runs on the same driver and pool settings as Leasehold's benchmark (postgres.js through
 * `connect`), so the ratio between the two is the library's own cost.
 */
export function plainSqlSystem(url: string): QueueSystem {
  const sql: Sql = connect(url, { max: 4, application: 'plain-producer' });
  const workerSql: Sql = connect(url, { max: 10, application: 'plain-worker', worker: true });
  const pending = () => sql`select count(*)::int as n from plain.jobs where status <> 'succeeded'`.then(([r]) => r!.n as number);

  /** A worker: runs `handler` for every job it claims until stopped. */
  const start = async (concurrency: number, handler: () => void) => {
    let stopped = false;
    let claimsInFlight = 0;
    let held = 0;
    // Wanted: a claim should go out. Backlog: the last claim came back full, so a second may go out
    // before it returns; otherwise one at a time, until it says whether more are waiting.
    let wanted = true;
    let backlog = false;
    const done = new Map<string, string[]>();
    let completing: Promise<unknown> | undefined;

    const complete = () => {
      if (completing || done.size === 0) return;
      const batches = [...done];
      done.clear();
      completing = Promise.all(
        batches.map(([token, ids]) =>
          workerSql.unsafe(COMPLETE, [ids, token], { prepare: true }).then(
            () => (held -= ids.length),
            (err: unknown) => {
              // Their leases would expire in a real system; here the run is simply short of jobs.
              held -= ids.length;
              console.error('plain-sql completion:', err);
            },
          ),
        ),
      ).finally(() => {
        completing = undefined;
        complete();
        claim();
      });
    };
    const claim = () => {
      while (!stopped && wanted && claimsInFlight < 2) {
        const room = Math.min(concurrency, 2 * concurrency - held);
        if (room <= 0) return;
        const token = randomUUID();
        wanted = backlog;
        claimsInFlight++;
        held += room;
        void workerSql.unsafe<{ id: string }[]>(CLAIM, [room, token], { prepare: true }).then(
          (rows) => {
            claimsInFlight--;
            held -= room - rows.length;
            backlog = rows.length === room;
            if (backlog) wanted = true;
            if (rows.length) {
              for (let i = 0; i < rows.length; i++) handler();
              done.set(token, rows.map((r) => r.id));
            }
            complete();
            claim();
          },
          (err: unknown) => {
            claimsInFlight--;
            held -= room;
            wanted = true;
            console.error('plain-sql claim:', err);
          },
        );
      }
    };
    const wake = () => {
      wanted = true;
      claim();
    };
    const listener = await workerSql.listen('plain_jobs', wake);
    const poll = setInterval(wake, 1_000);
    wake();
    return {
      async stop() {
        stopped = true;
        clearInterval(poll);
        await listener.unlisten();
        while (completing || claimsInFlight) await new Promise((r) => setTimeout(r, 1));
      },
    };
  };

  return {
    name: 'plain-sql',
    async setup() {
      await sql.unsafe(SCHEMA);
    },
    async reset() {
      await sql`truncate plain.jobs, plain.job_events`;
      await sql`vacuum analyze plain.jobs`;
      await sql`vacuum analyze plain.job_events`;
    },
    async bulk(n) {
      const kinds = Array<string>(BULK_ROWS).fill('noop');
      const payloads = Array<string>(BULK_ROWS).fill('{}');
      await sql.begin(async (tx) => {
        const statements: Promise<unknown>[] = [];
        for (let at = 0; at < n; at += BULK_ROWS) {
          const rows = Math.min(BULK_ROWS, n - at);
          statements.push(tx.unsafe(INSERT_MANY, [kinds.slice(0, rows), payloads.slice(0, rows)], { prepare: true }));
        }
        await Promise.all(statements);
      });
    },
    async fill(n) {
      await this.bulk(n);
      await sql`analyze plain.jobs`;
    },
    drain(n, concurrency) {
      return timeDrain(n, (ran) => start(concurrency, ran), async () => (await pending()) === 0);
    },
    latency(samples) {
      return idleLatency(samples, (started) => start(10, started), () => sql.unsafe(INSERT_ONE, [], { prepare: true }));
    },
    async close() {
      await Promise.all([sql.end(), workerSql.end()]);
    },
  };
}

const BULK_ROWS = 1_000;

const SCHEMA = `
create schema plain;
create table plain.jobs (
  id bigint generated always as identity primary key,
  queue text not null default 'default',
  kind text not null,
  payload jsonb not null default '{}',
  status text not null default 'queued' check (status in ('queued', 'running', 'succeeded')),
  priority int not null default 0,
  run_at timestamptz not null default now(),
  attempts int not null default 0,
  lease_token uuid,
  lease_expires_at timestamptz,
  result jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index jobs_claim_idx on plain.jobs (queue, priority, run_at, id) where status = 'queued';
create table plain.job_events (
  id bigint generated always as identity primary key,
  job_id bigint not null,
  type text not null,
  created_at timestamptz not null default now()
);
create index job_events_job_idx on plain.job_events (job_id, id);`;

const INSERT_MANY = `
with j as (insert into plain.jobs (kind, payload) select * from unnest($1::text[], $2::jsonb[]) returning id)
insert into plain.job_events (job_id, type) select id, 'job.queued' from j`;

// The NOTIFY rides in the INSERT's transaction and is delivered at its commit.
const INSERT_ONE = `
with j as (insert into plain.jobs (kind) values ('noop') returning id),
e as (insert into plain.job_events (job_id, type) select id, 'job.queued' from j)
select pg_notify('plain_jobs', '') from j`;

const CLAIM = `
with picked as (
  select id from plain.jobs
  where status = 'queued' and queue = 'default' and run_at <= now()
  order by priority, run_at, id
  limit $1 for update skip locked
), claimed as (
  update plain.jobs
  set status = 'running', attempts = attempts + 1, lease_token = $2::uuid,
      lease_expires_at = now() + interval '30 seconds', updated_at = now()
  where id = any(array(select id from picked))
  returning id
), ev as (
  insert into plain.job_events (job_id, type) select id, 'job.running' from claimed
)
select id from claimed`;

const COMPLETE = `
with done as (
  update plain.jobs
  set status = 'succeeded', lease_token = null, lease_expires_at = null, updated_at = now()
  where id = any($1::bigint[]) and lease_token = $2::uuid
  returning id
)
insert into plain.job_events (job_id, type) select id, 'job.succeeded' from done`;
