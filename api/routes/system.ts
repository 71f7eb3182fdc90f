import { OpenAPIHono } from '@hono/zod-openapi';
import { AppError, ERROR_CODES, type ErrorCode } from '#shared/errors.js';
import { readMigrations } from '#shared/db/migrator.js';
import type { Logger } from '#shared/log.js';
import type { AppDeps, ApiEnv } from '../context.js';

const KNOWN_MIGRATIONS = readMigrations().map((m) => m.version);

// A load balancer's probe gives up after a few seconds: a database that does not answer in time
// (down behind a silent network, or every pooled connection busy) is "not ready", not a hang.
const READY_TIMEOUT_MS = 2_000;

/** Thrown when a check does not answer within READY_TIMEOUT_MS. */
class NoAnswer extends Error {
  constructor() {
    super(`no answer within ${READY_TIMEOUT_MS} ms`);
  }
}

/**
 * What /ready shows of a failed check. It answers without authentication, so a driver's or the
 * store's own message (hosts, ports, paths, bucket names) goes to the log, never into the body.
 */
function failed(err: unknown, check: string, log: Logger): 'timeout' | 'error' {
  log.warn({ err, check }, `ready: ${check} check failed`);
  return err instanceof NoAnswer ? 'timeout' : 'error';
}

/** 'ok' when the store answers within the probe's time, else 'timeout' or 'error' (the reason is logged). */
async function storageCheck(storage: AppDeps['storage'], log: Logger): Promise<'ok' | 'timeout' | 'error'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NoAnswer()), READY_TIMEOUT_MS);
  });
  try {
    await Promise.race([storage.check(), late]);
    return 'ok';
  } catch (err) {
    return failed(err, 'storage', log);
  } finally {
    clearTimeout(timer);
  }
}

/** Liveness, readiness and the problem-type pages: no authentication. */
export function systemRoutes({ sql, storage }: AppDeps): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>();

  app.get('/health', (c) => c.json({ status: 'ok' }));

  // Ready when the database answers, its schema matches this release, and object storage answers.
  app.get('/ready', async (c) => {
    const log = c.get('log');
    const storageStatus = storageCheck(storage, log);
    let timer: NodeJS.Timeout | undefined;
    try {
      const query = sql<{ applied: string[]; workers: number; ready_jobs: number; running_jobs: number; governor: Record<string, unknown> | null }[]>`
        select (select coalesce(array_agg(version order by version), '{}') from leasehold.schema_migrations) as applied,
               (select count(*) from leasehold.workers
                 where stopped_at is null and last_seen_at > now() - interval '1 minute')::int as workers,
               (select count(*) from leasehold.jobs where status = 'queued' and run_at <= now())::int as ready_jobs,
               (select count(*) from leasehold.jobs where status = 'running')::int as running_jobs,
               (select jsonb_build_object(
                  'global_daily_micros', s.global_daily_micros,
                  'spent_today_micros', (select coalesce(sum(spent_micros), 0) from leasehold.spend_daily
                                         where day = leasehold.governor_today()),
                  'brake', leasehold.governor_brake_reason())
                from leasehold.governor_settings s) as governor`;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          query.cancel();
          reject(new NoAnswer());
        }, READY_TIMEOUT_MS);
      });
      const [row] = await Promise.race([query, late]);
      const pending = KNOWN_MIGRATIONS.filter((v) => !row!.applied.includes(v));
      const checks = {
        database: 'ok',
        migrations: pending.length ? `pending: ${pending.join(', ')}` : 'current',
        workers: row!.workers,
        queue: { ready: row!.ready_jobs, running: row!.running_jobs },
        storage: await storageStatus,
        // The brake holds paid kinds only; the service stays ready.
        governor: row!.governor,
      };
      const ready = !pending.length && checks.storage === 'ok';
      return c.json({ status: ready ? 'ready' : 'unavailable', checks }, ready ? 200 : 503);
    } catch (err) {
      return c.json({ status: 'unavailable', checks: { database: failed(err, 'database', log), storage: await storageStatus } }, 503);
    } finally {
      clearTimeout(timer);
    }
  });

  // RFC 9457 `type` URIs resolve here.
  app.get('/problems/:code', (c) => {
    const code = c.req.param('code') as ErrorCode;
    const entry = Object.hasOwn(ERROR_CODES, code) ? ERROR_CODES[code] : undefined;
    if (!entry) throw new AppError('not_found', `no problem type ${code}`);
    return c.json({ type: `/problems/${code}`, code, ...entry });
  });

  return app;
}
