import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { AppError } from '#shared/errors.js';
import { SecretUnavailable, openSecret } from '#shared/webhooks/secrets.js';
import { previousSecretExpiry, rotateTenantSigningSecret, tenantSigningSecret } from '#shared/webhooks/signing-secrets.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { requireScope } from '../middleware/authenticate.js';
import { problemResponses } from '../openapi-problems.js';
import { Rotated, json, time } from '../webhook-views.js';

const TenantSecret = z
  .object({
    secret: z.string().openapi({ description: 'Signs callbacks to jobs\' own webhook_url.' }),
    created_at: time,
    previous_secret_expires_at: time.nullable(),
  })
  .openapi('WebhookSigningSecret');

/** /v1/webhook-secret: the tenant's default secret, which signs callbacks to jobs' own webhook_url. */
export function webhookSecretRoutes(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const { sql, config } = deps;
  const key = config.WEBHOOK_SECRET_KEY;
  const app = new OpenAPIHono<ApiEnv>();
  const write = requireScope('jobs:write');

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
    const previous = previousSecretExpiry(row)?.toISOString() ?? null;
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
