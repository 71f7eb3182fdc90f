import type { Sql, Tx } from '#shared/db/connect.js';
import type { Metrics } from '#shared/metrics/metrics.js';
import { PermanentError, RetryError } from '#shared/jobs/job-errors.js';
import type { PayloadOf } from '#shared/jobs/kinds.js';
import { FetchRefused } from '#shared/net/fetch-refused.js';
import { safePost } from '#shared/net/safe-post.js';
import { webhookBody } from '#shared/webhooks/delivery.js';
import { retryDelayMs } from '#shared/webhooks/schedule.js';
import { SecretUnavailable } from '#shared/webhooks/secrets.js';
import { signWebhook } from '#shared/webhooks/signature.js';
import { activeSecrets, tenantSigningSecret, type StoredSecrets } from '#shared/webhooks/signing-secrets.js';
import type { Handler, JobContext } from '../handler.js';

/** What sending callbacks needs; index.ts fills it from the config. */
export interface WebhookDeliverDeps {
  sql: Sql;
  allowPrivate: boolean;
  /** WEBHOOK_SECRET_KEY: opens the stored secrets. */
  secretKey: string | undefined;
  timeoutMs: number;
  /** Delays between attempts; attempts = entries + 1. */
  scheduleMs: readonly number[];
  disableAfterMs: number;
  inlineMaxBytes: number;
  /** Base of links in payloads (PUBLIC_URL). */
  publicUrl: string;
  /** Where each attempt's outcome is counted (leasehold_webhook_deliveries_total). */
  metrics?: Metrics;
}

/**
 * How an attempt ended, as leasehold_webhook_deliveries_total counts it: delivered (2xx),
 * failed_retrying (another attempt is scheduled), failed_final (no attempt left, or 410 Gone),
 * refused (the SSRF guard refused the target; not retried), disabled (not sent: the subscription
 * is disabled).
 */
export type DeliveryOutcome = 'delivered' | 'failed_retrying' | 'failed_final' | 'refused' | 'disabled';

interface DeliveryRow extends Partial<StoredSecrets> {
  id: string;
  tenant_id: string;
  webhook_id: string | null;
  job_url: string | null;
  job_id: string;
  event: string;
  error: string | null;
  occurred_at: Date;
  status: string;
  deliver_job_id: string;
  subscription_url: string | null;
  disabled_at: Date | null;
  disabled_reason: string | null;
  kind: string | null;
  pattern_id: string | null;
  result: unknown;
  json_schema: unknown;
}

/** How one attempt went, as the delivery log records it. */
interface Attempt {
  startedAt: Date;
  latencyMs: number;
  statusCode: number | null;
  error: string | null;
  ok: boolean;
  /** No retry will help: 410 Gone, or a target the SSRF guard refuses. */
  final: boolean;
  /** The SSRF guard refused the target for good. */
  refused?: boolean;
}

const GONE = 410;

/**
 * `webhook.deliver`: sends one delivery of the outbox. The `webhook-id` is the delivery id on
 * every attempt, so receivers can de-duplicate. Any 2xx succeeds; anything else (3xx included:
 * redirects are not followed), a timeout or a connection error is retried on WEBHOOK_RETRY_SCHEDULE;
 * 410 disables the subscription, as does failing for WEBHOOK_DISABLE_AFTER_HOURS. Every attempt
 * is recorded in webhook_delivery_attempts.
 */
export function webhookDeliver(deps: WebhookDeliverDeps): Handler<PayloadOf<'webhook.deliver'>> {
  const { sql } = deps;
  const count = (outcome: DeliveryOutcome) => deps.metrics?.webhookDeliveries.labels(outcome).inc();
  return async ({ delivery_id }, ctx) => {
    const [d] = await sql<DeliveryRow[]>`
      select d.id, d.tenant_id, d.webhook_id, d.url as job_url, d.job_id, d.event, d.error, d.occurred_at, d.status,
             d.deliver_job_id, w.url as subscription_url, w.disabled_at, w.disabled_reason,
             coalesce(w.secret, s.secret) as secret,
             case when d.webhook_id is null then s.previous_secret else w.previous_secret end as previous_secret,
             case when d.webhook_id is null then s.previous_secret_expires_at else w.previous_secret_expires_at end as previous_secret_expires_at,
             j.kind, j.pattern_id, j.result, v.json_schema
      from leasehold.webhook_deliveries d
      left join leasehold.webhooks w on w.id = d.webhook_id and w.tenant_id = d.tenant_id
      -- A job's own webhook_url is signed with the tenant's default secret (made on first use, below).
      left join leasehold.webhook_signing_secrets s on d.webhook_id is null and s.tenant_id = d.tenant_id
      left join leasehold.jobs j on j.id = d.job_id and j.tenant_id = d.tenant_id
      left join leasehold.pattern_versions v on v.pattern_id = j.pattern_id and v.version = j.pattern_version and v.tenant_id = j.tenant_id
      where d.id = ${delivery_id}::uuid and d.tenant_id = ${ctx.tenantId}::uuid`;
    if (!d) return { skipped: 'the delivery no longer exists (its subscription was deleted)' };
    if (d.deliver_job_id !== ctx.id) return { skipped: 'superseded by a redelivery' };
    // Sent and recorded, then the worker died before the job's success was written.
    if (d.status === 'delivered') return { skipped: 'already delivered' };
    if (d.webhook_id && d.disabled_at) {
      const why = `not sent: the subscription is disabled (${d.disabled_reason ?? 'by request'})`;
      const skipped = await asOwner(sql, d, ctx, (tx) => tx`
        update leasehold.webhook_deliveries set status = 'skipped', last_error = ${why}, next_retry_at = null
        where id = ${d.id}::uuid`);
      if (!skipped) return { skipped: NOT_OWNER };
      count('disabled');
      return { skipped: why };
    }

    const attempt = await send(d, ctx, deps);
    // The job's own cap ends it whatever the schedule says; the delivery must then read failed too.
    const delay = attempt.ok || attempt.final || ctx.attempt >= ctx.maxAttempts ? undefined : retryDelayMs(deps.scheduleMs, ctx.attempt);
    const nextRetryAt = delay === undefined ? null : new Date(Date.now() + delay);
    const status = attempt.ok ? 'delivered' : nextRetryAt ? 'pending' : 'failed';
    if (!(await record(sql, d, ctx, attempt, status, nextRetryAt, deps.disableAfterMs))) {
      // Its outcome is refused by the same fence: nothing of this attempt is kept.
      ctx.log.warn({ delivery_id: d.id, status_code: attempt.statusCode }, 'webhook attempt not recorded: the lease had moved on');
      return { skipped: NOT_OWNER };
    }
    count(attempt.ok ? 'delivered' : attempt.refused ? 'refused' : nextRetryAt ? 'failed_retrying' : 'failed_final');

    if (attempt.ok) return { status_code: attempt.statusCode, latency_ms: attempt.latencyMs };
    const message = `webhook attempt ${ctx.attempt} failed: ${attempt.error}`;
    if (!nextRetryAt) throw new PermanentError(attempt.final ? message : `${message} (no attempts left)`, attempt.statusCode === GONE ? 'webhook_gone' : 'webhook_failed');
    throw new RetryError(message, { at: nextRetryAt }, 'webhook_failed');
  };
}

/** Builds, signs and POSTs the callback once; never throws except when the job itself is aborted. */
async function send(d: DeliveryRow, ctx: JobContext, deps: WebhookDeliverDeps): Promise<Attempt> {
  const startedAt = new Date();
  const t0 = performance.now();
  const done = (a: Omit<Attempt, 'startedAt' | 'latencyMs'>): Attempt => ({ startedAt, latencyMs: Math.round(performance.now() - t0), ...a });
  let secrets: string[];
  try {
    secrets = d.secret
      ? activeSecrets(d as StoredSecrets, deps.secretKey)
      : activeSecrets(await tenantSigningSecret(deps.sql, d.tenant_id, deps.secretKey), deps.secretKey);
  } catch (err) {
    if (!(err instanceof SecretUnavailable)) throw err;
    return done({ statusCode: null, error: `cannot sign: ${err.message}`, ok: false, final: false });
  }
  const body = webhookBody(
    { event: d.event, jobId: d.job_id, kind: d.kind ?? 'unknown', patternId: d.pattern_id, result: d.result, schema: d.json_schema, error: d.error, occurredAt: d.occurred_at },
    { publicUrl: deps.publicUrl, inlineMaxBytes: deps.inlineMaxBytes },
  );
  const headers = signWebhook({ id: d.id, timestamp: Math.floor(Date.now() / 1000), body, secrets });
  try {
    const res = await safePost(d.subscription_url ?? d.job_url!, body, { ...headers }, {
      allowPrivate: deps.allowPrivate,
      timeoutMs: deps.timeoutMs,
      signal: ctx.signal,
    });
    const ok = res.status >= 200 && res.status < 300;
    const excerpt = res.excerpt.replace(/\s+/g, ' ').trim().slice(0, 200);
    const error = ok ? null : `HTTP ${res.status}${res.status >= 300 && res.status < 400 ? ' (redirects are not followed)' : ''}${excerpt ? `: ${excerpt}` : ''}`;
    return done({ statusCode: res.status, error, ok, final: res.status === GONE });
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    if (!(err instanceof FetchRefused)) throw err;
    // The SSRF guard's refusals stay refusals; DNS failures, resets and timeouts may clear.
    const final = err.code === 'private_address' || err.code === 'scheme';
    return done({ statusCode: null, error: `${err.code}: ${err.message}`, ok: false, final, refused: final });
  }
}

const NOT_OWNER = 'not recorded: this attempt no longer holds its lease, or the delivery was made or changed meanwhile';

/**
 * Runs `write` in a transaction only while this attempt still holds its job's lease and the
 * delivery is still this job's and not delivered; returns whether it ran. A worker that stalled
 * in a send (a slow receiver, a paused process) may come back after its lease was reclaimed and
 * another worker made the delivery: without this its failure set a delivered delivery back to
 * pending and marked the subscription failing. The job's row is held FOR SHARE until the commit,
 * so the reclaimer (FOR UPDATE SKIP LOCKED) cannot move the lease on in between; the job row is
 * locked before the delivery's, the order no other writer reverses (redelivery locks only the
 * delivery).
 */
async function asOwner(sql: Sql, d: DeliveryRow, ctx: JobContext, write: (tx: Tx) => Promise<unknown>): Promise<boolean> {
  return sql.begin(async (tx) => {
    const [own] = await tx`
      select 1 from leasehold.jobs j
      where j.id = ${ctx.id}::uuid and j.status = 'running' and j.lease_token = ${ctx.leaseToken}::uuid
      for share`;
    if (!own) return false;
    const [current] = await tx`
      select 1 from leasehold.webhook_deliveries
      where id = ${d.id}::uuid and deliver_job_id = ${ctx.id}::uuid and status <> 'delivered'
      for update`;
    if (!current) return false;
    await write(tx);
    return true;
  });
}

/**
 * Writes the attempt, the delivery's new state and the subscription's health in one transaction,
 * as the delivery's owner (asOwner); false when it recorded nothing.
 */
async function record(sql: Sql, d: DeliveryRow, ctx: JobContext, a: Attempt, status: string, nextRetryAt: Date | null, disableAfterMs: number): Promise<boolean> {
  return asOwner(sql, d, ctx, async (tx) => {
    await tx`
      insert into leasehold.webhook_delivery_attempts
        (delivery_id, attempt, deliver_job_id, started_at, latency_ms, status_code, error, next_retry_at)
      values (${d.id}::uuid, ${ctx.attempt}, ${ctx.id}::uuid, ${a.startedAt}, ${a.latencyMs}, ${a.statusCode}, ${a.error}, ${nextRetryAt})`;
    await tx`
      update leasehold.webhook_deliveries
      set attempts = attempts + 1, last_attempt_at = ${a.startedAt}, last_status_code = ${a.statusCode},
          last_error = ${a.error}, next_retry_at = ${nextRetryAt}, status = ${status},
          delivered_at = ${a.ok ? new Date() : null}
      where id = ${d.id}::uuid`;
    if (!d.webhook_id) return;
    if (a.ok) {
      await tx`update leasehold.webhooks set failing_since = null where id = ${d.webhook_id}::uuid and failing_since is not null`;
    } else if (a.statusCode === GONE) {
      await tx`
        update leasehold.webhooks
        set disabled_at = now(), updated_at = now(),
            disabled_reason = 'the endpoint answered 410 Gone at ' || to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        where id = ${d.webhook_id}::uuid and disabled_at is null`;
    } else {
      await tx`
        update leasehold.webhooks
        set failing_since = coalesce(failing_since, now()),
            disabled_at = case when failing_since < now() - make_interval(secs => ${disableAfterMs / 1000}::float8) then now() end,
            disabled_reason = case when failing_since < now() - make_interval(secs => ${disableAfterMs / 1000}::float8)
              then 'every delivery has failed since ' || to_char(failing_since at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                   || '; the last: ' || ${a.error ?? 'unknown error'}::text end,
            updated_at = now()
        where id = ${d.webhook_id}::uuid and disabled_at is null`;
    }
  });
}
