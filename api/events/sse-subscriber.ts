import type { BufferBudget } from './buffer-budget.js';
import { TERMINAL_TYPES, frameBytes, type Frame } from './event-frame.js';
import { GZIP_HEADER, crc32Combine, gzipTrailer, segmentOf, type Segment } from './gzip-segments.js';

/** What a subscriber wants of its tenant's events; absent fields match everything. */
export interface SubscriberFilter {
  jobId?: string;
  kind?: string;
  patternId?: string;
  /** Event types (the `status` filter, through TYPES_BY_STATUS). */
  types?: readonly string[];
}

/** Events of one read for one group of subscribers: the frames, and their bytes written once. */
export interface Chunk {
  frames: Frame[];
  /** The frames' bytes concatenated; every subscriber of the group writes this same buffer. */
  bytes: Buffer;
  /** Ids below the cursor that committed after it passed them (see GapTracker). */
  late: boolean;
}

const END = Symbol('end');

/**
 * One SSE client: a pull-based byte stream (the HTTP server reads the next chunk only once the
 * socket has taken the last one) fed from a bounded queue. A client whose queue passes
 * `maxBufferedBytes` has fallen too far behind: its stream ends, and its EventSource reconnects
 * with Last-Event-ID. Until `goLive()`, live chunks wait aside while the route replays history.
 *
 * With `gzip`, the stream is one gzip member whose pieces are deflated independently
 * (gzip-segments.ts): a chunk the hub hands to a whole group is compressed once for all of them,
 * and this stream only keeps the running CRC and length of what it has written, for the trailer.
 * Byte budgets count uncompressed bytes, so the same events make a client lag either way.
 *
 * With a `budget`, every buffer it queues is also counted against the process's budget for all
 * streams (buffer-budget.ts), and replay waits for room below half of the smaller of its own cap
 * and its share of that budget.
 *
 * `onClose` runs once, when the stream holds nothing more: a stream ended by its terminal event
 * stays open (and the hub keeps counting it, and may shed it) until its last byte is written or
 * its client goes, because its unwritten bytes still count against the budget.
 */
export class SseSubscriber {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #queue: (Buffer | Segment | typeof END)[] = [];
  #queuedBytes = 0;
  #wanted = false;
  /** Takes no more input: ended (the rest still being written) or closed. */
  #closed = false;
  /** onClose has run: the stream holds nothing and is nobody's to count any more. */
  #gone = false;
  #pending: Chunk[] | undefined = [];
  #pendingBytes = 0;
  /** Ids at or below it were replayed or seen before: live frames skip them (late ones aside). */
  #floor: number;
  /** Replayed ids the hub may still deliver late: skipped once when they come. */
  readonly #replayedLate = new Set<number>();
  #roomWaiters: (() => void)[] = [];
  /** gzip only: the CRC-32 and length of every byte written so far, uncompressed; null until the header went out. */
  #gz: { crc: number; len: number } | null = null;
  /** Why the stream ended early, for logs and tests. */
  endedBy: 'client' | 'lagging' | 'server' | undefined;

  constructor(
    readonly tenantId: string,
    readonly filter: SubscriberFilter,
    /** The hub's cursor when it joined: live chunks hold ids above it (late ones aside). */
    readonly startCursor: number,
    private readonly opts: {
      preamble: Buffer;
      maxBufferedBytes: number;
      endOnTerminal: boolean;
      gzip?: boolean;
      budget?: BufferBudget;
      onClose: (s: SseSubscriber) => void;
    },
  ) {
    this.#floor = startCursor;
    // First in the queue, before any keep-alive that may come while the route is still reading.
    if (opts.gzip) this.#push(GZIP_HEADER);
    this.#push(opts.gzip ? segmentOf(opts.preamble) : opts.preamble);
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: () => this.#pull(),
        cancel: () => this.#close('client'),
      },
      { highWaterMark: 0 },
    );
  }

  /** A key shared by subscribers that want exactly the same frames. */
  get groupKey(): string {
    const f = this.filter;
    return `${f.jobId ?? ''}|${f.kind ?? ''}|${f.patternId ?? ''}|${f.types?.join(',') ?? ''}`;
  }

  /** True when the stream is gzip-encoded (the route sets Content-Encoding from it). */
  get gzip(): boolean {
    return this.opts.gzip === true;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes waiting to be written. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Bytes this stream holds: waiting to be written, and live chunks waiting for the replay to end. */
  get bufferedBytes(): number {
    return this.#queuedBytes + this.#pendingBytes;
  }

  /** True when `f` (an event of this subscriber's tenant) is one it asked for. */
  wants(f: Frame, kind: string, patternId: string | null): boolean {
    const w = this.filter;
    return (
      (w.jobId === undefined || w.jobId === f.jobId) &&
      (w.kind === undefined || w.kind === kind) &&
      (w.patternId === undefined || w.patternId === patternId) &&
      (w.types === undefined || w.types.includes(f.type))
    );
  }

  /** Writes bytes now (replay, the opening, keep-alives), ahead of any live chunk not yet released. */
  send(bytes: Buffer): void {
    if (this.#closed) return;
    this.#enqueue(bytes);
  }

  /** Writes replayed frames; remembers the ones the hub could still deliver late. */
  sendReplayed(frames: Frame[], mayArriveLate: (id: number) => boolean): void {
    for (const f of frames) {
      if (mayArriveLate(f.id)) this.#replayedLate.add(f.id);
      this.#floor = Math.max(this.#floor, f.id);
    }
    this.#writeFrames(frames);
  }

  /** Resolves once the queue has room for more replay (or the stream is gone). */
  whenRoom(): Promise<void> {
    if (this.#closed || this.#queuedBytes < this.#room()) return Promise.resolve();
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  /** Replay goes on below this: half of this stream's cap or of its share of the process's budget. */
  #room(): number {
    return Math.min(this.opts.maxBufferedBytes, this.opts.budget?.share ?? Infinity) / 2;
  }

  /** Raises the floor: ids up to `id` are known to the client (Last-Event-ID). */
  skipUpTo(id: number): void {
    this.#floor = Math.max(this.#floor, id);
  }

  /** Ends replay: releases the live chunks that waited, then writes live ones as they come. */
  goLive(): void {
    const pending = this.#pending;
    this.#pending = undefined;
    this.#pendingBytes = 0;
    for (const chunk of pending ?? []) this.deliver(chunk);
    for (const chunk of pending ?? []) this.opts.budget?.release(chunk.bytes, chunk.bytes.length);
  }

  /** A live chunk from the hub. */
  deliver(chunk: Chunk): void {
    if (this.#closed) return;
    if (this.#pending) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.bytes.length;
      this.opts.budget?.hold(chunk.bytes, chunk.bytes.length);
      if (this.#pendingBytes + this.#queuedBytes > this.opts.maxBufferedBytes && this.#pending.length > 1) this.#close('lagging');
      return;
    }
    const frames = chunk.frames;
    const simple =
      !this.opts.endOnTerminal &&
      (chunk.late ? this.#replayedLate.size === 0 : frames[0]!.id > this.#floor);
    if (simple) {
      if (!chunk.late) this.#floor = frames[frames.length - 1]!.id;
      this.#enqueue(chunk.bytes);
      return;
    }
    const keep = chunk.late
      ? frames.filter((f) => !this.#replayedLate.delete(f.id))
      : frames.filter((f) => f.id > this.#floor);
    if (!chunk.late && keep.length) this.#floor = keep[keep.length - 1]!.id;
    this.#writeFrames(keep);
  }

  /** Ends the stream once everything queued has been written; onClose runs then. */
  end(): void {
    if (this.#closed) return;
    this.#queue.push(END);
    this.#closed = true;
    this.#flushWanted();
  }

  /** Ends the stream now, dropping what is queued. */
  close(why: 'server' | 'lagging' = 'server'): void {
    this.#close(why);
  }

  #writeFrames(frames: Frame[]): void {
    if (frames.length === 0) return;
    // A per-job stream ends with its job's terminal event.
    const t = this.opts.endOnTerminal ? frames.findIndex((f) => TERMINAL_TYPES.has(f.type)) : -1;
    const take = t >= 0 ? frames.slice(0, t + 1) : frames;
    this.#enqueue(frameBytes(take));
    if (t >= 0) this.end();
  }

  #enqueue(bytes: Buffer): void {
    if (this.#closed) return;
    // A buffer shared by many streams (a group's chunk, the keep-alive) is deflated once for all.
    this.#push(this.opts.gzip ? segmentOf(bytes) : bytes);
    // One chunk may exceed the budget on its own (a big batch); a second one waiting behind it may not.
    if (this.#queuedBytes > this.opts.maxBufferedBytes && this.#queue.length > 1) return this.#close('lagging');
    this.#flushWanted();
  }

  /**
   * Writes a piece at once when the HTTP server is waiting for one (its socket took the last);
   * otherwise queues it and counts its (uncompressed) bytes, here and against the process's budget.
   * A client that keeps up thus costs the budget nothing: only bytes that wait are accounted.
   */
  #push(item: Buffer | Segment): void {
    if (this.#wanted && this.#queue.length === 0) {
      this.#wanted = false;
      return this.#write(item);
    }
    const bytes = sizeOf(item);
    this.#queue.push(item);
    this.#queuedBytes += bytes;
    this.opts.budget?.hold(item, bytes);
  }

  #flushWanted(): void {
    if (this.#wanted && this.#queue.length) {
      this.#wanted = false;
      this.#pull();
    }
  }

  #pull(): void {
    const next = this.#queue.shift();
    if (next === undefined) {
      this.#wanted = true;
      return;
    }
    if (next === END) {
      this.#endGzip();
      this.#controller.close();
      this.#gone = true;
      this.opts.onClose(this);
      return;
    }
    const bytes = sizeOf(next);
    this.#queuedBytes -= bytes;
    this.opts.budget?.release(next, bytes);
    this.#write(next);
    if (this.#roomWaiters.length && this.#queuedBytes < this.#room()) {
      for (const w of this.#roomWaiters.splice(0)) w();
    }
  }

  /** Hands a piece to the HTTP server. */
  #write(item: Buffer | Segment): void {
    if (Buffer.isBuffer(item)) return this.#controller.enqueue(item);
    // CRC and length grow as pieces go out, so a stream cut short still ends with a true trailer.
    if (this.#gz) (this.#gz.crc = crc32Combine(this.#gz.crc, item.crc, item.len)), (this.#gz.len += item.len);
    else this.#gz = { crc: item.crc, len: item.len };
    this.#controller.enqueue(item.bytes);
  }

  /** Forgets everything queued or pending, giving its bytes back to the process's budget. */
  #drop(): void {
    const budget = this.opts.budget;
    if (budget) {
      for (const item of this.#queue) if (item !== END) budget.release(item, sizeOf(item));
      for (const chunk of this.#pending ?? []) budget.release(chunk.bytes, chunk.bytes.length);
    }
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#pending = undefined;
    this.#pendingBytes = 0;
  }

  /** Completes the gzip member (when one was begun) so the client sees a clean end, not a truncated stream. */
  #endGzip(): void {
    if (!this.#gz) return;
    this.#controller.enqueue(gzipTrailer(this.#gz.crc, this.#gz.len));
    this.#gz = null;
  }

  #close(why: 'client' | 'lagging' | 'server'): void {
    if (this.#gone) return;
    // Also a stream end() ended whose rest was not all written when its client went or the hub
    // shed it: the rest never will be.
    this.#gone = true;
    this.#closed = true;
    this.endedBy = why;
    this.#drop();
    for (const w of this.#roomWaiters.splice(0)) w();
    if (why !== 'client') {
      try {
        this.#endGzip();
        this.#controller.close();
      } catch {
        // already closed or cancelled
      }
    }
    this.opts.onClose(this);
  }
}

/** A queued piece's bytes, uncompressed: what the client and the process's budget count. */
function sizeOf(item: Buffer | Segment): number {
  return Buffer.isBuffer(item) ? item.length : item.len;
}
