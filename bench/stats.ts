import { prng } from '../test/helpers/fuzz-inputs.js';

/** The upper median of `xs` (the element at index ⌊n/2⌋ once sorted). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The p-th percentile (0–100) of `xs`: the element at index ⌊p/100·n⌋ once sorted, the last at most. */
export const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

/**
 * A 90 % interval for pct(a, p) / pct(b, p), by a moving-block bootstrap: each series is resampled
 * as runs of `block` consecutive samples, because this host's stalls come in bursts (several
 * samples in a row), so neighbouring samples are not independent. Seeded: the same samples give
 * the same interval.
 */
export function pctRatioInterval(a: number[], b: number[], p: number, block = 50, resamples = 1_000): [number, number] {
  const random = prng(0x1ea5e);
  const resample = (xs: number[]): number[] => {
    const out: number[] = [];
    const starts = Math.max(1, xs.length - block + 1);
    while (out.length < xs.length) {
      const s = Math.floor(random() * starts);
      for (let i = s; i < s + block && out.length < xs.length && i < xs.length; i++) out.push(xs[i]!);
    }
    return out;
  };
  const ratios = Array.from({ length: resamples }, () => pct(resample(a), p) / pct(resample(b), p)).sort((x, y) => x - y);
  return [ratios[Math.floor(0.05 * resamples)]!, ratios[Math.ceil(0.95 * resamples) - 1]!];
}
