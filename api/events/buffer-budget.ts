/**
 * The bytes every SSE stream of one process has waiting, against one budget
 * (SSE_BUFFER_BUDGET_BYTES). Each stream's own cap (SSE_CLIENT_BUFFER_BYTES) bounds one slow
 * client, not thousands of them: 200 streams replaying from `last_event_id=0` to clients that never
 * read held 2 MB each and raised the process's RSS by 100 MB in 24 s, still rising.
 *
 * A buffer that many streams hold (a group's chunk, the keep-alive, the opening) takes its memory
 * once, so it counts once: each holder takes a reference, and its bytes leave the total when the
 * last one lets go. Bytes are uncompressed, as each stream's own count is. Once the total passes
 * the budget, `onOver` runs, at most once per turn of the event loop. Only bytes that wait are
 * held: a piece the HTTP server takes at once (its client keeps up) never comes here.
 */
export class BufferBudget {
  readonly #refs = new Map<object, number>();
  #bytes = 0;
  #streams = 0;
  #overQueued = false;

  constructor(
    readonly maxBytes: number,
    private readonly onOver: () => void,
  ) {}

  /** Bytes held now, each shared buffer once. */
  get bytes(): number {
    return this.#bytes;
  }

  /** True when more is held than the budget allows. */
  get over(): boolean {
    return this.#bytes > this.maxBytes;
  }

  /** One stream's equal part of the budget: what it may hold once the process is over budget. */
  get share(): number {
    return this.maxBytes / Math.max(1, this.#streams);
  }

  /** The number of open streams the budget is shared between. */
  set streams(n: number) {
    this.#streams = n;
  }

  /** A stream takes `item` (`bytes` long, uncompressed) into its queue. */
  hold(item: object, bytes: number): void {
    const refs = this.#refs.get(item);
    this.#refs.set(item, (refs ?? 0) + 1);
    if (refs !== undefined) return;
    this.#bytes += bytes;
    if (this.over && !this.#overQueued) {
      this.#overQueued = true;
      setImmediate(() => {
        this.#overQueued = false;
        if (this.over) this.onOver();
      });
    }
  }

  /** A stream lets go of `item` (written, or dropped with the stream). */
  release(item: object, bytes: number): void {
    const refs = this.#refs.get(item);
    if (refs === undefined) return;
    if (refs > 1) this.#refs.set(item, refs - 1);
    else {
      this.#refs.delete(item);
      this.#bytes -= bytes;
    }
  }
}
