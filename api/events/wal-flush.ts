import { setTimeout as sleep } from 'node:timers/promises';
import type { Sql } from '#shared/db/connect.js';
import type { Logger } from '#shared/log.js';
import { PREPARED } from '#shared/jobs/queue-sql.js';
import { FLUSH_WAL, WAL_FLUSHED } from './event-sql.js';

// PostgreSQL's insufficient_privilege and undefined_function: a server where the logical message
// may not be emitted (EXECUTE revoked, or a fork without it).
const CANNOT_EMIT = new Set(['42501', '42883']);
// How often the fallback looks whether another commit or the WAL writer has flushed far enough.
const POLL_MS = 5;

/**
 * Holds event rows back until a crash can no longer take them away. Claims commit without waiting
 * for the WAL flush (WORKER_ASYNC_CLAIMS, the default), and their rows are visible to everyone at
 * once: an event stream that sent such a row before the flush could see it vanish in a PostgreSQL
 * crash, and its id issued again to another event, so a client resuming after it would miss one.
 * The reader therefore sends nothing until the WAL is flushed as far as it was written when the
 * rows were read: it commits a flushing transaction of its own (one fsync, shared by every row of
 * the read) or, where that is not allowed, waits for the server's own next flush.
 */
export class WalFlush {
  #canEmit = true;
  /** Flushes forced, and flushes waited for (tests read them). */
  forced = 0;
  waited = 0;

  constructor(
    private readonly sql: Sql,
    private readonly log: Logger,
  ) {}

  /** Resolves once the WAL is on disk up to `lsn`: where a read found it written to. */
  async ensure(lsn: string): Promise<void> {
    if (this.#canEmit) {
      try {
        const [row] = await this.sql.unsafe<{ flushed: boolean }[]>(FLUSH_WAL, [lsn], PREPARED);
        if (row!.flushed) this.forced++;
        return;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (!code || !CANNOT_EMIT.has(code)) throw err;
        this.#canEmit = false;
        this.log.warn({ code }, 'pg_logical_emit_message is not allowed here: event streams wait for the WAL writer instead (up to wal_writer_delay)');
      }
    }
    this.waited++;
    for (;;) {
      const [row] = await this.sql.unsafe<{ flushed: boolean }[]>(WAL_FLUSHED, [lsn], PREPARED);
      if (row!.flushed) return;
      await sleep(POLL_MS);
    }
  }
}
