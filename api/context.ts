import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Config } from '#shared/config.js';
import type { Sql } from '#shared/db/connect.js';
import type { Governor } from '#shared/governor/governor.js';
import type { Logger } from '#shared/log.js';
import type { Scope } from '#shared/auth/api-keys.js';
import type { JobQueue } from '#shared/jobs/queue.js';
import type { Metrics } from '#shared/metrics/metrics.js';
import type { ObjectStore } from '#shared/storage/object-store.js';
import type { EventHub } from './events/event-hub.js';

/** What the API needs; tests build it with their own database. */
export interface AppDeps {
  sql: Sql;
  config: Config;
  log: Logger;
  queue: JobQueue;
  /** The process's one governor: every router's estimates share its cache of pattern cost inputs. */
  governor: Governor;
  /** Uploads and stored images: S3, or the local disk store whose URLs this API serves. */
  storage: ObjectStore;
  /** The process's SSE fan-out; without it the event streams answer 503. */
  events?: EventHub;
  /** Where this process counts; createApp makes its own when absent (a worker in the same process shares it). */
  metrics?: Metrics;
}

/** The authenticated caller of a /v1 request. */
export interface Principal {
  tenantId: string;
  scopes: ReadonlySet<Scope>;
  /** `key:<id>` or `jwt:<subject>`, for logs. */
  subject: string;
}

/** Hono's environment for every route: the request id, its logger and (under /v1) the caller. */
export interface ApiEnv {
  Variables: {
    requestId: string;
    log: Logger;
    principal: Principal;
  };
}

/** A sub-app of routes: one per resource, mounted with app.route(). */
export type Router = OpenAPIHono<ApiEnv>;
