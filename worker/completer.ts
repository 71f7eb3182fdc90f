import type { Sql } from '#shared/db/connect.js';
import { UNSTORABLE_ESCAPE, storableJson } from '#shared/db/storable-json.js';
import type { Logger } from '#shared/log.js';
import { CHANNELS, type Notifier } from '#shared/jobs/notifier.js';
import { COMPLETE_JOBS, FAIL_JOBS, PREPARED } from '#shared/jobs/queue-sql.js';
import { WEBHOOKS_QUEUE } from '#shared/webhooks/delivery.js';
import type { HeldJob, Outcome } from './held-job.js';

interface Pending {
  held: HeldJob;
  outcome: Exclude<Outcome, { type: 'drop' }>;
}

/** What a flush changed, for wake-ups and counters. */
export interface FlushReport {
  /** Queues that got a job back as ready now (hand-backs). */
  requeued: Set<string>;
  written: number;
  /** Outcomes refused by the fence: the lease had moved on. */
  fenced: number;
  /** Outcomes written, counted by queue, kind and outcome (for metrics): one entry per distinct triple. */
  tally: Map<string, OutcomeCount>;
  /** The jobs whose outcomes the fence refused (empty unless `fenced` > 0). */
  fencedJobs: HeldJob['job'][];
  /** A committed statement of the flush carried the `leasehold_events` wake-up for its events. */
  woke: boolean;
}

/** How an attempt ended once written: `failed` is for good (dead-lettered), `retried` will run again. */
export type WrittenOutcome = 'succeeded' | 'failed' | 'cancelled' | 'retried' | 'handed_back';

/** Attempts of one queue and kind that ended one way, in one flush. */
export interface OutcomeCount {
  queue: string;
  kind: string;
  outcome: WrittenOutcome;
  n: number;
}

/** Outcome counts keyed by queue, kind and outcome. */
class Tally extends Map<string, OutcomeCount> {
  #last: OutcomeCount | undefined;

  count(queue: string, kind: string, outcome: WrittenOutcome): void {
    // A batch is mostly one queue, kind and outcome: bump the last entry without building a key.
    const last = this.#last;
    if (last && last.queue === queue && last.kind === kind && last.outcome === outcome) {
      last.n++;
      return;
    }
    const key = `${queue}\0${kind}\0${outcome}`;
    let entry = this.get(key);
    if (entry) entry.n++;
    else this.set(key, (entry = { queue, kind, outcome, n: 1 }));
    this.#last = entry;
  }
}

/** What one flush wrote and what it must write again. */
interface Flushed {
  /** Outcomes whose statement committed: reported, and their jobs released. */
  written: Pending[];
  report: FlushReport;
  /** Outcomes whose statement failed, to be sent again with backoff; `err` says why. */
  again: Pending[];
  err?: unknown;
}

/**
 * Writes attempt outcomes in batches: everything that settles while a write is in flight goes out
 * in the next one (one statement for successes, one for the rest). A failed statement is retried
 * with backoff, and only its own part of the batch: the other part may have committed, and sent
 * again it would be refused by its own fence (lease_token is null once written), reported as
 * fenced instead of written, with its wake-ups lost. Every statement is fenced by lease token, so
 * sending one again can never clobber a new owner.
 */
export class Completer {
  #queue: Pending[] = [];
  #inflight: Promise<void> | undefined;
  #retryDelayMs = 0;
  #timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  #idle: (() => void)[] = [];

  constructor(
    private readonly sql: Sql,
    private readonly owner: string,
    private readonly log: Logger,
    private readonly onWritten: (held: HeldJob[], report: FlushReport) => void,
    /** Lets the successes' statement carry the event wake-up when one is due (none: never). */
    private readonly notifier?: Pick<Notifier, 'takeEventsWake' | 'notify'>,
  ) {}

  /** Outcomes waiting to be written (they still hold leases and get heartbeats). */
  get size(): number {
    return this.#queue.length;
  }

  push(held: HeldJob, outcome: Pending['outcome']): void {
    this.#queue.push({ held, outcome });
    if (!this.#inflight && !this.#timer) this.#schedule();
  }

  /** Resolves when nothing is pending or in flight. */
  drain(): Promise<void> {
    if (!this.#inflight && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Sets up the next flush: at the end of this turn of the event loop (every outcome settled in it
   * goes along), or after the retry delay once a write failed. A setTimeout(0) here waited ~1.25 ms
   * (Node's 1 ms floor): on an idle worker taking a job every ~2 ms, 45 % of the enqueues then
   * committed while the last outcome's durable commit was still flushing, against 5 % now. Beside
   * setTimeout(0), interleaved: p99 lower in 3 of 4 runs (5.88–6.99 against 6.93–8.84 ms), p50
   * 0.08–0.14 ms higher (docs/performance.md).
   */
  #schedule(): void {
    const flush = () => this.#flush();
    this.#timer = this.#retryDelayMs > 0 ? setTimeout(flush, this.#retryDelayMs) : setImmediate(flush);
  }

  #flush(): void {
    this.#timer = undefined;
    if (this.#inflight || this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#inflight = this.#write(batch)
      .catch((err: unknown): Flushed => ({ written: [], report: emptyReport(), again: batch, err }))
      .then(({ written, report, again, err }) => {
        if (written.length > 0) this.onWritten(written.map((p) => p.held), report);
        if (again.length === 0) {
          this.#retryDelayMs = 0;
          return;
        }
        this.#retryDelayMs = Math.min(5_000, Math.max(50, this.#retryDelayMs * 2));
        this.log.warn({ err, jobs: again.length, retry_in_ms: this.#retryDelayMs }, 'could not record job outcomes; retrying');
        this.#queue = again.concat(this.#queue);
      })
      .finally(() => {
        this.#inflight = undefined;
        if (this.#queue.length > 0 && !this.#timer) this.#schedule();
        else for (const resolve of this.#idle.splice(0)) resolve();
      });
  }

  #warnReplaced(entries: [string, unknown][], what: 'result' | 'error'): void {
    const ids = entries.filter(([, v]) => storableJson(v).replaced).map(([id]) => id);
    this.log.warn({ job_ids: ids }, `a job ${what} held U+0000 or an unpaired surrogate, which PostgreSQL cannot store; written with U+FFFD in its place`);
  }

  async #write(batch: Pending[]): Promise<Flushed> {
    const pushed: Pending[] = [];
    const others: object[] = [];
    const at = new Date().toISOString();
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      const { held, outcome } = p;
      const { id } = held.job;
      if (outcome.type === 'success') {
        pushed.push(p);
        continue;
      }
      const base = { id, lease_token: held.token, outcome: outcome.type };
      if (outcome.type === 'handback') others.push({ ...base, message: null, error: null, retry_at: null });
      else {
        const error = {
          attempt: held.job.attempts,
          at,
          code: outcome.type === 'cancelled' ? 'cancelled' : outcome.code,
          message: outcome.message,
          worker: this.owner,
          ...('stack' in outcome && outcome.stack ? { stack: outcome.stack } : {}),
        };
        others.push({
          ...base,
          message: outcome.message,
          error,
          retry_at: outcome.type === 'retry' ? outcome.retryAt.toISOString() : null,
        });
      }
    }
    const { successes, stale } = latestById(pushed);
    const ids: string[] = new Array(successes.length);
    const tokens: string[] = new Array(successes.length);
    const results: Record<string, unknown> = {};
    // The results object's JSON text, from each result's own text where succeeded() made it.
    const members: string[] = [];
    for (let i = 0; i < successes.length; i++) {
      const { held, outcome } = successes[i]!;
      const { id } = held.job;
      ids[i] = id;
      tokens[i] = held.token;
      const { result, json } = outcome as Extract<Outcome, { type: 'success' }>;
      if (result !== undefined && result !== null) {
        results[id] = result;
        // undefined for what JSON.stringify leaves out of an object (a function, toJSON() → undefined).
        const text: string | undefined = json ?? JSON.stringify(result);
        if (text !== undefined) members.push(`"${id}":${text}`);
      }
    }
    // One result or error text PostgreSQL cannot store would fail the whole batch, again at every
    // retry: such characters become U+FFFD instead, and the log says whose.
    const joined = `{${members.join(',')}}`;
    const resultsJson = UNSTORABLE_ESCAPE.test(joined) ? storableJson(results) : { text: joined, replaced: false };
    if (resultsJson.replaced) this.#warnReplaced(Object.entries(results), 'result');
    const othersJson = storableJson(others);
    if (othersJson.replaced) this.#warnReplaced(others.map((o) => [(o as { id: string }).id, o]), 'error');
    // The successes' statement carries the event wake-up when one is due: given back if it fails.
    const wake = ids.length > 0 && this.notifier !== undefined && this.notifier.takeEventsWake();
    // Two statements, each its own transaction: either may commit while the other fails.
    const [completed, failed] = await Promise.allSettled([
      ids.length
        ? this.sql.unsafe<CompleteRow[]>(COMPLETE_JOBS, [uuidArray(ids), uuidArray(tokens), resultsJson.text, wake], PREPARED).then(([row]) => row!)
        : undefined,
      others.length
        ? this.sql.unsafe<{ id: string; status: string; queue: string }[]>(FAIL_JOBS, [othersJson.text], PREPARED)
        : [],
    ]);
    let written = batch;
    const again: Pending[] = [];
    if (completed.status === 'rejected' || failed.status === 'rejected') {
      written = [];
      for (const p of batch) ((p.outcome.type === 'success' ? completed : failed).status === 'fulfilled' ? written : again).push(p);
    }
    const done = completed.status === 'fulfilled' ? completed.value : undefined;
    const changed = failed.status === 'fulfilled' ? failed.value : [];
    const requeued = new Set<string>();
    for (const row of changed) if (row.status === 'queued') requeued.add(row.queue);
    // Successes that queued webhook callbacks: wake their queue.
    if (done?.webhooks) requeued.add(WEBHOOKS_QUEUE);
    const writtenRows = (done?.written ?? 0) + changed.length;
    const fencedJobs: HeldJob['job'][] = [];
    const fencedIds = done?.fenced ? new Set(done.fenced) : undefined;
    const sent = (completed.status === 'fulfilled' ? ids.length + (stale?.size ?? 0) : 0) + (failed.status === 'fulfilled' ? others.length : 0);
    const woke = wake && completed.status === 'fulfilled';
    if (wake && !woke) this.notifier!.notify(CHANNELS.events);
    const report = { requeued, written: writtenRows, fenced: sent - writtenRows, tally: tallyOutcomes(written, fencedIds, stale, changed, fencedJobs), fencedJobs, woke };
    const err = completed.status === 'rejected' ? completed.reason : failed.status === 'rejected' ? failed.reason : undefined;
    return { written, report, again, err };
  }
}

/**
 * The successes to write, sorted by job id, as COMPLETE_JOBS finds each row's token by binary
 * search (the byte order of uuids is the order of their lowercase text, which is how PostgreSQL
 * returns them). Only the last success pushed for a job is written: an earlier one is from a
 * lease this worker lost before claiming the job again (claims hand out tokens in push order), so
 * its token can no longer match, and it is returned in `stale` to be refused here rather than sent.
 * Outcomes nearly always arrive in id order already (claims hand out jobs in id order within a
 * priority, and short handlers finish in turn): that case needs no map and no sort.
 */
function latestById(pushed: Pending[]): { successes: Pending[]; stale?: Set<Pending> } {
  let ascending = true;
  for (let i = 1; i < pushed.length && ascending; i++) ascending = pushed[i - 1]!.held.job.id < pushed[i]!.held.job.id;
  if (ascending) return { successes: pushed };
  const latest = new Map<string, Pending>();
  let stale: Set<Pending> | undefined;
  for (const p of pushed) {
    const earlier = latest.get(p.held.job.id);
    if (earlier) (stale ??= new Set()).add(earlier);
    latest.set(p.held.job.id, p);
  }
  const successes = [...latest.values()].sort((a, b) => (a.held.job.id < b.held.job.id ? -1 : 1));
  return { successes, stale };
}

/** A report of nothing written. */
function emptyReport(): FlushReport {
  return { requeued: new Set(), written: 0, fenced: 0, tally: new Map(), fencedJobs: [], woke: false };
}

/**
 * A uuid[] parameter as PostgreSQL's array text, which postgres.js passes through as it is. Its own
 * serializer runs two regex replacements per element (~4 % of a busy worker's CPU); uuids, as the
 * database and randomUUID() print them, need no quoting.
 */
function uuidArray(ids: readonly string[]): string {
  return `{${ids.join(',')}}`;
}

/** COMPLETE_JOBS's one row: successes written, webhook deliveries queued, ids the fence refused (null: none). */
interface CompleteRow {
  written: number;
  webhooks: number;
  fenced: string[] | null;
}

/**
 * Counts what was written per queue, kind and outcome, and lists in `fenced` the jobs whose outcome
 * the fence refused. Successes are counted from the batch without a lookup per job unless the fence
 * refused some (rare, `fencedIds` given): this runs for every job at full speed.
 */
function tallyOutcomes(
  batch: Pending[],
  fencedIds: Set<string> | undefined,
  stale: Set<Pending> | undefined,
  changed: { id: string; status: string }[],
  fenced: HeldJob['job'][],
): Map<string, OutcomeCount> {
  const tally = new Tally();
  const statusOf = new Map(changed.map((r) => [r.id, r.status]));
  for (let i = 0; i < batch.length; i++) {
    const p = batch[i]!;
    const { held, outcome } = p;
    const { id, queue, kind } = held.job;
    if (outcome.type === 'success') {
      if (!fencedIds?.has(id) && !stale?.has(p)) tally.count(queue, kind, 'succeeded');
      else fenced.push(held.job);
      continue;
    }
    const status = statusOf.get(id);
    if (status === undefined) {
      fenced.push(held.job);
      continue;
    }
    if (outcome.type === 'handback') tally.count(queue, kind, 'handed_back');
    else tally.count(queue, kind, status === 'queued' ? 'retried' : status === 'failed' ? 'failed' : 'cancelled');
  }
  return tally;
}
