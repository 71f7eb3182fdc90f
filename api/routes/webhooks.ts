import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type postgres from 'postgres';
import type { Sql } from '#shared/db/connect.js';
import { AppError } from '#shared/errors.js';
import { KINDS } from '#shared/jobs/kinds.js';
import { isUuid, uuidv7 } from '#shared/jobs/uuid.js';
import { DEFAULT_WEBHOOK_EVENTS, WEBHOOK_EVENTS } from '#shared/webhooks/delivery.js';
import { ROTATION_GRACE_MS, SecretUnavailable, newSigningSecret, openSecret, sealSecret } from '#shared/webhooks/secrets.js';
import { rotateTenantSigningSecret, tenantSigningSecret } from '#shared/webhooks/signing-secrets.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { requireScope } from '../middleware/authenticate.js';
import { problemResponses } from '../openapi-problems.js';
import { pageFrom, pageOf, pageQuery } from '../pagination.js';
import { webhookUrlRefusal } from '../webhook-url-refusal.js';

/** Most subscriptions one tenant may have: each one multiplies every job's callbacks. */
export const MAX_WEBHOOKS_PER_TENANT = 20;

const time = z.iso.datetime({ offset: true });
const json = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { 'application/json': { schema } } });
const uuidParam = (what: string) => z.string().openapi({ format: 'uuid', description: `A ${what} id; anything else is a 404.` });
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

/** One callback and every attempt at it. */
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
    attempts: z.array(Attempt),
  })
  .openapi('WebhookDelivery');

const Created = WebhookView.extend({
  secret: z.string().openapi({ description: 'The `whsec_` signing secret. Shown only now.' }),
}).openapi('WebhookCreated');

const Rotated = z
  .object({
    secret: z.string().openapi({ description: 'The new `whsec_` secret. Shown only now.' }),
    previous_secret_expires_at: time.openapi({ description: 'Until then both secrets sign each callback.' }),
  })
  .openapi('WebhookSecretRotated');

const TenantSecret = z
  .object({
    secret: z.string().openapi({ description: 'Signs callbacks to jobs\' own webhook_url.' }),
    created_at: time,
    previous_secret_expires_at: time.nullable(),
  })
  .openapi('WebhookSigningSecret');

const CreateWebhook = z
  .object({
    url: KINDS['manifest.extract'].payload.shape.webhook_url
      .unwrap()
      .describe('http or https, ≤ 2048 characters, no credentials; refused when it is or resolves to a private address.'),
    events: z
      .array(z.enum(WEBHOOK_EVENTS))
      .min(1)
      .refine((e) => new Set(e).size === e.length, 'must not repeat an event')
      .optional()
      .openapi({ description: `Default: ${DEFAULT_WEBHOOK_EVENTS.join(', ')}.` }),
    description: z.string().max(500).optional(),
  })
  .strict()
  .openapi('CreateWebhook');

interface WebhookRow {
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
const webhookView = (r: WebhookRow): z.output<typeof WebhookView> => ({
  ...r,
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString(),
  disabled_at: iso(r.disabled_at),
  failing_since: iso(r.failing_since),
  previous_secret_expires_at: r.previous_secret_expires_at && r.previous_secret_expires_at.getTime() > Date.now() ? r.previous_secret_expires_at.toISOString() : null,
});
const WEBHOOK_COLUMNS = 'id, url, events, description, created_at, updated_at, disabled_at, disabled_reason, failing_since, previous_secret_expires_at';

interface DeliveryRow {
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
  attempts: { attempt: number; deliver_job_id: string; started_at: string; latency_ms: number; status_code: number | null; error: string | null; next_retry_at: string | null }[];
}
const deliveryView = (r: DeliveryRow): z.output<typeof DeliveryView> => ({
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

/** Deliveries of the tenant matching `where` (conditions on `d`), newest first, with their attempts. */
function selectDeliveries(sql: Sql, tenantId: string, where: postgres.Fragment, limit: number): Promise<DeliveryRow[]> {
  return sql<DeliveryRow[]>`
    select d.id, d.webhook_id, d.url, d.job_id, d.event, d.status, d.occurred_at, d.deliver_job_id, d.last_status_code,
           d.last_error, d.next_retry_at, d.delivered_at,
           coalesce((select json_agg(json_build_object('attempt', a.attempt, 'deliver_job_id', a.deliver_job_id,
                       'started_at', a.started_at, 'latency_ms', a.latency_ms, 'status_code', a.status_code, 'error', a.error,
                       'next_retry_at', a.next_retry_at) order by a.id)
                     from leasehold.webhook_delivery_attempts a where a.delivery_id = d.id), '[]') as attempts
    from leasehold.webhook_deliveries d
    where d.tenant_id = ${tenantId}::uuid ${where}
    order by d.id desc limit ${limit}`;
}

/** /v1/webhooks: subscriptions, their secrets and delivery logs; /v1/webhook-secret: the tenant's default secret. */
export function webhooksRoutes(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const { sql, config, queue } = deps;
  const key = config.WEBHOOK_SECRET_KEY;
  const app = new OpenAPIHono<ApiEnv>();
  const write = requireScope('jobs:write');
  const read = requireScope('jobs:read');
  const noWebhook = (id: string) => new AppError('not_found', `no webhook ${id}`);

  /** The caller's subscription, locked when `lock`; another tenant's is a 404. */
  async function ownWebhook(db: Sql | postgres.TransactionSql, tenantId: string, id: string, lock = false): Promise<WebhookRow & { secret: string }> {
    if (!isUuid(id)) throw noWebhook(id);
    const [row] = await db<(WebhookRow & { secret: string })[]>`
      select ${db.unsafe(WEBHOOK_COLUMNS)}, secret from leasehold.webhooks
      where id = ${id}::uuid and tenant_id = ${tenantId}::uuid ${lock ? db`for update` : db``}`;
    if (!row) throw noWebhook(id);
    return row;
  }

  const create = createRoute({
    method: 'post',
    path: '/webhooks',
    tags: ['webhooks'],
    summary: 'Subscribe a URL to job events; the signing secret is in this answer only',
    description:
      'Callbacks are signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`) and with ' +
      '`X-Leasehold-Signature: sha256=<hex>`. The URL is refused when it is, or resolves to, a private address (unless FETCH_ALLOW_PRIVATE).',
    security: [{ bearer: [] }],
    middleware: [write] as const,
    request: { body: { required: true, content: { 'application/json': { schema: CreateWebhook } } } },
    responses: {
      201: json(Created, 'Subscribed.'),
      ...problemResponses({ 400: 'Malformed JSON', 409: `conflict: already ${MAX_WEBHOOKS_PER_TENANT} subscriptions`, 413: 'Body too large', 415: 'Not application/json', 422: 'validation_failed (a refused URL among them)' }),
    },
  });
  app.openapi(create, async (c) => {
    const body = c.req.valid('json');
    const { tenantId } = c.get('principal');
    const refusal = await webhookUrlRefusal(body.url, config);
    if (refusal) throw new AppError('validation_failed', '1 problem(s) in the request body', { errors: [{ path: 'body.url', message: refusal }] });
    const secret = newSigningSecret();
    const row = await sql.begin(async (tx) => {
      // Serialises concurrent creates of one tenant so the cap holds.
      await tx`select 1 from leasehold.tenants where id = ${tenantId}::uuid for update`;
      const [{ n }] = (await tx`select count(*)::int as n from leasehold.webhooks where tenant_id = ${tenantId}::uuid`) as unknown as [{ n: number }];
      if (n >= MAX_WEBHOOKS_PER_TENANT) throw new AppError('conflict', `a tenant may have at most ${MAX_WEBHOOKS_PER_TENANT} webhooks; delete one first`);
      const [r] = await tx<WebhookRow[]>`
        insert into leasehold.webhooks (id, tenant_id, url, events, description, secret)
        values (${uuidv7()}, ${tenantId}::uuid, ${body.url}, ${body.events ?? DEFAULT_WEBHOOK_EVENTS}::text[], ${body.description ?? null},
                ${sealSecret(secret, key)})
        returning ${tx.unsafe(WEBHOOK_COLUMNS)}`;
      return r!;
    });
    return c.json({ ...webhookView(row), secret }, 201);
  });

  const list = createRoute({
    method: 'get',
    path: '/webhooks',
    tags: ['webhooks'],
    summary: 'List subscriptions, disabled ones with the reason',
    security: [{ bearer: [] }],
    middleware: [read] as const,
    responses: { 200: json(z.object({ data: z.array(WebhookView) }), 'Every subscription of the caller, oldest first.'), ...problemResponses({}) },
  });
  app.openapi(list, async (c) => {
    const rows = await sql<WebhookRow[]>`
      select ${sql.unsafe(WEBHOOK_COLUMNS)} from leasehold.webhooks where tenant_id = ${c.get('principal').tenantId}::uuid order by id`;
    return c.json({ data: rows.map(webhookView) }, 200);
  });

  const remove = createRoute({
    method: 'delete',
    path: '/webhooks/{id}',
    tags: ['webhooks'],
    summary: 'Delete a subscription and its delivery log; callbacks not yet sent are dropped',
    security: [{ bearer: [] }],
    middleware: [write] as const,
    request: { params: z.object({ id: uuidParam('webhook') }) },
    responses: { 204: { description: 'Deleted.' }, ...problemResponses({ 404: 'No such webhook for this tenant' }) },
  });
  app.openapi(remove, async (c) => {
    const { id } = c.req.valid('param');
    if (!isUuid(id)) throw noWebhook(id);
    const gone = await sql`delete from leasehold.webhooks where id = ${id}::uuid and tenant_id = ${c.get('principal').tenantId}::uuid returning 1`;
    if (gone.length === 0) throw noWebhook(id);
    return c.body(null, 204);
  });

  const rotate = createRoute({
    method: 'post',
    path: '/webhooks/{id}/rotate-secret',
    tags: ['webhooks'],
    summary: 'Replace the signing secret; the old one keeps signing for 24 hours',
    description: 'During the overlap every callback carries two `v1,` signatures (new first), so receivers can switch at leisure.',
    security: [{ bearer: [] }],
    middleware: [write] as const,
    request: { params: z.object({ id: uuidParam('webhook') }) },
    responses: { 200: json(Rotated, 'The new secret, shown only now.'), ...problemResponses({ 404: 'No such webhook for this tenant' }) },
  });
  app.openapi(rotate, async (c) => {
    const { id } = c.req.valid('param');
    const secret = newSigningSecret();
    const expires = new Date(Date.now() + ROTATION_GRACE_MS);
    await sql.begin(async (tx) => {
      await ownWebhook(tx, c.get('principal').tenantId, id, true);
      await tx`
        update leasehold.webhooks
        set previous_secret = secret, previous_secret_expires_at = ${expires}, secret = ${sealSecret(secret, key)}, updated_at = now()
        where id = ${id}::uuid`;
    });
    return c.json({ secret, previous_secret_expires_at: expires.toISOString() }, 200);
  });

  const enable = createRoute({
    method: 'post',
    path: '/webhooks/{id}/enable',
    tags: ['webhooks'],
    summary: 'Re-enable a disabled subscription (callbacks skipped meanwhile can be redelivered)',
    security: [{ bearer: [] }],
    middleware: [write] as const,
    request: { params: z.object({ id: uuidParam('webhook') }) },
    responses: { 200: json(WebhookView, 'Enabled.'), ...problemResponses({ 404: 'No such webhook for this tenant' }) },
  });
  app.openapi(enable, async (c) => {
    const { id } = c.req.valid('param');
    const row = await sql.begin(async (tx) => {
      await ownWebhook(tx, c.get('principal').tenantId, id, true);
      const [r] = await tx<WebhookRow[]>`
        update leasehold.webhooks set disabled_at = null, disabled_reason = null, failing_since = null, updated_at = now()
        where id = ${id}::uuid returning ${tx.unsafe(WEBHOOK_COLUMNS)}`;
      return r!;
    });
    return c.json(webhookView(row), 200);
  });

  const deliveries = createRoute({
    method: 'get',
    path: '/webhooks/{id}/deliveries',
    tags: ['webhooks'],
    summary: 'The delivery log of a subscription: every callback, newest first, with every attempt',
    description: 'Cursor pagination by id, as for GET /v1/jobs.',
    security: [{ bearer: [] }],
    middleware: [read] as const,
    request: { params: z.object({ id: uuidParam('webhook') }), query: z.object(pageQuery).strict() },
    responses: { 200: json(pageOf(DeliveryView), 'One page of deliveries.'), ...problemResponses({ 404: 'No such webhook for this tenant', 422: 'A bad parameter or cursor' }) },
  });
  app.openapi(deliveries, async (c) => {
    const { id } = c.req.valid('param');
    const q = c.req.valid('query');
    const { tenantId } = c.get('principal');
    await ownWebhook(sql, tenantId, id);
    const rows = await selectDeliveries(sql, tenantId, sql`and d.webhook_id = ${id}::uuid ${q.cursor ? sql`and d.id < ${q.cursor}::uuid` : sql``}`, q.limit + 1);
    return c.json(pageFrom(rows, q.limit, deliveryView), 200);
  });

  /** Sends a delivery again with a new webhook.deliver job; same delivery id, so the same webhook-id. */
  async function redeliver(tenantId: string, deliveryId: string, scope: postgres.Fragment): Promise<DeliveryRow> {
    const notFound = new AppError('not_found', `no delivery ${deliveryId}`);
    if (!isUuid(deliveryId)) throw notFound;
    const jobId = uuidv7();
    await sql.begin(async (tx) => {
      const [d] = await tx<{ status: string; next_retry_at: Date | null; disabled_reason: string | null; disabled: boolean; live: boolean }[]>`
        select d.status, d.next_retry_at, w.disabled_reason, w.disabled_at is not null as disabled,
               coalesce(j.status in ('queued', 'running'), false) as live
        from leasehold.webhook_deliveries d
        left join leasehold.webhooks w on w.id = d.webhook_id
        left join leasehold.jobs j on j.id = d.deliver_job_id
        where d.id = ${deliveryId}::uuid and d.tenant_id = ${tenantId}::uuid ${scope}
        for update of d`;
      if (!d) throw notFound;
      // Pending with its job gone (cancelled by hand, say) is stuck, not busy: it may be sent again.
      if (d.status === 'pending' && d.live) {
        const when = d.next_retry_at ? `; next attempt at ${d.next_retry_at.toISOString()}` : '';
        throw new AppError('invalid_state', `delivery ${deliveryId} is still being attempted${when}`);
      }
      if (d.disabled) throw new AppError('invalid_state', `the webhook is disabled (${d.disabled_reason ?? 'by request'}); enable it first`);
      await tx`
        update leasehold.webhook_deliveries set status = 'pending', deliver_job_id = ${jobId}::uuid, next_retry_at = null
        where id = ${deliveryId}::uuid`;
      await queue.enqueueInTransaction(tx, [{ id: jobId, kind: 'webhook.deliver', payload: { delivery_id: deliveryId }, tenantId }]);
    });
    const [row] = await selectDeliveries(sql, tenantId, sql`and d.id = ${deliveryId}::uuid`, 1);
    return row!;
  }

  const redeliverRoute = createRoute({
    method: 'post',
    path: '/webhooks/{id}/deliveries/{delivery_id}/redeliver',
    tags: ['webhooks'],
    summary: 'Send a finished delivery again, with the same webhook-id and a fresh retry schedule',
    security: [{ bearer: [] }],
    middleware: [write] as const,
    request: { params: z.object({ id: uuidParam('webhook'), delivery_id: uuidParam('delivery') }) },
    responses: {
      202: json(DeliveryView, 'Queued again.'),
      ...problemResponses({ 404: 'No such webhook or delivery for this tenant', 409: 'invalid_state: still being attempted, or the webhook is disabled' }),
    },
  });
  app.openapi(redeliverRoute, async (c) => {
    const { id, delivery_id } = c.req.valid('param');
    if (!isUuid(id)) throw noWebhook(id);
    const row = await redeliver(c.get('principal').tenantId, delivery_id, sql`and d.webhook_id = ${id}::uuid`);
    return c.json(deliveryView(row), 202);
  });

  const jobDeliveries = createRoute({
    method: 'get',
    path: '/jobs/{id}/webhook-deliveries',
    tags: ['webhooks'],
    summary: 'Every callback about one job (subscriptions and the job\'s own webhook_url), with every attempt',
    security: [{ bearer: [] }],
    middleware: [read] as const,
    request: { params: z.object({ id: uuidParam('job') }) },
    responses: { 200: json(z.object({ data: z.array(DeliveryView) }), 'Newest first.'), ...problemResponses({ 404: 'No such job for this tenant' }) },
  });
  app.openapi(jobDeliveries, async (c) => {
    const { id } = c.req.valid('param');
    const { tenantId } = c.get('principal');
    const notFound = new AppError('not_found', `no job ${id}`);
    if (!isUuid(id)) throw notFound;
    const [job] = await sql`select 1 from leasehold.jobs where id = ${id}::uuid and tenant_id = ${tenantId}::uuid`;
    if (!job) throw notFound;
    const rows = await selectDeliveries(sql, tenantId, sql`and d.job_id = ${id}::uuid`, 1000);
    return c.json({ data: rows.map(deliveryView) }, 200);
  });

  const jobRedeliver = createRoute({
    method: 'post',
    path: '/jobs/{id}/webhook-deliveries/{delivery_id}/redeliver',
    tags: ['webhooks'],
    summary: 'Send a finished callback about this job again (for the job\'s own webhook_url, which has no subscription id)',
    security: [{ bearer: [] }],
    middleware: [write] as const,
    request: { params: z.object({ id: uuidParam('job'), delivery_id: uuidParam('delivery') }) },
    responses: {
      202: json(DeliveryView, 'Queued again.'),
      ...problemResponses({ 404: 'No such job or delivery for this tenant', 409: 'invalid_state: still being attempted, or the webhook is disabled' }),
    },
  });
  app.openapi(jobRedeliver, async (c) => {
    const { id, delivery_id } = c.req.valid('param');
    if (!isUuid(id)) throw new AppError('not_found', `no job ${id}`);
    const row = await redeliver(c.get('principal').tenantId, delivery_id, sql`and d.job_id = ${id}::uuid`);
    return c.json(deliveryView(row), 202);
  });

  const getSecret = createRoute({
    method: 'get',
    path: '/webhook-secret',
    tags: ['webhooks'],
    summary: 'The tenant\'s default signing secret, which signs callbacks to jobs\' own webhook_url (made on first use)',
    security: [{ bearer: [] }],
    middleware: [write] as const,
    responses: { 200: json(TenantSecret, 'The current secret.'), ...problemResponses({}) },
  });
  app.openapi(getSecret, async (c) => {
    const row = await tenantSigningSecret(sql, c.get('principal').tenantId, key);
    const previous = row.previous_secret_expires_at && row.previous_secret_expires_at.getTime() > Date.now() ? row.previous_secret_expires_at.toISOString() : null;
    let secret: string;
    try {
      secret = openSecret(row.secret, key);
    } catch (err) {
      if (err instanceof SecretUnavailable) throw new AppError('unavailable', `${err.message}: the server's configuration must be fixed`);
      throw err;
    }
    return c.json({ secret, created_at: row.created_at.toISOString(), previous_secret_expires_at: previous }, 200);
  });

  const rotateDefault = createRoute({
    method: 'post',
    path: '/webhook-secret/rotate',
    tags: ['webhooks'],
    summary: 'Replace the tenant\'s default signing secret; the old one keeps signing for 24 hours',
    security: [{ bearer: [] }],
    middleware: [write] as const,
    responses: { 200: json(Rotated, 'The new secret.'), ...problemResponses({}) },
  });
  app.openapi(rotateDefault, async (c) => {
    const r = await rotateTenantSigningSecret(sql, c.get('principal').tenantId, key);
    return c.json({ secret: r.secret, previous_secret_expires_at: r.previousExpiresAt.toISOString() }, 200);
  });

  return app;
}
