import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { JobHistogram } from './job-histogram.js';

// Job durations run from sub-millisecond no-ops to multi-minute model calls.
const JOB_SECONDS = [0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 15, 60, 300, 900];
// A claim round trip is a few ms; seconds mean the database is struggling.
const CLAIM_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
// Waiting from run_at to claim: ms when workers keep up, minutes when they do not.
const WAIT_SECONDS = [0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600, 3600];
const HTTP_SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/**
 * One process's Prometheus metrics, on a registry of its own (never prom-client's global one, so
 * tests and the all-in-one `start` each get exactly the metrics they build). In-process counters
 * and histograms live here; gauges that describe the database are added by addDatabaseGauges.
 */
export function createMetrics() {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    /** Attempts by how they ended: succeeded, failed (for good), cancelled, retried, handed_back. */
    jobAttempts: new Counter({
      name: 'leasehold_job_attempts_total',
      help: 'Job attempts this process finished, by queue, kind and outcome.',
      labelNames: ['queue', 'kind', 'outcome'] as const,
      registers,
    }),
    /** Handler run time per attempt (observed per job: a JobHistogram, cheap enough for 30k jobs/s). */
    jobDuration: new JobHistogram({
      name: 'leasehold_job_duration_seconds',
      help: 'Handler run time of each attempt, by queue and kind.',
      labelNames: ['queue', 'kind'],
      buckets: JOB_SECONDS,
      registers,
    }),
    /** Round trip of one claim statement (many jobs each). */
    claimDuration: new JobHistogram({
      name: 'leasehold_claim_duration_seconds',
      help: 'Round trip of one claim statement.',
      labelNames: [],
      buckets: CLAIM_SECONDS,
      registers,
    }),
    /** How long a job waited past its run_at before a worker claimed it (observed per job). */
    claimLatency: new JobHistogram({
      name: 'leasehold_claim_latency_seconds',
      help: 'Time from a job becoming ready (run_at) to its claim, by queue.',
      labelNames: ['queue'],
      buckets: WAIT_SECONDS,
      registers,
    }),
    /** Expired leases the reclaimer took back, by what became of the job. */
    leaseReclaims: new Counter({
      name: 'leasehold_lease_reclaims_total',
      help: 'Expired leases taken back, by result: requeued, failed (out of attempts) or cancelled.',
      labelNames: ['result'] as const,
      registers,
    }),
    /** Failed attempts sent back to the queue for another try. */
    retries: new Counter({
      name: 'leasehold_job_retries_total',
      help: 'Failed attempts scheduled to run again, by queue and kind.',
      labelNames: ['queue', 'kind'] as const,
      registers,
    }),
    /** Jobs that failed for good and were copied to dead_letters. */
    deadLetters: new Counter({
      name: 'leasehold_dead_letters_total',
      help: 'Jobs that failed for good (copied to dead_letters), by queue and kind.',
      labelNames: ['queue', 'kind'] as const,
      registers,
    }),
    /** HTTP requests by route pattern (never the raw path: its ids would explode the series). */
    httpRequests: new Counter({
      name: 'leasehold_http_requests_total',
      help: 'HTTP requests by method, route pattern and status.',
      labelNames: ['method', 'route', 'status'] as const,
      registers,
    }),
    httpDuration: new Histogram({
      name: 'leasehold_http_request_duration_seconds',
      help: 'HTTP request duration by method and route pattern.',
      labelNames: ['method', 'route'] as const,
      buckets: HTTP_SECONDS,
      registers,
    }),
    /**
     * Open event streams: an SSE hub calls `.labels({stream}).inc()` when a client connects and
     * `.dec()` when it goes (stream: `events` for /v1/events, `dashboard` for the dashboard).
     */
    eventStreamSubscribers: new Gauge({
      name: 'leasehold_event_stream_subscribers',
      help: 'Open server-sent event streams, by stream.',
      labelNames: ['stream'] as const,
      registers,
    }),
    /** The governor adds each job's recorded spend here (one inc per cost event). */
    governorSpendUsd: new Counter({
      name: 'leasehold_governor_spend_usd_total',
      help: 'Spend recorded by the governor, in USD, by kind.',
      labelNames: ['kind'] as const,
      registers,
    }),
    /**
     * Each 402 refusal the API answers, by the ceiling that refused it: per_job, tenant_daily,
     * tenant_monthly, kind_daily, global_daily, credit_balance or margin_floor.
     */
    governorRefusals: new Counter({
      name: 'leasehold_governor_refusals_total',
      help: 'Jobs the governor refused, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    /**
     * webhook.deliver counts each attempt here: delivered, failed_retrying, failed_final (gave up or
     * 410 Gone), refused (SSRF guard), disabled (not sent: the subscription is disabled).
     */
    webhookDeliveries: new Counter({
      name: 'leasehold_webhook_deliveries_total',
      help: 'Webhook delivery attempts by outcome.',
      labelNames: ['outcome'] as const,
      registers,
    }),
  };
}

/** One process's metrics; pass it to createApp and Worker so both count into the same registry. */
export type Metrics = ReturnType<typeof createMetrics>;
