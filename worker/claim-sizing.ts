/** What one claim asks for: up to limits[i] jobs of queues[i], and `total` over all of them. */
export interface ClaimPlan {
  queues: string[];
  limits: number[];
  total: number;
}

/**
 * The deepest prefetch, as a multiple of the slots, for handlers that finish far faster than a
 * claim round trip (never more than two batches). Two claims of up to a batch each then stay in
 * flight while the jobs of a third run. Claims of 500 rows take 15–30 ms here; with the next one
 * sent only once the last had run, a third of the CPU sat idle. No-op jobs at concurrency 50:
 * 29–40k jobs/s at a 4× cap with ~250-row claims one at a time, 46–50k with two 500-row claims
 * in flight.
 */
const MAX_PREFETCH_FACTOR = 20;

/**
 * How much a worker claims ahead of what it runs, from moving averages (EWMA, 1/20 weight) of its
 * claim round trips and its handlers' durations.
 */
export class ClaimSizing {
  #claimMsAvg = 2;
  /** Undefined until a handler has finished. */
  #handlerMsAvg: number | undefined;

  constructor(private readonly batchSize: number) {}

  /** A claim took `ms` from send to rows. */
  claimed(ms: number): void {
    this.#claimMsAvg += (ms - this.#claimMsAvg) / 20;
  }

  /** A handler took `ms`; the first timing seeds the average. */
  ran(ms: number): void {
    this.#handlerMsAvg = this.#handlerMsAvg === undefined ? ms : this.#handlerMsAvg + (ms - this.#handlerMsAvg) / 20;
  }

  /**
   * Prefetch depth as a multiple of the slots: deep (up to MAX_PREFETCH_FACTOR) when handlers
   * finish far faster than a claim round trip (no-op jobs: claims of 50 ran 21k jobs/s, of 125 ran
   * 25–28k, two of 500 in flight 46–50k), shallow (0.5×) when they take longer, where a deep
   * buffer would only keep jobs from idle peers.
   */
  factor(): number {
    // Until a handler has been timed, one times the slots: a worker that starts on slow jobs must
    // not take twenty times what it can run.
    if (this.#handlerMsAvg === undefined) return 1;
    return Math.min(MAX_PREFETCH_FACTOR, Math.max(0.5, (2 * this.#claimMsAvg) / Math.max(this.#handlerMsAvg, 1e-3)));
  }

  /**
   * Handlers finish faster than a claim round trip: behind a full claim, a second may go out
   * before the first is back. A worker on slow jobs gains nothing from claiming ahead, and its
   * second claim could take back a job its first one lost to the reclaimer meanwhile.
   */
  get claimsAhead(): boolean {
    return this.factor() > 1;
  }

  /**
   * How many jobs may wait locally beyond `slots` running ones: up to two batches, the two claims
   * in flight. Claims of 10 rows cost 8× per job what claims of 500 do (plain SQL on the
   * development machine), but a worker hoarding far more than it runs starves its peers.
   */
  prefetch(slots: number): number {
    return Math.max(1, Math.min(2 * this.batchSize, Math.round(this.factor() * slots)));
  }

  /**
   * The rows the next claim may take, with `coming` jobs running, buffered or asked for, so that
   * the slots and the prefetch (`capacity`) are filled by two claims of at most a batch each; none
   * (undefined) while less than half a claim, or half the prefetch if smaller, of room is open.
   */
  room(concurrency: number, coming: number): { room: number; capacity: number } | undefined {
    const prefetch = this.prefetch(concurrency);
    const capacity = concurrency + prefetch;
    const size = Math.min(this.batchSize, Math.ceil(capacity / 2));
    const room = Math.min(size, capacity - coming);
    if (room <= 0 || (coming > 0 && room < Math.ceil(Math.min(size, prefetch) / 2))) return undefined;
    return { room, capacity };
  }
}
