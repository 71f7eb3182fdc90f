import type { Sql } from '../db/connect.js';

/** Channels the engine NOTIFYs on. Payloads are identifiers (a queue name, a job id), never data. */
export const CHANNELS = {
  /**
   * A queue has new ready jobs; payload: the queue name. It also wakes job_events readers: it is
   * sent with (or after) the commit of the jobs' `job.queued` events, which get no wake-up of their own.
   */
  jobs: 'leasehold_jobs',
  /** Cancellation was requested for a running job; payload: the job id. */
  cancel: 'leasehold_cancel',
  /** New rows in job_events other than a new job's; payload empty (readers catch up from their last id). */
  events: 'leasehold_events',
} as const;

/**
 * The shortest gap between two `leasehold_events` wake-ups from one Notifier. A busy worker asked
 * for one after every claim and every completion flush: ~270 statements per 40,000 no-op jobs, each
 * a round trip, a commit and a signal to every listening backend. Event readers catch up from
 * their last id, so a wake-up at most this late loses nothing.
 */
export const EVENTS_GAP_MS = 20;

/**
 * Sends wake-ups after commit, coalesced: every (channel, payload) pair asked for while a send is
 * in flight goes out in the next single statement. NOTIFY inside a write transaction serialises
 * every notifying commit in the cluster through the WAL flush (-38 % throughput with 5 workers,
 * measured on the 2-core development machine); a lost wake-up only costs the poll interval. Job
 * and cancel wake-ups go out at once; event wake-ups at most once per EVENTS_GAP_MS, and a
 * worker's successes statement carries one in itself when it is due (takeEventsWake).
 */
export class Notifier {
  #pending = new Map<string, Set<string>>();
  #inflight: Promise<void> | undefined;
  #scheduled = false;
  /** When the last event wake-up was sent, and the timer that sends a held one. */
  #eventsSentAt = -Infinity;
  #eventsTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sql: Sql,
    private readonly onError: (err: unknown) => void = () => {},
    private readonly eventsGapMs = EVENTS_GAP_MS,
  ) {}

  /** No job wake-up is waiting or on its way (held event wake-ups do not count). */
  get jobsIdle(): boolean {
    return !this.#inflight && !this.#scheduled && !this.#pending.get(CHANNELS.jobs)?.size;
  }

  /**
   * Queues a wake-up; returns at once. An event wake-up with `later` waits EVENTS_GAP_MS, unless a
   * statement carries it first (takeEventsWake): a worker's claim asks this way, as the outcomes
   * that follow a short job's start carry it in their own statement.
   */
  notify(channel: string, payload = '', later = false): void {
    let set = this.#pending.get(channel);
    if (!set) this.#pending.set(channel, (set = new Set()));
    set.add(payload);
    if (channel === CHANNELS.events && this.#eventsHeld(later ? this.eventsGapMs : 0)) return;
    if (!this.#scheduled && !this.#inflight) {
      this.#scheduled = true;
      // A microtask still gathers every notify() of the current tick into one statement, and lets
      // postgres.js write it out in this turn of the event loop (setImmediate cost a turn).
      queueMicrotask(() => void this.#send());
    }
  }

  /** Resolves once everything queued so far has been sent, held event wake-ups included. */
  async flush(): Promise<void> {
    while (this.#inflight || this.#pending.size > 0) {
      if (this.#inflight) await this.#inflight;
      else await this.#send(true);
    }
  }

  /**
   * For a statement about to commit job_events rows of its own: whether it should carry the event
   * wake-up itself (a pg_notify inside it, delivered at its commit), which then counts as sent,
   * held ones included. False within EVENTS_GAP_MS of the last one: the caller asks notify()
   * after its commit instead. A carried wake-up saves a statement of its own, with its round trip,
   * its commit and a backend woken for them: ~0.1 ms of an idle worker's enqueue→start latency at
   * p90, measured interleaved in one process. If the statement fails, the caller gives it back
   * (notify()).
   */
  takeEventsWake(): boolean {
    const now = performance.now();
    if (now - this.#eventsSentAt < this.eventsGapMs) return false;
    this.#eventsSentAt = now;
    this.#pending.delete(CHANNELS.events);
    if (this.#eventsTimer) clearTimeout(this.#eventsTimer), (this.#eventsTimer = undefined);
    return true;
  }

  /**
   * Whether an event wake-up must wait (for the gap, or at least `minWaitMs`); if so, makes sure a
   * timer will send it.
   */
  #eventsHeld(minWaitMs = 0): boolean {
    const waitMs = Math.max(minWaitMs, this.#eventsSentAt + this.eventsGapMs - performance.now());
    if (waitMs <= 0) return false;
    this.#eventsTimer ??= setTimeout(() => {
      this.#eventsTimer = undefined;
      if (!this.#inflight) void this.#send();
    }, Math.ceil(waitMs));
    return true;
  }

  async #send(all = false): Promise<void> {
    this.#scheduled = false;
    if (this.#inflight || this.#pending.size === 0) return;
    const channels: string[] = [];
    const payloads: string[] = [];
    const holdEvents = !all && this.#pending.has(CHANNELS.events) && this.#eventsHeld();
    for (const [channel, set] of this.#pending) {
      if (holdEvents && channel === CHANNELS.events) continue;
      for (const p of set) channels.push(channel), payloads.push(p);
    }
    if (channels.length === 0) return;
    if (holdEvents) {
      const events = this.#pending.get(CHANNELS.events)!;
      this.#pending.clear();
      this.#pending.set(CHANNELS.events, events);
    } else {
      if (this.#pending.has(CHANNELS.events)) this.#eventsSentAt = performance.now();
      this.#pending.clear();
    }
    // The wake-up need not be durable (a lost one costs one poll), so its commit does not wait for
    // the WAL flush: set_config(…, true) applies to this statement's own implicit transaction.
    this.#inflight = this.sql`
      select set_config('synchronous_commit', 'off', true), pg_notify(c, p)
      from unnest(${channels}::text[], ${payloads}::text[]) as t(c, p)`
      .then(() => undefined, this.onError)
      .finally(() => {
        this.#inflight = undefined;
        if (this.#pending.size > 0) void this.#send();
        else if (this.#eventsTimer) clearTimeout(this.#eventsTimer), (this.#eventsTimer = undefined);
      });
    return this.#inflight;
  }
}
