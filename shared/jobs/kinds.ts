import { z } from 'zod';
import { DEFAULT_RETRY, type RetryPolicy } from './backoff.js';

/** What the queue needs to know about a kind, beyond its handler. */
export interface KindSpec<P extends z.ZodType = z.ZodType> {
  /** Validates the payload at enqueue (API edge) and again before the handler runs. */
  payload: P;
  /** Queue used when the producer names none. */
  queue: string;
  /** Attempts when the producer names none. */
  maxAttempts: number;
  /** The handler is aborted (and the attempt fails, retryably) after this long. */
  timeoutMs: number;
  retry: RetryPolicy;
  /** One-line description for the API's kind list. */
  description: string;
}

function kind<P extends z.ZodType>(spec: Partial<KindSpec<P>> & { payload: P; description: string }): KindSpec<P> {
  return { queue: 'default', maxAttempts: 3, timeoutMs: 15 * 60_000, retry: DEFAULT_RETRY, ...spec };
}

/**
 * Every job kind. The strings never change once deployed: jobs already in the table are worked by
 * kind name across releases. The worker's handler map must cover every key (a compile error otherwise).
 */
export const KINDS = {
  'system.noop': kind({
    payload: z.object({}).strict(),
    description: 'Does nothing; for tests, demos and benchmarks.',
    timeoutMs: 60_000,
  }),
  'system.sleep': kind({
    payload: z.object({ ms: z.number().int().min(0).max(3_600_000) }).strict(),
    description: 'Sleeps `ms` milliseconds, honouring cancellation; for tests and demos.',
    timeoutMs: 3_700_000,
  }),
} as const;

/** A registered kind name. */
export type KindName = keyof typeof KINDS;
/** The validated payload of a kind. */
export type PayloadOf<K extends KindName> = z.output<(typeof KINDS)[K]['payload']>;

/** True when `name` is a registered kind. */
export function isKind(name: string): name is KindName {
  return Object.hasOwn(KINDS, name);
}
