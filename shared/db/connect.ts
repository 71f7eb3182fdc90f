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

/** Opens a pool with the settings every Leasehold process uses. */
export function connect(
  databaseUrl: string,
  opts: { max?: number; application?: string; synchronousCommit?: boolean } = {},
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
      // expire and the reclaimer requeues them) in exchange for +21 % throughput (NOTES.md).
      ...(opts.synchronousCommit === false ? { synchronous_commit: 'off' } : {}),
    },
  });
}
