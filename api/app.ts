import { Hono } from 'hono';
import type { Config } from '#shared/config.js';
import type { Sql } from '#shared/db/connect.js';
import type { Logger } from '#shared/log.js';

/** What the API needs; tests build it with their own database. */
export interface AppDeps {
  sql: Sql;
  config: Config;
  log: Logger;
}

/** The Hono application. */
export function createApp({ sql }: AppDeps): Hono {
  const app = new Hono();

  app.get('/health', (c) => c.json({ status: 'ok' }));

  app.get('/ready', async (c) => {
    try {
      const [row] = await sql<{ migrations: number; workers: number }[]>`
        select (select count(*) from leasehold.schema_migrations)::int as migrations,
               (select count(*) from leasehold.workers
                 where stopped_at is null and last_seen_at > now() - interval '1 minute')::int as workers`;
      return c.json({ status: 'ready', database: 'ok', ...row });
    } catch (err) {
      return c.json({ status: 'unavailable', database: (err as Error).message }, 503);
    }
  });

  return app;
}
