import { numberHint, type SeededRandom } from './fake-values.js';

interface Bound {
  value: number;
  exclusive: boolean;
}

interface Range {
  lo: Bound;
  hi: Bound;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The tighter of an inclusive and an exclusive bound; `pick` chooses which value is tighter. */
function tighter(inclusive: unknown, exclusive: unknown, pick: (a: number, b: number) => number): Bound | undefined {
  const inc = num(inclusive);
  const exc = num(exclusive);
  if (exc !== undefined && (inc === undefined || pick(exc, inc) === exc)) return { value: exc, exclusive: true };
  return inc === undefined ? undefined : { value: inc, exclusive: false };
}

/** Digits after the point in a grid step (0.01 → 2), so k × step can be rounded back onto the grid. */
function decimals(step: number): number {
  const [mantissa = '', exponent = '0'] = step.toExponential().split('e');
  return Math.min(12, Math.max(0, (mantissa.split('.')[1] ?? '').length - Number(exponent)));
}

/** The whole multiples of `step` inside the range, as [first k, last k], or undefined when there are none. */
function multiples(range: Range, step: number): [number, number] | undefined {
  const eps = 1e-9;
  const { lo, hi } = range;
  const kLo = lo.exclusive ? Math.floor(lo.value / step + eps) + 1 : Math.ceil(lo.value / step - eps);
  const kHi = hi.exclusive ? Math.ceil(hi.value / step - eps) - 1 : Math.floor(hi.value / step + eps);
  return kLo <= kHi ? [kLo, kHi] : undefined;
}

/** The smallest whole multiple of `step`: integers that are multiples of 0.5 are multiples of 1; of 0.3, of 3. */
function integerStep(step: number): number {
  for (let m = 1; m <= 1000; m++) {
    const candidate = step * m;
    if (Math.abs(candidate - Math.round(candidate)) < 1e-9) return Math.round(candidate);
  }
  return 1;
}

/**
 * A number valid under a numeric schema (minimum, maximum, their exclusive forms, multipleOf,
 * integer), drawn from the range its property name suggests when the schema leaves room for it.
 */
export function fakeNumber(s: Record<string, unknown>, hint: string, integer: boolean, r: SeededRandom): number {
  const h = numberHint(hint, integer);
  const lower = tighter(s.minimum, s.exclusiveMinimum, Math.max);
  const upper = tighter(s.maximum, s.exclusiveMaximum, Math.min);
  const multipleOf = num(s.multipleOf);
  let step = multipleOf ?? h.step;
  if (integer) step = integerStep(step);
  const span = h.hi - h.lo;
  const inclusive = (value: number): Bound => ({ value, exclusive: false });
  const hinted: Range = {
    lo: lower && lower.value >= h.lo ? lower : inclusive(h.lo),
    hi: upper && upper.value <= h.hi ? upper : inclusive(h.hi),
  };
  const schemaOnly: Range = {
    lo: lower ?? inclusive(upper ? upper.value - span : h.lo),
    hi: upper ?? inclusive(lower ? lower.value + span : h.hi),
  };
  for (const range of [hinted, schemaOnly]) {
    const ks = multiples(range, step);
    if (ks) return Number((r.int(ks[0], ks[1]) * step).toFixed(decimals(step)));
  }
  // No grid point fits (a range narrower than the hint's step): any real number inside will do.
  if (!integer && multipleOf === undefined) return (schemaOnly.lo.value + schemaOnly.hi.value) / 2;
  return lower?.value ?? upper?.value ?? 0;
}
