import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { AppError } from '#shared/errors.js';
import { lockTenantForCap } from '#shared/auth/tenants.js';
import { KINDS } from '#shared/jobs/kinds.js';
import { isUuid, uuidv7 } from '#shared/jobs/uuid.js';
import { DEFAULT_WEBHOOK_EVENTS, WEBHOOK_EVENTS } from '#shared/webhooks/delivery.js';
import { ROTATION_GRACE_MS, newSigningSecret, sealSecret } from '#shared/webhooks/secrets.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { requireScope } from '../middleware/authenticate.js';
import { invalidFields } from '../middleware/problems.js';
import { problemResponses } from '../openapi-problems.js';
import { webhookUrlRefusal } from '../webhook-url-refusal.js';
import { Rotated, WEBHOOK_COLUMNS, WebhookView, json, noWebhook, uuidParam, webhookView, type WebhookRow } from '../webhook-views.js';
import { webhookDeliveriesRoutes } from './webhook-deliveries.js';
import { webhookSecretRoutes } from './webhook-secret.js';

/** Most subscriptions one tenant may have: each one multiplies every job's callbacks. */
export const MAX_WEBHOOKS_PER_TENANT = 20;

const Created = WebhookView.extend({
  secret: z.string().openapi({ description: 'The `whsec_` signing secret. Shown only now.' }),
}).openapi('WebhookCreated');

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

/** /v1/webhooks: subscriptions and their secrets; delivery logs and the tenant's default secret are mounted here too. */
export function webhooksRoutes(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const { sql, config } = deps;
  const key = config.WEBHOOK_SECRET_KEY;
  const app = new OpenAPIHono<ApiEnv>();
  const write = requireScope('jobs:write');
  const read = requireScope('jobs:read');

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
    if (refusal) throw invalidFields([{ path: 'body.url', message: refusal }], 'body');
    const secret = newSigningSecret();
    const row = await sql.begin(async (tx) => {
      await lockTenantForCap(tx, tenantId);
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

  const UpdateWebhook = CreateWebhook.partial()
    .refine((b) => Object.keys(b).length > 0, 'name at least one of url, events, description')
    .openapi('UpdateWebhook');
  const update = createRoute({
    method: 'patch',
    path: '/webhooks/{id}',
    tags: ['webhooks'],
    summary: 'Change a subscription: its URL, events or description (the secret and delivery log stay)',
    description:
      'A new URL is checked like one at creation. Changing the URL clears `failing_since` (the failures were the old endpoint\'s); ' +
      'a disabled subscription stays disabled until `POST /v1/webhooks/{id}/enable`. Callbacks already queued go to the new URL.',
    security: [{ bearer: [] }],
    middleware: [write] as const,
    request: {
      params: z.object({ id: uuidParam('webhook') }),
      body: { required: true, content: { 'application/json': { schema: UpdateWebhook } } },
    },
    responses: {
      200: json(WebhookView, 'The subscription as it is now.'),
      ...problemResponses({ 400: 'Malformed JSON', 404: 'No such webhook for this tenant', 413: 'Body too large', 415: 'Not application/json', 422: 'validation_failed (a refused URL among them)' }),
    },
  });
  app.openapi(update, async (c) => {
    const { id } = c.req.valid('param');
    const body = c.req.valid('json');
    if (!isUuid(id)) throw noWebhook(id);
    if (body.url !== undefined) {
      const refusal = await webhookUrlRefusal(body.url, config);
      if (refusal) throw invalidFields([{ path: 'body.url', message: refusal }], 'body');
    }
    const [row] = await sql<WebhookRow[]>`
      update leasehold.webhooks
      set url = coalesce(${body.url ?? null}::text, url),
          events = coalesce(${body.events ?? null}::text[], events),
          description = case when ${body.description !== undefined} then ${body.description ?? null}::text else description end,
          failing_since = case when ${body.url ?? null}::text is distinct from null and ${body.url ?? null}::text <> url then null else failing_since end,
          updated_at = now()
      where id = ${id}::uuid and tenant_id = ${c.get('principal').tenantId}::uuid
      returning ${sql.unsafe(WEBHOOK_COLUMNS)}`;
    if (!row) throw noWebhook(id);
    return c.json(webhookView(row), 200);
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
    if (!isUuid(id)) throw noWebhook(id);
    const secret = newSigningSecret();
    const expires = new Date(Date.now() + ROTATION_GRACE_MS);
    const rotated = await sql`
      update leasehold.webhooks
      set previous_secret = secret, previous_secret_expires_at = ${expires}, secret = ${sealSecret(secret, key)}, updated_at = now()
      where id = ${id}::uuid and tenant_id = ${c.get('principal').tenantId}::uuid
      returning 1`;
    if (rotated.length === 0) throw noWebhook(id);
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
    if (!isUuid(id)) throw noWebhook(id);
    const [row] = await sql<WebhookRow[]>`
      update leasehold.webhooks set disabled_at = null, disabled_reason = null, failing_since = null, updated_at = now()
      where id = ${id}::uuid and tenant_id = ${c.get('principal').tenantId}::uuid
      returning ${sql.unsafe(WEBHOOK_COLUMNS)}`;
    if (!row) throw noWebhook(id);
    return c.json(webhookView(row), 200);
  });
  app.route('/', webhookDeliveriesRoutes(deps));
  app.route('/', webhookSecretRoutes(deps));

  return app;
}
