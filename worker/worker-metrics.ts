import type { Metrics } from '#shared/metrics/metrics.js';
import type { OutcomeCount } from './completer.js';
import type { ClaimedJob } from './held-job.js';
import type { ReclaimReport } from './reclaimer.js';

type Observer = { observe(value: number): void };

/**
 * The worker's side of the metrics. Per-job observations go to JobHistogram series looked up once
 * per queue and kind and kept; counters are incremented once per flush, not per job. Every series
 * is labelled by queue, and forgetQueue() drops a queue's, so they stay as many as live queues.
 */
export class WorkerMetrics {
  readonly #durations = new Map<string, Map<string, Observer>>();
  readonly #latencies = new Map<string, Observer>();
  /** The claim round trip's one series (a JobHistogram without labels: prom-client's observe() hashed an empty label set for each claim). */
  readonly #claimDuration: Observer;
  /** The counter series written, per queue: kind → the outcomes of jobAttempts (retries and dead letters share the kind). */
  readonly #counted = new Map<string, Map<string, Set<string>>>();

  constructor(readonly metrics: Metrics) {
    this.#claimDuration = metrics.claimDuration.labels();
  }

  /** After a claim: its round trip, and how long each claimed job waited past its run_at. */
  claimed(claimMs: number, rows: readonly ClaimedJob[]): void {
    this.#claimDuration.observe(claimMs / 1000);
    for (let i = 0; i < rows.length; i++) {
      const job = rows[i]!;
      let child = this.#latencies.get(job.queue);
      if (!child) this.#latencies.set(job.queue, (child = this.metrics.claimLatency.labels(job.queue)));
      child.observe(Math.max(0, job.waited_ms) / 1000);
    }
  }

  /** After a handler returned or threw: how long it ran. */
  ran(job: ClaimedJob, ms: number): void {
    // Nested maps rather than a `${queue}\0${kind}` key: no string built per job.
    let byKind = this.#durations.get(job.queue);
    if (!byKind) this.#durations.set(job.queue, (byKind = new Map()));
    let child = byKind.get(job.kind);
    if (!child) byKind.set(job.kind, (child = this.metrics.jobDuration.labels(job.queue, job.kind)));
    child.observe(ms / 1000);
  }

  /** After outcomes were written: attempts by outcome, retries and dead letters. */
  written(tally: Map<string, OutcomeCount>): void {
    const m = this.metrics;
    for (const { queue, kind, outcome, n } of tally.values()) {
      this.#count(queue, kind).add(outcome);
      m.jobAttempts.labels(queue, kind, outcome).inc(n);
      if (outcome === 'retried') m.retries.labels(queue, kind).inc(n);
      else if (outcome === 'failed') m.deadLetters.labels(queue, kind).inc(n);
    }
  }

  /** After a reclaim pass took leases back. */
  reclaimed(report: ReclaimReport): void {
    const m = this.metrics;
    if (report.requeued) m.leaseReclaims.labels('requeued').inc(report.requeued);
    if (report.failed) m.leaseReclaims.labels('failed').inc(report.failed);
    if (report.cancelled) m.leaseReclaims.labels('cancelled').inc(report.cancelled);
    for (const { queue, kind, n } of report.deadLettered.values()) {
      this.#count(queue, kind);
      m.deadLetters.labels(queue, kind).inc(n);
    }
  }

  /** The queues that have series here. */
  *queues(): IterableIterator<string> {
    const seen = new Set<string>();
    for (const map of [this.#durations, this.#latencies, this.#counted]) {
      for (const q of map.keys()) if (!seen.has(q)) seen.add(q), yield q;
    }
  }

  /** Drops every series of `queue` (it no longer exists); a job of it later starts them afresh. */
  forgetQueue(queue: string): void {
    const m = this.metrics;
    for (const kind of this.#durations.get(queue)?.keys() ?? []) m.jobDuration.remove(queue, kind);
    for (const [kind, outcomes] of this.#counted.get(queue) ?? []) {
      for (const outcome of outcomes) m.jobAttempts.remove(queue, kind, outcome);
      m.retries.remove(queue, kind);
      m.deadLetters.remove(queue, kind);
    }
    m.claimLatency.remove(queue);
    this.#durations.delete(queue);
    this.#latencies.delete(queue);
    this.#counted.delete(queue);
  }

  /** The outcomes counted for `queue` and `kind` (once per flush entry, not per job). */
  #count(queue: string, kind: string): Set<string> {
    let byKind = this.#counted.get(queue);
    if (!byKind) this.#counted.set(queue, (byKind = new Map()));
    let outcomes = byKind.get(kind);
    if (!outcomes) byKind.set(kind, (outcomes = new Set()));
    return outcomes;
  }
}
