import { OpenAPIHono } from '@hono/zod-openapi';
import { AppError } from '#shared/errors.js';
import type { Metrics } from '#shared/metrics/metrics.js';
import { scrapeAuthorizer } from '#shared/metrics/scrape-auth.js';
import type { AppDeps, ApiEnv } from '../context.js';

/** GET /metrics: this process's metrics in Prometheus text format, for METRICS_TOKEN or an admin key. */
export function metricsRoutes({ sql, config }: AppDeps, metrics: Metrics): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>();
  const authorize = scrapeAuthorizer(sql, config.METRICS_TOKEN);
  app.get('/metrics', async (c) => {
    if (!(await authorize(c.req.header('authorization')))) {
      throw new AppError(
        'unauthorized',
        'send Authorization: Bearer <METRICS_TOKEN or an API key with the admin scope>',
        {},
        { 'www-authenticate': 'Bearer realm="leasehold"' },
      );
    }
    return c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType });
  });
  return app;
}
