import { randomUUID } from 'node:crypto';
import type { Sql } from '#shared/db/connect.js';
import type { Logger } from '#shared/log.js';
import { CHANNELS } from '#shared/jobs/notifier.js';
import { PREPARED } from '#shared/jobs/queue-sql.js';
import { READ_EVENTS, READ_START, type EventRow } from './event-sql.js';
import { GapTracker, parseSnapshot } from './gap-tracker.js';
import { WalFlush } from './wal-flush.js';

/** One read's outcome, handed to the hub in order. */
export interface EventBatch {
  rows: EventRow[];
  /** Rows whose ids the cursor had passed (a transaction committed after its gap timed out). */
  late: EventRow[];
  /** Every id up to here is delivered or settled as missing. */
  cursor: number;
}

/** Reader settings (EVENTS_* in the config). */
export interface EventReaderOptions {
  sql: Sql;
  log: Logger;
  /** Fallback read when no NOTIFY arrives: bounds the delay of a lost wake-up. */
  pollMs: number;
  /** How long a hole in the ids may hold events back before the reader moves past it. */
  gapTimeoutMs: number;
  /** Rows per read. */
  pageSize?: number;
  /** Quiet time after which a probe checks that the LISTEN still hears (default 10 s). */
  listenCheckMs?: number;
  onBatch(batch: EventBatch): Promise<void>;
}

// While a hole holds rows back, re-read this often: an aborted writer sends no NOTIFY.
const HOLE_POLL_MS = 25;
// At start, ids this far below the newest are checked for ones still uncommitted.
const START_WINDOW = 10_000;
// A probe NOTIFY not back within this long means the LISTEN no longer hears.
const PROBE_TIMEOUT_MS = 2_000;

/**
 * The process's one reader of job_events: a LISTEN on `leasehold_events` and `leasehold_jobs`
 * (NOTIFY is only a wake-up) and one read per wake-up, whatever the number of clients. After a reconnect
 * (postgres.js re-LISTENs and calls onlisten) it catches up from the last id it passed, so a
 * PostgreSQL restart loses nothing; a poll covers a lost notification. Rows are handed on only
 * once they are on disk (WalFlush), so no client sees an event that a crash could take back.
 */
export class EventReader {
  #tracker: GapTracker<EventRow> | undefined;
  #reading: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #unlisten: (() => Promise<void>) | undefined;
  readonly #pageSize: number;
  /** Rows go on only once they are on disk (claims commit without waiting for the flush). */
  readonly walFlush: WalFlush;
  /** Failed reads in a row: retries back off from 100 ms up to the poll interval. */
  #failures = 0;
  /** When a notification (or a new LISTEN) last arrived, and when our own probe went out. */
  #heardAt = Date.now();
  #probeSentAt: number | undefined;
  readonly #probe = `probe:${randomUUID()}`;
  /** Times the LISTEN was set up again after it went deaf or the database came back. */
  relistens = 0;
  #checkTimer: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;

  constructor(private readonly opts: EventReaderOptions) {
    this.#pageSize = opts.pageSize ?? 1_000;
    this.walFlush = new WalFlush(opts.sql, opts.log);
  }

  /** The last id passed (0 before start). */
  get cursor(): number {
    return this.#tracker?.cursor ?? 0;
  }

  /** True when `id` is below the cursor but may still arrive late. */
  isWatched(id: number): boolean {
    return this.#tracker?.isWatched(id) ?? false;
  }

  /** Finds the newest event, then listens; events committed from then on are read. */
  async start(): Promise<void> {
    const [start] = await this.opts.sql.unsafe<{ snap: string; after: string; max_id: number; ids: number[] }[]>(READ_START, [START_WINDOW], PREPARED);
    const snap = parseSnapshot(start!.snap, BigInt(start!.after));
    this.#tracker = new GapTracker<EventRow>(start!.max_id, this.opts.gapTimeoutMs);
    this.#tracker.watchMissing(Math.max(0, start!.max_id - START_WINDOW), start!.max_id, start!.ids, snap);
    await this.#listen();
    this.#schedule(this.opts.pollMs);
    const quietMs = this.opts.listenCheckMs ?? 10_000;
    this.#checkTimer = setInterval(() => void this.#checkListener(false, quietMs).catch(() => {}), Math.max(100, quietMs / 4));
    this.#checkTimer.unref();
  }

  /**
   * Listens on `leasehold_events` and on `leasehold_jobs`: producers send no event wake-up of their
   * own, as the workers' wake-up for new jobs commits with (or after) their `job.queued` events.
   */
  async #listen(): Promise<void> {
    const heard = () => ((this.#heardAt = Date.now()), this.wake());
    const events = await this.opts.sql.listen(
      CHANNELS.events,
      (payload) => {
        if (payload === this.#probe) this.#probeSentAt = undefined;
        heard();
      },
      // postgres.js re-LISTENs after a reconnect and calls this: catch up from the cursor.
      heard,
    );
    const jobs = await this.opts.sql.listen(CHANNELS.jobs, heard, heard).catch(async (err: unknown) => {
      await events.unlisten().catch(() => {});
      throw err;
    });
    this.#unlisten = async () => {
      await Promise.all([events.unlisten(), jobs.unlisten()]);
    };
  }

  /**
   * postgres.js re-LISTENs when its listener connection closes, but a re-LISTEN tried while the
   * server is still down fails for good, leaving the process on its poll alone. So after the
   * database comes back, and whenever no notification has been heard for a while and a probe of
   * our own does not come back, the LISTEN is set up again.
   */
  #checkListener(recovered: boolean, quietMs = this.opts.listenCheckMs ?? 10_000): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#checking ??= this.#check(recovered, quietMs).finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  async #check(recovered: boolean, quietMs: number): Promise<void> {
    const now = Date.now();
    const deaf = this.#probeSentAt !== undefined && now - this.#probeSentAt > PROBE_TIMEOUT_MS;
    if (recovered || deaf) {
      this.#probeSentAt = undefined;
      this.relistens++;
      await this.#unlisten?.().catch(() => {});
      await this.#listen();
      if (deaf) this.opts.log.warn('the job events LISTEN had gone deaf; listening again');
      return;
    }
    if (this.#probeSentAt === undefined && now - this.#heardAt > quietMs) {
      this.#probeSentAt = now;
      await this.opts.sql`select pg_notify(${CHANNELS.events}, ${this.#probe})`;
    }
  }

  /** Reads now, or right after the read in flight. */
  wake(): void {
    if (this.#stopped || !this.#tracker) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = this.#loop().finally(() => {
      this.#reading = undefined;
      // A wake-up that came while the last read was finishing.
      if (this.#again) this.wake();
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#checkTimer);
    await this.#checking?.catch(() => {});
    await this.#unlisten?.().catch(() => {});
    await this.#reading;
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    if (this.#stopped) return;
    this.#timer = setTimeout(() => this.wake(), ms);
  }

  async #loop(): Promise<void> {
    let nextMs = this.opts.pollMs;
    do {
      this.#again = false;
      try {
        const { more, holding } = await this.#readOnce();
        if (more) this.#again = true;
        nextMs = holding ? HOLE_POLL_MS : this.opts.pollMs;
        if (this.#failures > 0) {
          // The database is back: listen afresh (after any check already under way).
          await this.#checking;
          await this.#checkListener(true);
        }
        this.#failures = 0;
      } catch (err) {
        // The database is away (restart, network): retry soon, from the cursor kept here.
        if (this.#failures++ === 0) this.opts.log.warn({ err }, 'could not read job events; retrying');
        nextMs = Math.min(this.opts.pollMs, 100 * 2 ** Math.min(this.#failures, 5));
        this.#again = false;
        break;
      }
    } while (this.#again && !this.#stopped);
    this.#schedule(nextMs);
  }

  async #readOnce(): Promise<{ more: boolean; holding: boolean }> {
    const tracker = this.#tracker!;
    const { lo, hi } = tracker.lateRanges();
    const rows = await this.opts.sql.unsafe<(EventRow & { snap: string; after: string; lsn: string; durable: boolean; page_rows: number; id: number | null })[]>(
      READ_EVENTS,
      [tracker.cursor, this.#pageSize, lo, hi],
      PREPARED,
    );
    // Before the tracker moves: a flush that fails leaves the cursor where it was, for the retry.
    if (!rows[0]!.durable && rows[0]!.id !== null) await this.walFlush.ensure(rows[0]!.lsn);
    const snap = parseSnapshot(rows[0]!.snap, BigInt(rows[0]!.after));
    const pageFull = rows[0]!.page_rows >= this.#pageSize;
    const events: EventRow[] = [];
    for (const r of rows) {
      if (r.id === null) continue;
      events.push({ id: r.id, job_id: r.job_id, tenant_id: r.tenant_id, type: r.type, attempt: r.attempt, data: r.data, created_at: r.created_at });
    }
    const before = tracker.cursor;
    const decision = tracker.accept(events, snap, pageFull, Date.now());
    if (decision.rows.length || decision.late.length || tracker.cursor !== before) {
      await this.opts.onBatch({ rows: decision.rows, late: decision.late, cursor: tracker.cursor });
    }
    return { more: pageFull && decision.rows.length > 0, holding: decision.holding };
  }
}
