import { z } from '@hono/zod-openapi';
import type postgres from 'postgres';
import type { Sql } from '#shared/db/connect.js';
import { AppError } from '#shared/errors.js';
import { isUuid } from '#shared/jobs/uuid.js';
import { WEBHOOK_EVENTS } from '#shared/webhooks/delivery.js';
import { previousSecretExpiry } from '#shared/webhooks/signing-secrets.js';

// What the webhook routes show and read: subscriptions (never their secrets) and deliveries with
// their latest attempts.

/**
 * Attempts a delivery shows, the latest ones. Each redelivery brings up to a full retry schedule
 * more; a page of 100 deliveries must not carry thousands of them.
 */
export const LISTED_ATTEMPTS = 20;

/** An ISO 8601 time in a response. */
export const time = z.iso.datetime({ offset: true });
/** A JSON response for createRoute. */
export const json = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { 'application/json': { schema } } });
/** A path parameter that must be a UUID (anything else is a 404, not a 422). */
export const uuidParam = (what: string) => z.string().openapi({ format: 'uuid', description: `A ${what} id; anything else is a 404.` });
const iso = (d: Date | null) => d && d.toISOString();

/** A subscription as the API shows it; the secret only ever appears in create and rotate answers. */
export const WebhookView = z
  .object({
    id: z.uuid(),
    url: z.string(),
    events: z.array(z.enum(WEBHOOK_EVENTS)),
    description: z.string().nullable(),
    created_at: time,
    updated_at: time,
    disabled_at: time.nullable().openapi({ description: 'Set when the endpoint answered 410, or failed for WEBHOOK_DISABLE_AFTER_HOURS.' }),
    disabled_reason: z.string().nullable().openapi({ description: 'Why it was disabled.' }),
    failing_since: time.nullable().openapi({ description: 'First failed attempt since the last success.' }),
    previous_secret_expires_at: time.nullable().openapi({ description: 'After a rotation: until when the old secret also signs.' }),
  })
  .openapi('Webhook');

const Attempt = z.object({
  attempt: z.number().int().openapi({ description: 'Attempt number of the webhook.deliver job that made it.' }),
  deliver_job_id: z.uuid(),
  started_at: time,
  latency_ms: z.number().int(),
  status_code: z.number().int().nullable().openapi({ description: 'null: no HTTP answer (timeout, connection error, refused address).' }),
  error: z.string().nullable(),
  next_retry_at: time.nullable().openapi({ description: 'When the next attempt was scheduled; null after success or the last one.' }),
});

/** One callback and its latest attempts. */
export const DeliveryView = z
  .object({
    id: z.uuid().openapi({ description: 'Also the `webhook-id` header of every attempt.' }),
    webhook_id: z.uuid().nullable().openapi({ description: 'null: sent to the job\'s own webhook_url.' }),
    url: z.string().nullable().openapi({ description: 'The job\'s own webhook_url; null for a subscription (its current URL is used).' }),
    job_id: z.uuid(),
    event: z.string(),
    status: z.enum(['pending', 'delivered', 'failed', 'skipped']),
    occurred_at: time,
    deliver_job_id: z.uuid().openapi({ description: 'The webhook.deliver job sending it (a redelivery makes a new one).' }),
    last_status_code: z.number().int().nullable(),
    last_error: z.string().nullable(),
    next_retry_at: time.nullable(),
    delivered_at: time.nullable(),
    attempt_count: z.number().int().openapi({ description: 'Every attempt ever made at this delivery, redeliveries included.' }),
    attempts: z.array(Attempt).openapi({ description: `The latest ${LISTED_ATTEMPTS} attempts, oldest first.` }),
  })
  .openapi('WebhookDelivery');

/** A new secret, shown only in this answer. */
export const Rotated = z
  .object({
    secret: z.string().openapi({ description: 'The new `whsec_` secret. Shown only now.' }),
    previous_secret_expires_at: time.openapi({ description: 'Until then both secrets sign each callback.' }),
  })
  .openapi('WebhookSecretRotated');

/** A webhooks row as the routes read it. */
export interface WebhookRow {
  id: string;
  url: string;
  events: (typeof WEBHOOK_EVENTS)[number][];
  description: string | null;
  created_at: Date;
  updated_at: Date;
  disabled_at: Date | null;
  disabled_reason: string | null;
  failing_since: Date | null;
  previous_secret_expires_at: Date | null;
}
/** The API view of a webhooks row. */
export const webhookView = (r: WebhookRow): z.output<typeof WebhookView> => ({
  ...r,
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString(),
  disabled_at: iso(r.disabled_at),
  failing_since: iso(r.failing_since),
  previous_secret_expires_at: iso(previousSecretExpiry(r)),
});
/** The columns webhookView needs. */
export const WEBHOOK_COLUMNS = 'id, url, events, description, created_at, updated_at, disabled_at, disabled_reason, failing_since, previous_secret_expires_at';

/** A delivery as selectDeliveries reads it. */
export interface DeliveryRow {
  id: string;
  webhook_id: string | null;
  url: string | null;
  job_id: string;
  event: string;
  status: 'pending' | 'delivered' | 'failed' | 'skipped';
  occurred_at: Date;
  deliver_job_id: string;
  last_status_code: number | null;
  last_error: string | null;
  next_retry_at: Date | null;
  delivered_at: Date | null;
  attempt_count: number;
  attempts: { attempt: number; deliver_job_id: string; started_at: string; latency_ms: number; status_code: number | null; error: string | null; next_retry_at: string | null }[];
}
/** The API view of a delivery. */
export const deliveryView = (r: DeliveryRow): z.output<typeof DeliveryView> => ({
  ...r,
  occurred_at: r.occurred_at.toISOString(),
  next_retry_at: iso(r.next_retry_at),
  delivered_at: iso(r.delivered_at),
  // json_agg gives PostgreSQL's timestamp text; the API speaks ISO 8601 with a Z.
  attempts: r.attempts.map((a) => ({
    ...a,
    started_at: new Date(a.started_at).toISOString(),
    next_retry_at: a.next_retry_at && new Date(a.next_retry_at).toISOString(),
  })),
});

/**
 * Deliveries of the tenant matching `where` (conditions on `d`), newest first, with their latest
 * LISTED_ATTEMPTS attempts (a backward walk of webhook_delivery_attempts_delivery_idx) and the count
 * of all, which the delivery row keeps.
 */
export function selectDeliveries(sql: Sql, tenantId: string, where: postgres.Fragment, limit: number): Promise<DeliveryRow[]> {
  return sql<DeliveryRow[]>`
    select d.id, d.webhook_id, d.url, d.job_id, d.event, d.status, d.occurred_at, d.deliver_job_id, d.last_status_code,
           d.last_error, d.next_retry_at, d.delivered_at, d.attempts as attempt_count,
           coalesce((select json_agg(json_build_object('attempt', a.attempt, 'deliver_job_id', a.deliver_job_id,
                       'started_at', a.started_at, 'latency_ms', a.latency_ms, 'status_code', a.status_code, 'error', a.error,
                       'next_retry_at', a.next_retry_at) order by a.id)
                     from (select * from leasehold.webhook_delivery_attempts a
                           where a.delivery_id = d.id order by a.id desc limit ${LISTED_ATTEMPTS}) a), '[]') as attempts
    from leasehold.webhook_deliveries d
    where d.tenant_id = ${tenantId}::uuid ${where}
    order by d.id desc limit ${limit}`;
}

/** The 404 for a webhook id the caller has no subscription under. */
export const noWebhook = (id: string) => new AppError('not_found', `no webhook ${id}`);

/** The caller's subscription; another tenant's is a 404. */
export async function ownWebhook(sql: Sql, tenantId: string, id: string): Promise<WebhookRow> {
  if (!isUuid(id)) throw noWebhook(id);
  const [row] = await sql<WebhookRow[]>`
    select ${sql.unsafe(WEBHOOK_COLUMNS)} from leasehold.webhooks where id = ${id}::uuid and tenant_id = ${tenantId}::uuid`;
  if (!row) throw noWebhook(id);
  return row;
}
