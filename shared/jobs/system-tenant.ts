/**
 * The tenant that owns jobs enqueued without one: the jobs table's default, and the tenant whose
 * jobs get no tenant_jobs row. Its own module, so that the statements in queue-sql.ts can use it
 * without importing queue.ts, which imports them.
 */
export const SYSTEM_TENANT = '00000000-0000-0000-0000-000000000000';
