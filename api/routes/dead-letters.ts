import { OpenAPIHono } from '@hono/zod-openapi';
import type { AppDeps, ApiEnv } from '../context.js';

/** /v1 routes for dead-letters. */
export function deadLettersRoutes(_deps: AppDeps): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>();
  return app;
}
