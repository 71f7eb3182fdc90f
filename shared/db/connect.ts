import postgres from 'postgres';

/** A postgres.js client; every query runs through it. */
export type Sql = postgres.Sql;
/** A transaction (or reserved) handle from `sql.begin`. */
export type Tx = postgres.TransactionSql;

/**
 * Splits libpq's socket form (`postgres://user@localhost:5432/db?host=/run/postgresql`) into what
 * postgres.js wants: it would otherwise send `host` to the server as a setting and fail.
 */
function socketPath(url: string): { url: string; path?: string } {
  const u = new URL(url);
  const dir = u.searchParams.get('host');
  if (!dir?.startsWith('/')) return { url };
  u.searchParams.delete('host');
  return { url: u.toString(), path: `${dir}/.s.PGSQL.${u.port || '5432'}` };
}

/**
 * Session settings of a worker's pool. Every statement a worker runs addresses `jobs` by primary
 * key or through the claim and lease-expiry indexes, and each is prepared, so after five runs on a
 * connection PostgreSQL may keep a generic plan. Made while `jobs` held a few rows, that plan is a
 * sequential scan (every worker statement on `jobs` got one), and it stays cached as the table
 * grows, until an ANALYZE invalidates it (autovacuum: a minute or more). A burst of 100,000 jobs
 * after an idle start drained at 12,100–19,600 jobs/s that way, against 29,500–34,300 with the
 * plans made afresh, and 30,400–32,300 with sequential scans off. Planning each call instead would
 * cost 0.38–0.50 ms per claim or completion, more than the claim's own 0.26 ms.
 */
export const WORKER_SETTINGS = { enable_seqscan: 'off' } as const;

/** Opens a pool with the settings every Leasehold process uses. */
export function connect(
  databaseUrl: string,
  opts: {
    max?: number;
    application?: string;
    synchronousCommit?: boolean;
    /** A worker's pool: see WORKER_SETTINGS. */
    worker?: boolean;
  } = {},
): Sql {
  const { url, path } = socketPath(databaseUrl);
  return postgres(url, {
    ...(path ? { path } : {}),
    max: opts.max ?? 10,
    idle_timeout: 30,
    connect_timeout: 10,
    // Seconds before reconnecting after the n-th failed attempt. postgres.js's default grows to 20 s,
    // so a pool that saw a 3 s outage held queries for 13–17 s after the server was back; capped at
    // 1 s, every query resolved within 1.8 s of the restart (scripts/chaos/pg-restart.ts).
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    prepare: true,
    onnotice: () => {},
    connection: {
      application_name: opts.application ?? 'leasehold',
      search_path: 'leasehold,public',
      // Worker connections only: a crash re-runs the last few ms of completions (their leases
      // expire and the reclaimer requeues them) in exchange for +21 % throughput (measured with
      // plain SQL on the development machine).
      ...(opts.synchronousCommit === false ? { synchronous_commit: 'off' } : {}),
      ...(opts.worker ? WORKER_SETTINGS : {}),
    },
  });
}
