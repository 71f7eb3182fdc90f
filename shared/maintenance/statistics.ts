import type { Sql } from '#shared/db/connect.js';

/** The advisory lock of one statistics pass across every process ("leasesta"). */
export const STATISTICS_LOCK_KEY = 0x6c6561736573_7461n;

/** How often each worker process looks for tables that outgrew their statistics. */
export const STATISTICS_CHECK_MS = 5_000;

/** Below this many live rows a table's plans stay cheap whatever its statistics say. */
export const STATISTICS_MIN_ROWS = 2_000;

/**
 * Tables of schema leasehold holding more than twice the rows their statistics (the last ANALYZE)
 * counted, and at least $1 rows. A plan cached while a table was nearly empty (a sequential scan,
 * cheap at 20 rows) stays cached as the table grows, in every pooled connection, until an ANALYZE
 * invalidates it: a GET by id took 34.8 ms at 200,000 jobs against 0.29 ms after one. Autovacuum
 * analyzes within its naptime (a minute); this looks every few seconds. Steady churn does not
 * count: live rows stay near the estimate however many are inserted and deleted.
 */
export const GROWN_TABLES = `
select c.relname as table, s.n_live_tup::float8 as live, greatest(c.reltuples, 0)::float8 as estimated
from pg_stat_user_tables s
join pg_class c on c.oid = s.relid
where s.schemaname = 'leasehold' and s.n_live_tup >= $1::bigint and s.n_live_tup > 2 * greatest(c.reltuples, 0)
order by s.n_live_tup desc`;

/** One table analyzed: its live rows, the estimate it had, and how long ANALYZE took. */
export interface AnalyzedTable {
  table: string;
  live: number;
  estimated: number;
  ms: number;
}

/**
 * ANALYZEs the tables GROWN_TABLES names, one process at a time (a second caller returns [] at
 * once), each table in its own transaction with a lock timeout: a table autovacuum is analyzing
 * already is skipped until the next pass rather than waited for.
 */
export async function analyzeGrownTables(sql: Sql, minRows = STATISTICS_MIN_ROWS): Promise<AnalyzedTable[]> {
  const conn = await sql.reserve();
  try {
    const [lock] = await conn<{ got: boolean }[]>`select pg_try_advisory_lock(${STATISTICS_LOCK_KEY.toString()}::bigint) as got`;
    if (!lock!.got) return [];
    try {
      const grown = await conn.unsafe<{ table: string; live: number; estimated: number }[]>(GROWN_TABLES, [minRows]);
      const analyzed: AnalyzedTable[] = [];
      if (grown.length) await conn`set lock_timeout = '1s'`;
      for (const t of grown) {
        const t0 = performance.now();
        const done = await conn`analyze ${conn(`leasehold.${t.table}`)}`.then(
          () => true,
          (err: { code?: string }) => {
            if (err.code === '55P03') return false; // lock_not_available: autovacuum is analyzing it
            throw err;
          },
        );
        if (done) analyzed.push({ ...t, ms: Math.round(performance.now() - t0) });
      }
      return analyzed;
    } finally {
      await conn`reset lock_timeout`;
      await conn`select pg_advisory_unlock(${STATISTICS_LOCK_KEY.toString()}::bigint)`;
    }
  } finally {
    conn.release();
  }
}
