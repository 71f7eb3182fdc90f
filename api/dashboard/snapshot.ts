import type { Sql } from '#shared/db/connect.js';
import { PREPARED } from '#shared/jobs/queue-sql.js';
import { utcTime as time, type PanelData, type PanelName } from './panels.js';
import { readGovernorPanel, readWebhooksPanel } from './governor-webhook-panels.js';
import * as Q from './snapshot-sql.js';

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
// stalls); it is above the best processing rate the README reports (~32k jobs/s).
const MAX_EVENTS_PER_TICK = 50_000;
// Recent failures are looked for among this many latest events, so a quiet failure log never
// makes the query walk the whole job_events table backwards.
const FAILURE_HORIZON = 200_000;
const TOP = 15;
// Open dead letters are counted up to this; past it the page says "over 10000".
const COUNT_CAP = 10_000;

type Outcome = 'succeeded' | 'failed' | 'retried';
const EVENT_OUTCOME: Record<string, Outcome> = { 'job.succeeded': 'succeeded', 'job.failed': 'failed', 'job.retrying': 'retried' };

const n = (v: number) => String(v);
const seconds = (v: number | null) => (v === null ? '' : `${v.toFixed(1)} s`);
const clock = (d: Date) => d.toISOString().slice(11, 19);

/**
 * Reads snapshots for every open dashboard of this process: one reader per API process, however
 * many pages watch (the stream hub calls read() once a second and fans the result out). It
 * remembers the last job_events id it counted, so throughput is the count of finishing events
 * since the previous tick, found through job_events' primary key, not a scan by time. An event
 * whose transaction commits after a later id was already counted is missed: a display figure may
 * undercount by a few; the metrics' counters are the exact ones.
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

    const sql = this.sql;
    const [depth, recent, leases, failures, dead, [counts], governor, webhooks] = await Promise.all([
      sql.unsafe<{ queue: string; kind: string; ready: number; scheduled: number; running: number }[]>(Q.DEPTH, [], PREPARED),
      sql.unsafe<{ id: string; tenant: string | null; queue: string; kind: string; status: string; attempts: number; updated_at: Date }[]>(
        Q.RECENT_JOBS, [TOP], PREPARED),
      sql.unsafe<{ id: string; kind: string; queue: string; owner: string | null; attempts: number; max_attempts: number; heartbeat_age: number | null; expires_in: number | null }[]>(
        Q.LEASES, [TOP], PREPARED),
      sql.unsafe<{ job_id: string; tenant: string | null; kind: string; type: string; error: string | null; created_at: Date }[]>(
        Q.FAILURES, [TOP, FAILURE_HORIZON], PREPARED),
      sql.unsafe<{ id: string; job_id: string; tenant: string | null; queue: string; kind: string; attempts: number; max_attempts: number; last_error: string | null; failed_at: Date }[]>(
        Q.DEAD_LETTERS, [TOP], PREPARED),
      sql.unsafe<{ dead_letters: number; workers: number }[]>(Q.COUNTS, [COUNT_CAP], PREPARED),
      readGovernorPanel(this.sql),
      readWebhooksPanel(this.sql),
    ]);

    const perMinute = this.#windowTotals();
    // Every queue and kind with jobs now or finished in the window: `queue\0kind`.
    const depthOf = new Map(depth.map((r) => [`${r.queue}\0${r.kind}`, r]));
    const keys = new Set(depthOf.keys());
    for (const k of perMinute.keys()) keys.add(k.slice(0, k.lastIndexOf('\0')));
    const queues = [...keys]
      .sort((a, b) => (a < b ? -1 : 1))
      .map((key) => {
        const [queue, kind] = key.split('\0') as [string, string];
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
        dead_letters: counts?.dead_letters ?? 0,
        workers: counts?.workers ?? 0,
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
          note: counts && counts.dead_letters > 0 ? `${counts.dead_letters > COUNT_CAP ? `over ${COUNT_CAP}` : counts.dead_letters} open; newest first.` : undefined,
        },
        governor,
        webhooks,
      },
    };
  }

  /** Finishing events since the previous tick, by queue, kind and outcome. */
  async #countFinished(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    const [top] = await this.sql.unsafe<{ id: string | null }[]>(Q.LAST_EVENT_ID, [], PREPARED);
    const hi = BigInt(top?.id ?? '0');
    const first = this.#lastEventId === undefined;
    const from = first ? hi : this.#lastEventId! < hi - BigInt(MAX_EVENTS_PER_TICK) ? hi - BigInt(MAX_EVENTS_PER_TICK) : this.#lastEventId!;
    this.#lastEventId = hi;
    if (first || from >= hi) return counts;
    const rows = await this.sql.unsafe<{ queue: string; kind: string; type: string; count: number }[]>(
      Q.FINISHED_SINCE, [from.toString(), hi.toString()], PREPARED);
    for (const r of rows) counts.set(`${r.queue}\0${r.kind}\0${EVENT_OUTCOME[r.type]}`, r.count);
    return counts;
  }

  #windowTotals(): Map<string, number> {
    const totals = new Map<string, number>();
    for (const tick of this.#window) for (const [k, v] of tick) totals.set(k, (totals.get(k) ?? 0) + v);
    return totals;
  }
}
