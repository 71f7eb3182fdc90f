import type { Metrics } from '#shared/metrics/metrics.js';
import type { OutcomeCount } from './completer.js';
import type { ClaimedJob } from './held-job.js';
import type { ReclaimReport } from './reclaimer.js';

type Observer = { observe(value: number): void };

/**
 * The worker's side of the metrics. Per-job observations go to JobHistogram series looked up once
 * per queue and kind and kept; counters are incremented once per flush, not per job.
 */
export class WorkerMetrics {
  readonly #durations = new Map<string, Map<string, Observer>>();
  readonly #latencies = new Map<string, Observer>();

  constructor(readonly metrics: Metrics) {}

  /** After a claim: its round trip, and how long each claimed job waited past its run_at. */
  claimed(claimMs: number, rows: readonly ClaimedJob[]): void {
    this.metrics.claimDuration.observe(claimMs / 1000);
    for (const job of rows) {
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
    for (const { queue, kind, n } of report.deadLettered.values()) m.deadLetters.labels(queue, kind).inc(n);
  }
}
