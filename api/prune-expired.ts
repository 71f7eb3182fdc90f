import type { Sql } from '#shared/db/connect.js';
import type { Logger } from '#shared/log.js';

const BATCH = 1_000;

/**
 * Deletes expired Idempotency-Key records, a batch per statement so no single delete holds locks
 * for long. Returns how many went.
 */
export async function pruneExpiredIdempotencyKeys(sql: Sql): Promise<number> {
  let total = 0;
  for (;;) {
    const rows = await sql`
      delete from leasehold.idempotency_keys
      where ctid = any(array(
        select ctid from leasehold.idempotency_keys where expires_at <= now() limit ${BATCH}
      ))
      returning 1`;
    total += rows.length;
    if (rows.length < BATCH) return total;
  }
}

/** Runs the prune every `everyMs` in an API process (several processes doing it is harmless). */
export function startPruning(opts: { sql: Sql; log: Logger; everyMs?: number }): { stop(): void } {
  const timer = setInterval(() => {
    pruneExpiredIdempotencyKeys(opts.sql)
      .then((n) => n > 0 && opts.log.info({ deleted: n }, 'expired idempotency keys pruned'))
      .catch((err: unknown) => opts.log.warn({ err }, 'idempotency key prune failed'));
  }, opts.everyMs ?? 10 * 60_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
