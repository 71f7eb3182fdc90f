import type { Sql } from '#shared/db/connect.js';
import type { Logger } from '#shared/log.js';
import { BufferBudget } from './buffer-budget.js';
import { frame, frameBytes, type Frame, type JobViewRow } from './event-frame.js';
import { EventReader, type EventBatch } from './event-reader.js';
import { READ_JOB_VIEWS, type EventRow } from './event-sql.js';
import { SseSubscriber, type Chunk, type SubscriberFilter } from './sse-subscriber.js';

/** Hub settings (EVENTS_* and SSE_* in the config). */
export interface EventHubOptions {
  sql: Sql;
  log: Logger;
  pollMs: number;
  gapTimeoutMs: number;
  /** A comment line this often keeps proxies from closing idle streams and finds dead peers. */
  keepAliveMs: number;
  /** Bytes a client may have waiting before it counts as too slow and is disconnected. */
  clientBufferBytes: number;
  /**
   * Bytes all clients together may have waiting (shared buffers once); past it, those holding more
   * than an equal share are disconnected as too slow. Default: no such budget.
   */
  bufferBudgetBytes?: number;
  /** Quiet time after which the reader checks its LISTEN still hears (tests shorten it). */
  listenCheckMs?: number;
  /** The `retry:` advice every stream opens with (default 2 s). */
  retryMs?: number;
  /** Compress streams whose client accepts gzip (default true); see gzip-segments.ts. */
  gzip?: boolean;
}

const KEEP_ALIVE = Buffer.from(':\n\n');

/**
 * Fans job events out to the process's SSE clients: one EventReader for all of them, one query for
 * the jobs of each batch, each event encoded once, and one buffer per group of clients that want
 * the same frames. Subscribers are matched in memory by tenant, then job, kind, pattern and type.
 */
export class EventHub {
  readonly #byTenant = new Map<string, Set<SseSubscriber>>();
  readonly #reader: EventReader;
  #cursor = 0;
  #keepAlive: NodeJS.Timeout | undefined;
  #size = 0;
  #closed = false;
  /** Every stream's opening, one buffer for all, so gzip streams share its deflated bytes. */
  readonly #preamble: Buffer;
  readonly #budget: BufferBudget;

  constructor(private readonly opts: EventHubOptions) {
    this.#preamble = Buffer.from(`retry: ${opts.retryMs ?? 2_000}\n\n`);
    this.#budget = new BufferBudget(opts.bufferBudgetBytes ?? Infinity, () => this.#shed());
    this.#reader = new EventReader({
      sql: opts.sql,
      log: opts.log,
      pollMs: opts.pollMs,
      gapTimeoutMs: opts.gapTimeoutMs,
      ...(opts.listenCheckMs !== undefined && { listenCheckMs: opts.listenCheckMs }),
      onBatch: (b) => this.#onBatch(b),
    });
  }

  /** Subscribers connected now. */
  get size(): number {
    return this.#size;
  }

  /** Bytes the subscribers have waiting, each shared buffer once (what bufferBudgetBytes bounds). */
  get bufferedBytes(): number {
    return this.#budget.bytes;
  }

  /** Every id up to here has been fanned out (ids still watched for late arrival aside). */
  get cursor(): number {
    return this.#cursor;
  }

  /** True when `id` is below the cursor but may still be delivered late. */
  isWatched(id: number): boolean {
    return this.#reader.isWatched(id);
  }

  async start(): Promise<void> {
    await this.#reader.start();
    this.#cursor = this.#reader.cursor;
    this.#keepAlive = setInterval(() => this.#ping(), this.opts.keepAliveMs);
    this.#keepAlive.unref();
  }

  /** Stops reading and ends every stream (their clients reconnect elsewhere with Last-Event-ID). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#keepAlive);
    await this.#reader.stop();
    for (const subs of [...this.#byTenant.values()]) for (const s of [...subs]) s.close('server');
  }

  /** The reader, for its counters. */
  get reader(): EventReader {
    return this.#reader;
  }

  /** Reads now (tests; the NOTIFY and the poll do it otherwise). */
  wake(): void {
    this.#reader.wake();
  }

  /**
   * A new client of `tenantId`'s events: live chunks wait until the route calls goLive(), after its
   * replay of what the client missed up to `startCursor`. `onGone` runs once when it leaves, however
   * it leaves (disconnect, terminal event, too slow, hub closed). `acceptsGzip` is whether the
   * client takes a gzip stream; the hub's `gzip` setting decides whether it gets one.
   */
  subscribe(tenantId: string, filter: SubscriberFilter, how: { endOnTerminal: boolean; acceptsGzip?: boolean; onGone?: () => void }): SseSubscriber {
    const { endOnTerminal, acceptsGzip = false, onGone } = how;
    const sub = new SseSubscriber(tenantId, filter, this.#cursor, {
      preamble: this.#preamble,
      maxBufferedBytes: this.opts.clientBufferBytes,
      endOnTerminal,
      gzip: acceptsGzip && this.opts.gzip !== false,
      budget: this.#budget,
      onClose: (s) => {
        if (this.#remove(s)) onGone?.();
      },
    });
    let subs = this.#byTenant.get(tenantId);
    if (!subs) this.#byTenant.set(tenantId, (subs = new Set()));
    subs.add(sub);
    this.#budget.streams = ++this.#size;
    return sub;
  }

  /** Open streams of one tenant on this process. */
  tenantSize(tenantId: string): number {
    return this.#byTenant.get(tenantId)?.size ?? 0;
  }

  /** Forgets a subscriber; false when it was already gone. */
  #remove(sub: SseSubscriber): boolean {
    const subs = this.#byTenant.get(sub.tenantId);
    if (!subs?.delete(sub)) return false;
    this.#budget.streams = --this.#size;
    if (subs.size === 0) this.#byTenant.delete(sub.tenantId);
    if (sub.endedBy === 'lagging') this.opts.log.info({ tenant_id: sub.tenantId }, 'event stream client fell too far behind; disconnected');
    return true;
  }

  /**
   * Over the budget: disconnects every subscriber holding more than its equal share, as a client
   * past its own cap is (it resumes with Last-Event-ID). Streams whose clients keep up hold next to
   * nothing, so they stay; and since the holdings add up to at least the total, once no one holds
   * more than its share the total is back within the budget.
   */
  #shed(): void {
    const share = this.#budget.share;
    let dropped = 0;
    for (const subs of [...this.#byTenant.values()]) {
      for (const s of [...subs]) {
        if (s.bufferedBytes > share) {
          s.close('lagging');
          dropped++;
        }
      }
    }
    this.opts.log.warn(
      { dropped, budget_bytes: this.#budget.maxBytes, share_bytes: Math.floor(share), buffered_bytes: this.#budget.bytes },
      'event streams held more than SSE_BUFFER_BUDGET_BYTES; disconnected those over their share',
    );
  }

  #ping(): void {
    for (const subs of this.#byTenant.values()) for (const s of subs) if (s.queuedBytes === 0) s.send(KEEP_ALIVE);
  }

  async #onBatch(batch: EventBatch): Promise<void> {
    const wanted = (r: EventRow) => this.#byTenant.has(r.tenant_id);
    const rows = batch.rows.filter(wanted);
    const late = batch.late.filter(wanted);
    const views = rows.length || late.length ? await this.#views([...rows, ...late]) : undefined;
    // From here on synchronous: a subscriber that joins now starts after this batch.
    if (views) {
      this.#fanOut(late, views, true);
      this.#fanOut(rows, views, false);
    }
    this.#cursor = batch.cursor;
  }

  /**
   * The jobs of a batch. The reader has already passed these events, so a failure here (the
   * database away) is retried until it succeeds rather than handed back: giving up would lose them.
   */
  async #views(rows: EventRow[]): Promise<Map<string, JobViewRow>> {
    const ids = [...new Set(rows.map((r) => r.job_id))];
    for (let attempt = 0; ; attempt++) {
      try {
        // Planned afresh each time, not prepared: a generic plan cached while `jobs` was small is a
        // sequential scan that tests each row against the whole id array. Built on 20 jobs and run
        // for 1,000 ids among 60,000, it took 300–425 ms against 7–13 ms planned for the call.
        const views = await this.opts.sql.unsafe<JobViewRow[]>(READ_JOB_VIEWS, [ids], { prepare: false });
        return new Map(views.map((v) => [v.id, v]));
      } catch (err) {
        if (this.#closed) throw err;
        if (attempt === 0) this.opts.log.warn({ err }, 'could not read the jobs of new events; retrying');
        await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  }

  #fanOut(rows: EventRow[], views: Map<string, JobViewRow>, late: boolean): void {
    if (rows.length === 0) return;
    const byTenant = new Map<string, { frame: Frame; view: JobViewRow }[]>();
    for (const r of rows) {
      const view = views.get(r.job_id);
      // A job of another tenant under this id cannot happen (ids are unique); a deleted job has nothing to show.
      if (!view || view.tenant_id !== r.tenant_id) continue;
      let list = byTenant.get(r.tenant_id);
      if (!list) byTenant.set(r.tenant_id, (list = []));
      list.push({ frame: frame(view, r), view });
    }
    for (const [tenantId, events] of byTenant) {
      const subs = this.#byTenant.get(tenantId);
      if (!subs) continue;
      const chunks = new Map<string, Chunk | null>();
      let byJob: Map<string, typeof events> | undefined;
      for (const sub of [...subs]) {
        const key = sub.groupKey;
        let chunk = chunks.get(key);
        if (chunk === undefined) {
          // Per-job streams look their job up rather than scan the batch: thousands of them stay cheap.
          const jobId = sub.filter.jobId;
          if (jobId !== undefined && !byJob) {
            byJob = new Map();
            for (const e of events) {
              const list = byJob.get(e.frame.jobId);
              if (list) list.push(e);
              else byJob.set(e.frame.jobId, [e]);
            }
          }
          const candidates = jobId === undefined ? events : (byJob!.get(jobId) ?? []);
          const frames = candidates.filter((e) => sub.wants(e.frame, e.view.kind, e.view.pattern_id)).map((e) => e.frame);
          chunk = frames.length ? { frames, bytes: frameBytes(frames), late } : null;
          chunks.set(key, chunk);
        }
        if (chunk) sub.deliver(chunk);
      }
    }
  }
}
