import type { Sql } from '#shared/db/connect.js';
import type { PanelData, PanelName } from './panels.js';
import { readGovernorPanel, readWebhooksPanel } from './pending-panels.js';

/** What the dashboard shows at one moment; every panel's rows are display-ready strings. */
export interface Snapshot {
  at: string;
  /** Jobs finished (succeeded or failed for good) per second over the last tick. */
  jobs_per_second: number;
  /** The last SERIES_POINTS values of jobs_per_second, oldest first. */
  series: number[];
  totals: { ready: number; scheduled: number; running: number; dead_letters: number; workers: number };
  panels: Record<PanelName, PanelData>;
}

const SERIES_POINTS = 120;
// Throughput per queue and kind is summed over this many ticks (one a second): the last minute.
const WINDOW_TICKS = 60;
// Events read per tick at most. Past it, the oldest are skipped (throughput is undercounted, never
// stalls): 50,000 rows are ~25 ms of index range scan, and above the 32k jobs/s measured here.
const MAX_EVENTS_PER_TICK = 50_000;
// Recent failures are looked for among this many latest events, so a quiet failure log never
// makes the query walk the whole job_events table backwards.
const FAILURE_HORIZON = 200_000;
const TOP = 15;

type Outcome = 'succeeded' | 'failed' | 'retried';
const EVENT_OUTCOME: Record<string, Outcome> = { 'job.succeeded': 'succeeded', 'job.failed': 'failed', 'job.retrying': 'retried' };

const n = (v: number) => String(v);
const seconds = (v: number | null) => (v === null ? '' : `${v.toFixed(1)} s`);
const time = (d: Date) => d.toISOString().replace('T', ' ').slice(0, 19);
const clock = (d: Date) => d.toISOString().slice(11, 19);

/**
 * Reads snapshots for every open dashboard of this process: one reader per API process, however
 * many pages watch (the stream hub calls read() once a second and fans the result out). It
 * remembers the last job_events id it counted, so throughput is the count of finishing events
 * since the previous tick, found through job_events' primary key, not a scan by time.
 */
export class SnapshotReader {
  #lastEventId: bigint | undefined;
  #lastAt = 0;
  readonly #series: number[] = [];
  /** Per tick: finishing events by `queue\0kind\0outcome`. */
  readonly #window: Map<string, number>[] = [];

  constructor(private readonly sql: Sql) {}

  async read(): Promise<Snapshot> {
    const now = Date.now();
    const tick = await this.#countFinished();
    const elapsedS = this.#lastAt ? Math.max(0.001, (now - this.#lastAt) / 1000) : 1;
    this.#lastAt = now;
    let finished = 0;
    for (const [key, count] of tick) if (!key.endsWith('\0retried')) finished += count;
    const perSecond = Math.round((finished / elapsedS) * 10) / 10;
    this.#series.push(perSecond);
    if (this.#series.length > SERIES_POINTS) this.#series.shift();
    this.#window.push(tick);
    if (this.#window.length > WINDOW_TICKS) this.#window.shift();

    const [depth, recent, leases, failures, dead, workers, governor, webhooks] = await Promise.all([
      this.sql<{ queue: string; kind: string; ready: number; scheduled: number; running: number }[]>`
        select queue, kind, sum(ready)::int as ready, sum(scheduled)::int as scheduled, sum(running)::int as running
        from (
          select queue, kind, count(*) filter (where run_at <= now()) as ready, count(*) filter (where run_at > now()) as scheduled, 0 as running
          from leasehold.jobs where status = 'queued' group by 1, 2
          union all
          select queue, kind, 0, 0, count(*) from leasehold.jobs where status = 'running' group by 1, 2
        ) s group by 1, 2`,
      this.sql<{ id: string; tenant: string | null; queue: string; kind: string; status: string; attempts: number; updated_at: Date }[]>`
        select j.id, t.slug as tenant, j.queue, j.kind, j.status::text, j.attempts, j.updated_at
        from leasehold.jobs j left join leasehold.tenants t on t.id = j.tenant_id
        order by j.id desc limit ${TOP}`,
      this.sql<{ id: string; kind: string; queue: string; owner: string | null; attempts: number; max_attempts: number; heartbeat_age: number | null; expires_in: number | null }[]>`
        select id, kind, queue, lease_owner as owner, attempts, max_attempts,
               extract(epoch from now() - heartbeat_at)::float8 as heartbeat_age,
               extract(epoch from lease_expires_at - now())::float8 as expires_in
        from leasehold.jobs where status = 'running' order by lease_expires_at limit ${TOP}`,
      this.sql<{ job_id: string; tenant: string | null; kind: string; type: string; error: string | null; created_at: Date }[]>`
        select e.job_id, t.slug as tenant, j.kind, e.type, coalesce(e.data->>'error', j.last_error) as error, e.created_at
        from leasehold.job_events e
        join leasehold.jobs j on j.id = e.job_id
        left join leasehold.tenants t on t.id = e.tenant_id
        where e.id > (select coalesce(max(id), 0) from leasehold.job_events) - ${FAILURE_HORIZON}
          and e.type in ('job.failed', 'job.retrying')
        order by e.id desc limit ${TOP}`,
      this.sql<{ id: string; job_id: string; tenant: string | null; queue: string; kind: string; attempts: number; max_attempts: number; last_error: string | null; failed_at: Date; open: number }[]>`
        select d.id, d.job_id, t.slug as tenant, d.queue, d.kind, d.attempts, d.max_attempts, d.last_error, d.failed_at,
               count(*) over ()::int as open
        from leasehold.dead_letters d left join leasehold.tenants t on t.id = d.tenant_id
        where d.requeued_at is null
        order by d.failed_at desc, d.id desc limit ${TOP}`,
      this.sql<{ live: number }[]>`
        select count(*)::int as live from leasehold.workers
        where stopped_at is null and last_seen_at > now() - interval '1 minute'`,
      readGovernorPanel(this.sql),
      readWebhooksPanel(this.sql),
    ]);

    const perMinute = this.#windowTotals();
    const keys = new Map<string, { queue: string; kind: string }>();
    for (const r of depth) keys.set(`${r.queue}\0${r.kind}`, r);
    for (const k of perMinute.keys()) {
      const [queue, kind] = k.split('\0') as [string, string];
      keys.set(`${queue}\0${kind}`, { queue, kind });
    }
    const depthOf = new Map(depth.map((r) => [`${r.queue}\0${r.kind}`, r]));
    const queues = [...keys.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([key, { queue, kind }]) => {
        const d = depthOf.get(key);
        return {
          queue,
          kind,
          ready: n(d?.ready ?? 0),
          scheduled: n(d?.scheduled ?? 0),
          running: n(d?.running ?? 0),
          succeeded_1m: n(perMinute.get(`${key}\0succeeded`) ?? 0),
          failed_1m: n(perMinute.get(`${key}\0failed`) ?? 0),
          retried_1m: n(perMinute.get(`${key}\0retried`) ?? 0),
        };
      });

    return {
      at: new Date(now).toISOString(),
      jobs_per_second: perSecond,
      series: [...this.#series],
      totals: {
        ready: depth.reduce((s, r) => s + r.ready, 0),
        scheduled: depth.reduce((s, r) => s + r.scheduled, 0),
        running: depth.reduce((s, r) => s + r.running, 0),
        dead_letters: dead[0]?.open ?? 0,
        workers: workers[0]?.live ?? 0,
      },
      panels: {
        queues: { rows: queues, note: 'Ready, scheduled and running now; finished in the last minute.' },
        recent: {
          rows: recent.map((r) => ({
            id: r.id, tenant: r.tenant ?? '', queue: r.queue, kind: r.kind, status: r.status, attempts: n(r.attempts), updated: clock(r.updated_at),
          })),
        },
        leases: {
          rows: leases.map((r) => ({
            id: r.id, kind: r.kind, queue: r.queue, owner: r.owner ?? '', attempts: `${r.attempts} of ${r.max_attempts}`,
            heartbeat_age: seconds(r.heartbeat_age), expires_in: seconds(r.expires_in),
          })),
          note: 'Soonest to expire first; a negative expiry is a lease the reclaimer has not taken back yet.',
        },
        failures: {
          rows: failures.map((r) => ({
            at: time(r.created_at), job_id: r.job_id, tenant: r.tenant ?? '', kind: r.kind, type: r.type, error: r.error ?? '',
          })),
        },
        deadLetters: {
          rows: dead.map((r) => ({
            failed_at: time(r.failed_at), id: r.id, job_id: r.job_id, tenant: r.tenant ?? '', queue: r.queue, kind: r.kind,
            attempts: `${r.attempts} of ${r.max_attempts}`, last_error: r.last_error ?? '',
          })),
          note: dead.length ? `${dead[0]!.open} open; newest first.` : undefined,
        },
        governor,
        webhooks,
      },
    };
  }

  /** Finishing events since the previous tick, by queue, kind and outcome. */
  async #countFinished(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    const [top] = await this.sql<{ id: string | null }[]>`select max(id)::text as id from leasehold.job_events`;
    const hi = BigInt(top?.id ?? '0');
    const first = this.#lastEventId === undefined;
    const from = first ? hi : this.#lastEventId! < hi - BigInt(MAX_EVENTS_PER_TICK) ? hi - BigInt(MAX_EVENTS_PER_TICK) : this.#lastEventId!;
    this.#lastEventId = hi;
    if (first || from >= hi) return counts;
    const rows = await this.sql<{ queue: string; kind: string; type: string; count: number }[]>`
      select j.queue, j.kind, e.type, count(*)::int as count
      from leasehold.job_events e join leasehold.jobs j on j.id = e.job_id
      where e.id > ${from.toString()}::bigint and e.id <= ${hi.toString()}::bigint
        and e.type in ('job.succeeded', 'job.failed', 'job.retrying')
      group by 1, 2, 3`;
    for (const r of rows) counts.set(`${r.queue}\0${r.kind}\0${EVENT_OUTCOME[r.type]}`, r.count);
    return counts;
  }

  #windowTotals(): Map<string, number> {
    const totals = new Map<string, number>();
    for (const tick of this.#window) for (const [k, v] of tick) totals.set(k, (totals.get(k) ?? 0) + v);
    return totals;
  }
}
