/**
 * Standard Webhooks' recommended schedule (immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
 * 10 h), continued every 10 h so that retries span about three days (~68 h) before giving up.
 */
export const DEFAULT_WEBHOOK_SCHEDULE = '5s,5m,30m,2h,5h,10h,10h,10h,10h,10h,10h';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `5s,5m,2h` → delays in ms, or undefined when any entry is not a number with a unit. */
export function parseSchedule(text: string): number[] | undefined {
  const parts = text.split(',').map((p) => p.trim()).filter(Boolean);
  if (parts.length === 0 || parts.length > 100) return undefined;
  const delays: number[] = [];
  for (const part of parts) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(part);
    if (!m) return undefined;
    delays.push(Math.round(Number(m[1]) * UNIT_MS[m[2]!]!));
  }
  return delays;
}

/** The delay after failed attempt `attempt` (1-based), or undefined when that was the last one. */
export function retryDelayMs(schedule: readonly number[], attempt: number): number | undefined {
  return attempt >= 1 && attempt <= schedule.length ? schedule[attempt - 1] : undefined;
}
