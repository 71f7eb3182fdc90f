import { Gauge } from 'prom-client';
import type { Sql } from '../db/connect.js';
import type { Logger } from '../log.js';
import type { Metrics } from './metrics.js';

// A scrape that finds the database slow must not pile up behind it: give up and report nothing.
const SCRAPE_TIMEOUT_MS = 2_000;

interface Row {
  metric: 'depth' | 'jobs' | 'dead' | 'workers';
  queue: string | null;
  kind: string | null;
  status: string | null;
  n: number;
}

/**
 * Every count reads a partial index's range, never the whole jobs table: queued rows through
 * jobs_claim_idx (depth is index-only: queue and run_at are in it), running rows through
 * jobs_lease_expiry_idx (at most the workers' total concurrency), open dead letters through
 * dead_letters_open_idx. Terminal jobs are not counted here (that would scan the table's history):
 * leasehold_job_attempts_total counts them as they finish. api/dashboard-plan.pg.test.ts explains it.
 */
export const GAUGES_SQL = `
select 'depth' as metric, queue, null as kind, case when run_at <= now() then 'ready' else 'scheduled' end as status, count(*)::int as n
  from leasehold.jobs where status = 'queued' group by 2, 4
union all
select 'jobs', queue, kind, 'queued', count(*)::int from leasehold.jobs where status = 'queued' group by 2, 3
union all
select 'jobs', queue, kind, 'running', count(*)::int from leasehold.jobs where status = 'running' group by 2, 3
union all
select 'dead', queue, kind, null, count(*)::int from leasehold.dead_letters where requeued_at is null group by 2, 3
union all
select 'workers', null, null, null, count(*)::int from leasehold.workers
  where stopped_at is null and last_seen_at > now() - interval '1 minute'`;

/**
 * Adds the gauges that describe the database to `metrics`, computed when scraped. Register them in
 * one process per deployment role (the API): every process would report the same numbers.
 */
export function addDatabaseGauges(metrics: Metrics, sql: Sql, log: Logger): void {
  const registers = [metrics.registry];
  // The gauges of one scrape collect at once (prom-client starts every collect together): they
  // share the read in flight, and the next scrape reads afresh.
  let pending: Promise<Row[]> | undefined;
  const read = (): Promise<Row[]> =>
    (pending ??= sql
      .begin(async (tx) => {
        await tx`select set_config('statement_timeout', ${String(SCRAPE_TIMEOUT_MS)}, true)`;
        return tx.unsafe<Row[]>(GAUGES_SQL);
      })
      .catch((err: unknown) => {
        log.warn({ err }, 'metrics: could not read queue state; database gauges left empty');
        return [] as Row[];
      })
      .finally(() => (pending = undefined)));
  const fill = async (gauge: Gauge<string>, metric: Row['metric'], labels: (r: Row) => Record<string, string>) => {
    const rows = await read();
    gauge.reset();
    for (const r of rows) if (r.metric === metric) gauge.set(labels(r), r.n);
  };

  const depth: Gauge<'queue' | 'state'> = new Gauge({
    name: 'leasehold_queue_depth',
    help: 'Queued jobs by queue: ready (run_at reached) or scheduled (run_at in the future).',
    labelNames: ['queue', 'state'],
    registers,
    collect: () => fill(depth, 'depth', (r) => ({ queue: r.queue!, state: r.status! })),
  });
  const jobs: Gauge<'queue' | 'kind' | 'status'> = new Gauge({
    name: 'leasehold_jobs',
    help: 'Live jobs (queued or running) by queue, kind and status; finished ones are in leasehold_job_attempts_total.',
    labelNames: ['queue', 'kind', 'status'],
    registers,
    collect: () => fill(jobs, 'jobs', (r) => ({ queue: r.queue!, kind: r.kind!, status: r.status! })),
  });
  const dead: Gauge<'queue' | 'kind'> = new Gauge({
    name: 'leasehold_dead_letters_open',
    help: 'Dead letters not requeued yet, by queue and kind.',
    labelNames: ['queue', 'kind'],
    registers,
    collect: () => fill(dead, 'dead', (r) => ({ queue: r.queue!, kind: r.kind! })),
  });
  const workers: Gauge = new Gauge({
    name: 'leasehold_workers_live',
    help: 'Workers that heartbeat within the last minute.',
    registers,
    collect: async () => {
      const row = (await read()).find((r) => r.metric === 'workers');
      workers.set(row?.n ?? 0);
    },
  });
}
