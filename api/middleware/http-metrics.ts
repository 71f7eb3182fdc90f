import type { MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { AppError } from '#shared/errors.js';
import type { Metrics } from '#shared/metrics/metrics.js';
import type { ApiEnv } from '../context.js';

/**
 * Counts every request by method, route pattern (`/v1/jobs/:id`, never the raw path: ids would
 * make a series per job) and status. `unmatched` covers 404s for paths no route serves.
 */
export function httpMetrics(metrics: Metrics): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      // Middleware is registered for method ALL; the last route with a method is the handler's.
      const route = matchedRoutes(c).findLast((r) => r.method !== 'ALL')?.path ?? 'unmatched';
      const method = c.req.method;
      metrics.httpRequests.labels(method, route, String(c.res.status)).inc();
      metrics.httpDuration.labels(method, route).observe((performance.now() - started) / 1000);
    }
  };
}

/**
 * Counts a governor refusal (402 budget_exceeded or margin_floor) by the ceiling that refused it:
 * per_job, tenant_daily, tenant_monthly, kind_daily (without its kind), global_daily,
 * credit_balance or margin_floor.
 */
export function countRefusal(metrics: Metrics, err: unknown): void {
  if (!(err instanceof AppError) || (err.code !== 'budget_exceeded' && err.code !== 'margin_floor')) return;
  const ceiling = typeof err.extra.ceiling === 'string' ? err.extra.ceiling : err.code;
  metrics.governorRefusals.labels(ceiling.split(':')[0]!).inc();
}
