/** How a kind spaces its retries: `initialMs · factor^(n-1)`, capped, with ± `jitter` spread. */
export interface RetryPolicy {
  initialMs: number;
  factor: number;
  maxMs: number;
  /** Fraction of the delay to spread at random either way (0.2 → ±20 %), so retries of a burst don't land together. */
  jitter: number;
}

/** About 1 min, 5.5 min, 30 min: factor √30 puts the third delay at exactly thirty minutes. */
export const DEFAULT_RETRY: RetryPolicy = { initialMs: 60_000, factor: Math.sqrt(30), maxMs: 6 * 3_600_000, jitter: 0.2 };

/** The delay before retrying after failed attempt number `attempt` (1-based). */
export function backoffMs(attempt: number, policy: RetryPolicy = DEFAULT_RETRY, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** Math.max(0, attempt - 1));
  const spread = base * policy.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(Math.min(policy.maxMs, base + spread)));
}
