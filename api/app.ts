import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import { AppError } from '#shared/errors.js';
import { LocalObjectStore } from '#shared/storage/local-store.js';
import { addDatabaseGauges } from '#shared/metrics/database-gauges.js';
import { createMetrics } from '#shared/metrics/metrics.js';
import type { AppDeps, ApiEnv } from './context.js';
import { authenticate } from './middleware/authenticate.js';
import { countRefusal, httpMetrics } from './middleware/http-metrics.js';
import { rateLimit } from './middleware/rate-limit.js';
import { refuseUnstorableText } from './middleware/refuse-unstorable-text.js';
import { notFound, onError, problem, validationError } from './middleware/problems.js';
import { dashboardRoutes } from './dashboard/routes.js';
import { deadLettersRoutes } from './routes/dead-letters.js';
import { docsRoutes } from './routes/docs.js';
import { editsRoutes } from './routes/edits.js';
import { eventsRoutes } from './routes/events.js';
import { galleriesRoutes } from './routes/galleries.js';
import { ingestRoutes } from './routes/ingest.js';
import { jobsRoutes } from './routes/jobs.js';
import { metricsRoutes } from './routes/metrics.js';
import { patternsRoutes } from './routes/patterns.js';
import { storageRoutes } from './routes/storage.js';
import { systemRoutes } from './routes/system.js';
import { uploadsRoutes } from './routes/uploads.js';
import { usageRoutes } from './routes/usage.js';
import { webhooksRoutes } from './routes/webhooks.js';

export type { AppDeps } from './context.js';

/** What each scope allows, in the OpenAPI document. */
const SCOPES_DOC =
  '`Authorization: Bearer <API key or JWT>`. Scopes: `jobs:read` reads the caller\'s own jobs, patterns, dead letters, ' +
  'webhooks and usage; `jobs:write` also creates, cancels, retries and requeues them. `admin` is the operators\' scope: it ' +
  'acts across every tenant (/v1/admin/*, the dashboard, /metrics), only API keys made with `leasehold keys create --scopes admin` ' +
  'hold it, and a JWT never does (a scope claim naming it is ignored). Give tenants `jobs:read` / `jobs:write` keys.';

/** Largest request body the API reads; images go through presigned uploads, not the JSON API. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Builds the HTTP API; tests call `createApp(deps).request(...)` against their own database. */
export function createApp(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>({
    // Every route validates with zod; a failure lists every path and message as one problem.
    defaultHook: (result, c) => {
      if (!result.success) return problem(c, validationError(result.error, result.target === 'json' ? 'body' : result.target));
    },
  });

  const metrics = deps.metrics ?? createMetrics();
  if (!metrics.registry.getSingleMetric('leasehold_queue_depth')) addDatabaseGauges(metrics, deps.sql, deps.log);
  // Every router below sees the same registry as deps.metrics (an SSE hub counts its subscribers there).
  deps = { ...deps, metrics };

  app.use(requestId());
  app.use(httpMetrics(metrics));
  app.use(async (c, next) => {
    const started = performance.now();
    c.set('log', deps.log.child({ request_id: c.get('requestId') }));
    await next();
    c.get('log').info(
      { method: c.req.method, path: c.req.path, status: c.res.status, ms: +(performance.now() - started).toFixed(1) },
      'request',
    );
  });
  app.onError((err, c) => (countRefusal(metrics, err), onError(err, c)));
  app.notFound(notFound);

  app.route('/', systemRoutes(deps));
  app.route('/', docsRoutes());
  app.route('/', metricsRoutes(deps, metrics));
  app.route('/', dashboardRoutes(deps, metrics));
  if (deps.storage instanceof LocalObjectStore) {
    app.route('/', storageRoutes(deps.storage, { sql: deps.sql, maxTransfers: deps.config.STORAGE_MAX_TRANSFERS }));
  }

  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => problem(c, new AppError('payload_too_large', `request bodies are limited to ${MAX_BODY_BYTES} bytes`)),
    }),
  );
  app.use('/v1/*', authenticate(deps));
  app.use('/v1/*', rateLimit(deps));
  app.use('/v1/*', refuseUnstorableText());

  app.route('/v1', patternsRoutes(deps));
  app.route('/v1', uploadsRoutes(deps));
  app.route('/v1', ingestRoutes(deps));
  app.route('/v1', jobsRoutes(deps));
  app.route('/v1', deadLettersRoutes(deps));
  app.route('/v1', galleriesRoutes(deps));
  app.route('/v1', editsRoutes(deps));
  app.route('/v1', usageRoutes(deps));
  app.route('/v1', eventsRoutes(deps));
  app.route('/v1', webhooksRoutes(deps));

  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Leasehold', version: '0.1.0', description: `A Postgres-native job system for AI image pipelines.\n\n${SCOPES_DOC}` },
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', description: SCOPES_DOC });

  return app;
}
