import type { Sql } from '../db/connect.js';

/** Channels the engine NOTIFYs on. Payloads are identifiers (a queue name, a job id), never data. */
export const CHANNELS = {
  /** A queue has new ready jobs; payload: the queue name. */
  jobs: 'leasehold_jobs',
  /** Cancellation was requested for a running job; payload: the job id. */
  cancel: 'leasehold_cancel',
  /** New rows in job_events; payload empty (readers catch up from their last id). */
  events: 'leasehold_events',
} as const;

/**
 * Sends wake-ups after commit, coalesced: every (channel, payload) pair asked for while a send is
 * in flight goes out in the next single statement. NOTIFY inside a write transaction serialises
 * every notifying commit in the cluster through the WAL flush (-38 % throughput with 5 workers,
 * NOTES.md); a lost wake-up only costs the poll interval.
 */
export class Notifier {
  #pending = new Map<string, Set<string>>();
  #inflight: Promise<void> | undefined;
  #scheduled = false;

  constructor(private readonly sql: Sql, private readonly onError: (err: unknown) => void = () => {}) {}

  /** Queues a wake-up; returns at once. */
  notify(channel: string, payload = ''): void {
    let set = this.#pending.get(channel);
    if (!set) this.#pending.set(channel, (set = new Set()));
    set.add(payload);
    if (!this.#scheduled && !this.#inflight) {
      this.#scheduled = true;
      setImmediate(() => void this.#send());
    }
  }

  /** Resolves once everything queued so far has been sent. */
  async flush(): Promise<void> {
    while (this.#inflight || this.#pending.size > 0) {
      if (this.#inflight) await this.#inflight;
      else await this.#send();
    }
  }

  async #send(): Promise<void> {
    this.#scheduled = false;
    if (this.#inflight || this.#pending.size === 0) return;
    const channels: string[] = [];
    const payloads: string[] = [];
    for (const [channel, set] of this.#pending) for (const p of set) channels.push(channel), payloads.push(p);
    this.#pending.clear();
    // The wake-up need not be durable (a lost one costs one poll), so its commit does not wait for
    // the WAL flush: set_config(…, true) applies to this statement's own implicit transaction.
    this.#inflight = this.sql`
      select set_config('synchronous_commit', 'off', true), pg_notify(c, p)
      from unnest(${channels}::text[], ${payloads}::text[]) as t(c, p)`
      .then(() => undefined, this.onError)
      .finally(() => {
        this.#inflight = undefined;
        if (this.#pending.size > 0) void this.#send();
      });
    return this.#inflight;
  }
}
