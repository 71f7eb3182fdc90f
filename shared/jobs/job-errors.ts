/** Thrown by a handler: the job fails now, whatever attempts it has left. */
export class PermanentError extends Error {
  override name = 'PermanentError';
  constructor(message: string, readonly code = 'permanent', options?: ErrorOptions) {
    super(message, options);
  }
}

/** Thrown by a handler: this attempt failed; retry at the given time rather than by the backoff schedule. */
export class RetryError extends Error {
  override name = 'RetryError';
  readonly at: Date | undefined;
  constructor(message: string, when: { at?: Date; afterMs?: number } = {}, readonly code = 'retry') {
    super(message);
    this.at = when.at ?? (when.afterMs !== undefined ? new Date(Date.now() + when.afterMs) : undefined);
  }
}

/** Why a handler's AbortSignal fired. */
export type AbortReason = 'lease_lost' | 'cancelled' | 'timeout' | 'shutdown';

/** The reason object put on `ctx.signal.reason`. */
export class JobAborted extends Error {
  override name = 'JobAborted';
  constructor(readonly reason: AbortReason, message: string) {
    super(message);
  }
}
