import { OpenAPIHono } from '@hono/zod-openapi';
import type { AppDeps, ApiEnv } from '../context.js';

/** /v1 routes for ingest. */
export function ingestRoutes(_deps: AppDeps): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>();
  return app;
}
