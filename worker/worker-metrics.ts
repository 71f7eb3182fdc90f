import type { Metrics } from '#shared/metrics/metrics.js';
import type { OutcomeCount } from './completer.js';
import type { ClaimedJob } from './held-job.js';
import type { ReclaimReport } from './reclaimer.js';

type Observer = { observe(value: number): void };

/**
 * The worker's side of the metrics. Label children are looked up once per queue and kind and
 * kept: prom-client hashes the label set on every `labels()` call, which at 30k jobs/s would cost
 * more than the observation itself.
 */
export class WorkerMetrics {
  readonly #durations = new Map<string, Observer>();
  readonly #latencies = new Map<string, Observer>();

  constructor(readonly metrics: Metrics) {}

  /** After a claim: its round trip, and how long each claimed job waited past its run_at. */
  claimed(claimMs: number, rows: readonly ClaimedJob[], now: number): void {
    this.metrics.claimDuration.observe(claimMs / 1000);
    for (const job of rows) {
      let child = this.#latencies.get(job.queue);
      if (!child) this.#latencies.set(job.queue, (child = this.metrics.claimLatency.labels(job.queue)));
      child.observe(Math.max(0, now - job.run_at.getTime()) / 1000);
    }
  }

  /** After a handler returned or threw: how long it ran. */
  ran(job: ClaimedJob, ms: number): void {
    const key = `${job.queue}\0${job.kind}`;
    let child = this.#durations.get(key);
    if (!child) this.#durations.set(key, (child = this.metrics.jobDuration.labels(job.queue, job.kind)));
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
