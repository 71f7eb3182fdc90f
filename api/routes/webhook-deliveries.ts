import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type postgres from 'postgres';
import { AppError } from '#shared/errors.js';
import { isUuid, uuidv7 } from '#shared/jobs/uuid.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { requireScope } from '../middleware/authenticate.js';
import { problemResponses } from '../openapi-problems.js';
import { pageFrom, pageOf, pageQuery } from '../pagination.js';
import { DeliveryView, LISTED_ATTEMPTS, deliveryView, json, noWebhook, ownWebhook, selectDeliveries, uuidParam, type DeliveryRow } from '../webhook-views.js';

/**
 * Times one delivery may be sent again by hand. Each redelivery is a new retry schedule (up to 12
 * attempts by default) logged on the same delivery, and moves the moment retention counts from: a
 * delivery redelivered in a loop would grow, and stay, for ever.
 */
export const MAX_REDELIVERIES = 20;

/** Delivery logs and redelivery: per subscription, and per job (which covers a job's own webhook_url). */
export function webhookDeliveriesRoutes(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const { sql, queue } = deps;
  /** One page of the tenant's deliveries matching `where`, newest first. */
  const deliveryPage = async (where: postgres.Fragment, tenantId: string, q: { cursor?: string | undefined; limit: number }) =>
    pageFrom(await selectDeliveries(sql, tenantId, sql`${where} ${q.cursor ? sql`and d.id < ${q.cursor}::uuid` : sql``}`, q.limit + 1), q.limit, deliveryView);
  const app = new OpenAPIHono<ApiEnv>();
  const write = requireScope('jobs:write');
  const read = requireScope('jobs:read');

  const deliveries = createRoute({
    method: 'get',
    path: '/webhooks/{id}/deliveries',
    tags: ['webhooks'],
    summary: `The delivery log of a subscription: every callback, newest first, with its latest ${LISTED_ATTEMPTS} attempts`,
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
    return c.json(await deliveryPage(sql`and d.webhook_id = ${id}::uuid`, tenantId, q), 200);
  });

  /**
   * Sends a delivery again with a new webhook.deliver job; same delivery id, so the same webhook-id.
   * Redeliveries are counted by the deliver jobs that made attempts at it (the first one aside).
   */
  async function redeliver(tenantId: string, deliveryId: string, scope: postgres.Fragment): Promise<DeliveryRow> {
    const notFound = new AppError('not_found', `no delivery ${deliveryId}`);
    if (!isUuid(deliveryId)) throw notFound;
    const jobId = uuidv7();
    await sql.begin(async (tx) => {
      const [d] = await tx<{ status: string; next_retry_at: Date | null; disabled_reason: string | null; disabled: boolean; live: boolean; senders: number }[]>`
        select d.status, d.next_retry_at, w.disabled_reason, w.disabled_at is not null as disabled,
               coalesce(j.status in ('queued', 'running'), false) as live,
               (select count(distinct a.deliver_job_id) from leasehold.webhook_delivery_attempts a where a.delivery_id = d.id)::int as senders
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
      if (d.senders > MAX_REDELIVERIES) {
        throw new AppError('invalid_state', `delivery ${deliveryId} was already redelivered ${d.senders - 1} times, the most allowed (${MAX_REDELIVERIES})`);
      }
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
    description: `A delivery may be redelivered ${MAX_REDELIVERIES} times.`,
    security: [{ bearer: [] }],
    middleware: [write] as const,
    request: { params: z.object({ id: uuidParam('webhook'), delivery_id: uuidParam('delivery') }) },
    responses: {
      202: json(DeliveryView, 'Queued again.'),
      ...problemResponses({ 404: 'No such webhook or delivery for this tenant', 409: `invalid_state: still being attempted, the webhook is disabled, or already redelivered ${MAX_REDELIVERIES} times` }),
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
    summary: `Every callback about one job (subscriptions and the job's own webhook_url), newest first, with its latest ${LISTED_ATTEMPTS} attempts`,
    description: 'Cursor pagination by id, as for GET /v1/jobs.',
    security: [{ bearer: [] }],
    middleware: [read] as const,
    request: { params: z.object({ id: uuidParam('job') }), query: z.object(pageQuery).strict() },
    responses: { 200: json(pageOf(DeliveryView), 'One page of deliveries, newest first.'), ...problemResponses({ 404: 'No such job for this tenant', 422: 'A bad parameter or cursor' }) },
  });
  app.openapi(jobDeliveries, async (c) => {
    const { id } = c.req.valid('param');
    const q = c.req.valid('query');
    const { tenantId } = c.get('principal');
    const notFound = new AppError('not_found', `no job ${id}`);
    if (!isUuid(id)) throw notFound;
    const [job] = await sql`select 1 from leasehold.jobs where id = ${id}::uuid and tenant_id = ${tenantId}::uuid`;
    if (!job) throw notFound;
    return c.json(await deliveryPage(sql`and d.job_id = ${id}::uuid`, tenantId, q), 200);
  });

  const jobRedeliver = createRoute({
    method: 'post',
    path: '/jobs/{id}/webhook-deliveries/{delivery_id}/redeliver',
    tags: ['webhooks'],
    summary: 'Send a finished callback about this job again (for the job\'s own webhook_url, which has no subscription id)',
    description: `A delivery may be redelivered ${MAX_REDELIVERIES} times.`,
    security: [{ bearer: [] }],
    middleware: [write] as const,
    request: { params: z.object({ id: uuidParam('job'), delivery_id: uuidParam('delivery') }) },
    responses: {
      202: json(DeliveryView, 'Queued again.'),
      ...problemResponses({ 404: 'No such job or delivery for this tenant', 409: `invalid_state: still being attempted, the webhook is disabled, or already redelivered ${MAX_REDELIVERIES} times` }),
    },
  });
  app.openapi(jobRedeliver, async (c) => {
    const { id, delivery_id } = c.req.valid('param');
    if (!isUuid(id)) throw new AppError('not_found', `no job ${id}`);
    const row = await redeliver(c.get('principal').tenantId, delivery_id, sql`and d.job_id = ${id}::uuid`);
    return c.json(deliveryView(row), 202);
  });

  return app;
}
