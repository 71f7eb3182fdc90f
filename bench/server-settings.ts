/**
 * How the throughput benchmarks (bench:queue, bench:compare, bench:scaling) start their embedded
 * PostgreSQL.
 *
 * A fresh cluster has no WAL segments to recycle: every 16 MB of WAL first creates a segment file
 * and fills it with zeros, work that a long-running server skips once its checkpoints recycle old
 * segments. The cost grows with WAL volume, so it weighs most on the system that writes the most
 * (Leasehold, with an event row per transition). Measured side by side on the 2-core development
 * machine, the zero-filling took 4–21 % off bulk enqueue and 10–15 % off processing. The benchmarks
 * therefore create new segments without zero-filling them (`wal_init_zero=off`), as close as a
 * fresh cluster comes to a running server; `--wal-init-zero` keeps PostgreSQL's default.
 */

/** The parseArgs option each of those benchmarks takes. */
export const walInitZeroOption = { 'wal-init-zero': { type: 'boolean', default: false } } as const;

/** Server settings (`-c name=value`) for the benchmark's embedded PostgreSQL. */
export function benchServerSettings(walInitZero: boolean | undefined): Record<string, string> {
  return walInitZero ? {} : { wal_init_zero: 'off' };
}

/** The words each benchmark prints about it. */
export function describeWal(walInitZero: boolean | undefined): string {
  return walInitZero ? 'new WAL segments zero-filled (a fresh cluster)' : 'new WAL segments not zero-filled (wal_init_zero=off, as a running server recycles them)';
}
