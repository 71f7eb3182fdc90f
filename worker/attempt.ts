import type { Logger } from '#shared/log.js';
import { backoffMs } from '#shared/jobs/backoff.js';
import { JobAborted, PermanentError, RetryError, type AbortReason } from '#shared/jobs/job-errors.js';
import type { KindSpec } from '#shared/jobs/kinds.js';
import type { Handler, JobContext } from './handler.js';
import type { HeldJob, Outcome } from './held-job.js';

/** What the worker knows of a kind: the registry's spec, or defaults for a kind registered only in the worker. */
export type KindOptions = Omit<KindSpec, 'payload' | 'description'> & { payload?: KindSpec['payload'] };

/** What running one attempt needs from its worker. */
export interface AttemptDeps {
  handler: Handler<never>;
  kind: KindOptions;
  /** After an abort, how long the handler may take to notice before its slot is taken back anyway. */
  abortGraceMs: number;
  log: Logger;
  /** Reports progress of `h` (one function for every attempt: no closure per job). */
  progress: (h: HeldJob, pct: number, message?: string) => void;
}

/** Stops an attempt, once: the first reason wins; the handler sees it on `ctx.signal`. */
export function abortAttempt(h: HeldJob, reason: AbortReason, message: string): void {
  if (h.aborted) return;
  h.aborted = new JobAborted(reason, message);
  h.controller?.abort(h.aborted);
  h.onAbort?.();
}

/**
 * Runs one attempt of a held job and says how it ended, synchronously when the handler did;
 * never throws or rejects. The payload is checked
 * again (the kind's schema may have changed since enqueue), and a handler that ignores its abort
 * for `abortGraceMs` is left behind so its slot can be reused.
 */
export function runAttempt(h: HeldJob, deps: AttemptDeps): Outcome | Promise<Outcome> {
  const { job } = h;
  try {
    if (job.cancel_requested) abortAttempt(h, 'cancelled', 'cancellation requested');
    const { payload } = deps.kind;
    const parsed = payload ? payload.safeParse(job.payload) : { success: true as const, data: job.payload };
    if (!parsed.success) throw new PermanentError(`invalid payload: ${parsed.error.message}`, 'invalid_payload');
    if (h.aborted) throw h.aborted;
    const value = deps.handler(parsed.data as never, new AttemptContext(h, deps));
    // A handler that answers synchronously gets its outcome synchronously: no promise per job
    // (no-op jobs at 25k+/s showed ~3 µs of Node time per job for one extra await).
    if (!isThenable(value)) return succeeded(value, h, deps);
    return untilAborted(value, h, deps.abortGraceMs).then(
      (result): Outcome => succeeded(result, h, deps),
      (err: unknown) => classify(err, h, deps.kind),
    );
  } catch (err) {
    return classify(err, h, deps.kind);
  }
}

/**
 * A success, if its result can be stored as JSON; otherwise a permanent failure of this job alone.
 * Results are written in batches, and one that JSON.stringify refuses (a BigInt, a cycle) failed
 * the whole batch at every retry. Objects are tried once here; nulls and plain values need not be.
 */
function succeeded(result: unknown, h: HeldJob, deps: AttemptDeps): Outcome {
  if (result !== null && (typeof result === 'object' || typeof result === 'bigint')) {
    try {
      // Kept for the completer, which writes this text instead of serialising the result again.
      return { type: 'success', result, json: JSON.stringify(result) };
    } catch (err) {
      return classify(new PermanentError(`the handler's result cannot be stored as JSON: ${(err as Error).message}`, 'invalid_result'), h, deps.kind);
    }
  }
  return result === null ? NULL_SUCCESS : result === undefined ? UNDEFINED_SUCCESS : { type: 'success', result };
}

// Most handlers return nothing: their outcome is one shared object instead of one per job.
const NULL_SUCCESS: Outcome = Object.freeze({ type: 'success', result: null });
const UNDEFINED_SUCCESS: Outcome = Object.freeze({ type: 'success', result: undefined });

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

/** Resolves with the handler, or rejects with the abort reason once a handler ignores its abort too long. */
function untilAborted<T>(work: PromiseLike<T>, h: HeldJob, graceMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      timer = setTimeout(() => reject(h.aborted), graceMs);
    };
    if (h.aborted) onAbort();
    else h.onAbort = onAbort;
    work.then(
      (v) => (clearTimeout(timer), (h.onAbort = undefined), resolve(v)),
      (e: unknown) => (clearTimeout(timer), (h.onAbort = undefined), reject(e)),
    );
  });
}

/**
 * A handler's `ctx`. A class rather than an object literal with getters, which made its accessors
 * and closures anew for every job: with them, a no-op profile at ~25k jobs/s spent ~24 % of the
 * worker's busy time collecting garbage (~7 % after this and the other per-job savings). The job's
 * fields are read through the held job rather than copied: the context is made for every attempt,
 * and seven copied fields more than doubled its size. What most handlers never touch (signal, log,
 * progress) is made on first use.
 */
class AttemptContext implements JobContext {
  readonly #h: HeldJob;
  readonly #deps: AttemptDeps;
  #log: Logger | undefined;
  #progress: JobContext['progress'] | undefined;

  constructor(h: HeldJob, deps: AttemptDeps) {
    this.#h = h;
    this.#deps = deps;
  }

  get id(): string {
    return this.#h.job.id;
  }

  get kind(): string {
    return this.#h.job.kind;
  }

  get queue(): string {
    return this.#h.job.queue;
  }

  get tenantId(): string {
    return this.#h.job.tenant_id;
  }

  get attempt(): number {
    return this.#h.job.attempts;
  }

  get maxAttempts(): number {
    return this.#h.job.max_attempts;
  }

  get leaseToken(): string {
    return this.#h.token;
  }

  // Made on first use only: creating an AbortController per job showed in no-op profiles.
  get signal(): AbortSignal {
    const h = this.#h;
    if (!h.controller) {
      h.controller = new AbortController();
      if (h.aborted) h.controller.abort(h.aborted);
    }
    return h.controller.signal;
  }

  /** A function of its own, so `const { progress } = ctx` works too. */
  get progress(): JobContext['progress'] {
    const h = this.#h;
    const report = this.#deps.progress;
    return (this.#progress ??= (pct, message) => report(h, pct, message));
  }

  get log(): Logger {
    const { job } = this.#h;
    return (this.#log ??= this.#deps.log.child({ job_id: job.id, kind: job.kind, tenant_id: job.tenant_id, attempt: job.attempts }));
  }
}

function classify(err: unknown, h: HeldJob, kind: KindOptions): Outcome {
  const retryAt = () => new Date(Date.now() + backoffMs(h.job.attempts, kind.retry));
  if (h.aborted) {
    const reason: AbortReason = h.aborted.reason;
    if (reason === 'lease_lost') return { type: 'drop' };
    if (reason === 'shutdown') return { type: 'handback' };
    if (reason === 'cancelled') return { type: 'cancelled', message: 'cancelled while running' };
    return { type: 'retry', code: 'timeout', message: h.aborted.message, retryAt: retryAt() };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  const stack = e.stack === undefined ? undefined : cut(e.stack, MAX_ERROR_TEXT);
  const message = cut(e.message || e.name, MAX_ERROR_TEXT);
  if (e instanceof PermanentError) return { type: 'permanent', code: cut(String(e.code), MAX_ERROR_CODE), message, stack };
  if (e instanceof RetryError) return { type: 'retry', code: cut(String(e.code), MAX_ERROR_CODE), message, retryAt: e.at ?? retryAt(), stack };
  return { type: 'retry', code: 'handler_error', message, retryAt: retryAt(), stack };
}

/**
 * What a thrown error may put in a job's `last_error` and its error history, which keeps every
 * failure of every attempt and is copied into each dead letter: a message and a stack of up to
 * 2,000 characters each (the history keeps the ten latest stacks, `append_error` in SQL), a code of 100.
 */
export const MAX_ERROR_TEXT = 2_000;
export const MAX_ERROR_CODE = 100;

/** `text` cut to `max` UTF-16 units, the last one an ellipsis when cut. */
function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
