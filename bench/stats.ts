/** The upper median of `xs` (the element at index ⌊n/2⌋ once sorted). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The p-th percentile (0–100) of `xs`: the element at index ⌊p/100·n⌋ once sorted, the last at most. */
export const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
