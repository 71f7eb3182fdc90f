import postgres from 'postgres';

/** A postgres.js client; every query runs through it. */
export type Sql = postgres.Sql;
/** A transaction (or reserved) handle from `sql.begin`. */
export type Tx = postgres.TransactionSql;

/** Opens a pool with the settings every Leasehold process uses. */
export function connect(
  url: string,
  opts: { max?: number; application?: string; synchronousCommit?: boolean } = {},
): Sql {
  return postgres(url, {
    max: opts.max ?? 10,
    idle_timeout: 30,
    connect_timeout: 10,
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
