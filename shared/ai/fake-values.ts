import type { Draw } from './sample-pattern.js';

/** A small seeded generator (sfc32): the same 16-byte seed always yields the same sequence. */
export class SeededRandom implements Draw {
  private s: Uint32Array;

  constructor(seed: Uint8Array) {
    const view = new DataView(seed.buffer, seed.byteOffset, 16);
    this.s = new Uint32Array([0, 1, 2, 3].map((i) => view.getUint32(i * 4)));
    for (let i = 0; i < 12; i++) this.next();
  }

  /** A number in [0, 1). */
  next(): number {
    const s = this.s;
    const t = (((s[0]! + s[1]!) >>> 0) + s[3]!) >>> 0;
    s[3] = (s[3]! + 1) >>> 0;
    s[0] = s[1]! ^ (s[1]! >>> 9);
    s[1] = (s[2]! + (s[2]! << 3)) >>> 0;
    s[2] = ((s[2]! << 21) | (s[2]! >>> 11)) >>> 0;
    s[2] = (s[2]! + t) >>> 0;
    return t / 4294967296;
  }

  /** A whole number from `lo` to `hi`, both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** One element of a non-empty list. */
  pick<T>(list: readonly T[]): T {
    return list[this.int(0, list.length - 1)]!;
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const WORDS = [
  'amber', 'harbor', 'maple', 'cobalt', 'summit', 'willow', 'granite', 'meadow', 'copper', 'river', 'cedar', 'atlas',
  'nova', 'linen', 'orchid', 'pioneer', 'juniper', 'canyon', 'falcon', 'ember', 'lotus', 'quartz', 'prairie', 'sierra',
];
const SENTENCE_WORDS = ['the', 'a', 'with', 'on', 'shelf', 'label', 'front', 'visible', 'left', 'bright', 'small', 'package', 'clear', 'edge'];
const COLORS = ['red', 'blue', 'green', 'black', 'white', 'silver', 'yellow', 'orange'];
const CURRENCIES = ['USD', 'EUR', 'GBP', 'JPY', 'CAD'];
const COUNTRIES = ['US', 'DE', 'FR', 'JP', 'BR', 'IN', 'GB'];

const cap = (w: string) => w[0]!.toUpperCase() + w.slice(1);
const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** A date between 2020 and 2026 as `YYYY-MM-DD` (day ≤ 28, so every month has it). */
function isoDate(r: SeededRandom): string {
  return `${r.int(2020, 2026)}-${pad(r.int(1, 12))}-${pad(r.int(1, 28))}`;
}

function isoTime(r: SeededRandom): string {
  return `${pad(r.int(0, 23))}:${pad(r.int(0, 59))}:${pad(r.int(0, 59))}`;
}

function uuid(r: SeededRandom): string {
  const hex = Array.from({ length: 32 }, () => r.int(0, 15).toString(16));
  hex[12] = '4';
  hex[16] = (8 + r.int(0, 3)).toString(16);
  const h = hex.join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A value for one of the string formats strict Structured Outputs allow, or undefined for another format. */
export function fakeFormat(format: string, r: SeededRandom): string | undefined {
  switch (format) {
    case 'date': return isoDate(r);
    case 'date-time': return `${isoDate(r)}T${isoTime(r)}Z`;
    case 'time': return `${isoTime(r)}Z`;
    case 'duration': return `PT${r.int(1, 90)}M`;
    case 'email': return `${r.pick(WORDS)}.${r.pick(WORDS)}@example.com`;
    case 'hostname': return `${r.pick(WORDS)}.example.com`;
    case 'ipv4': return `192.0.2.${r.int(1, 254)}`;
    case 'ipv6': return `2001:db8::${r.int(1, 0xffff).toString(16)}`;
    case 'uuid': return uuid(r);
    default: return undefined;
  }
}

// Property names read as hints, first match wins: `unit_price` is money, `shelf_count` a count.
const STRING_HINTS: [RegExp, (r: SeededRandom) => string][] = [
  [/e-?mail/, (r) => fakeFormat('email', r)!],
  [/url|link|website|href|uri/, (r) => `https://example.com/${r.pick(WORDS)}`],
  [/phone|tel|fax/, (r) => `+1 555 01${pad(r.int(0, 99))}`],
  [/date/, isoDate],
  [/time$|_at$/, (r) => fakeFormat('date-time', r)!],
  [/currency/, (r) => r.pick(CURRENCIES)],
  [/country/, (r) => r.pick(COUNTRIES)],
  [/colou?r/, (r) => r.pick(COLORS)],
  [/sku|code|barcode|upc|ean|gtin|serial|(^|_)id$|ref(erence)?$|number$/, (r) => `${r.pick(WORDS).slice(0, 3).toUpperCase()}-${r.int(1000, 9999)}`],
  [/desc|summary|note|caption|comment|reason|text|explanation|theme/, (r) =>
    cap(Array.from({ length: r.int(5, 9) }, () => r.pick(r.chance(0.5) ? WORDS : SENTENCE_WORDS)).join(' ')) + '.'],
  [/brand|city|vendor|merchant|store|make|company/, (r) => cap(r.pick(WORDS))],
  [/name|title|label|product|category|model|album|street|type|kind/, (r) => `${cap(r.pick(WORDS))} ${cap(r.pick(WORDS))}`],
];

/** A plausible string for a property called `hint` (`product_name` → "Cedar Atlas"). */
export function fakeString(hint: string, r: SeededRandom): string {
  const name = hint.toLowerCase();
  const found = STRING_HINTS.find(([re]) => re.test(name));
  return found ? found[1](r) : `${r.pick(WORDS)} ${r.pick(WORDS)}`;
}

/** A range and step (grid) a number for this property name would plausibly take. */
export interface NumberHint {
  lo: number;
  hi: number;
  step: number;
}

const NUMBER_HINTS: [RegExp, NumberHint][] = [
  [/price|amount|total|cost|fee|tax|msrp|rrp|subtotal|discount/, { lo: 0.5, hi: 500, step: 0.01 }],
  [/percent|pct/, { lo: 0, hi: 100, step: 0.1 }],
  [/confidence|score|probability|ratio|share/, { lo: 0, hi: 1, step: 0.01 }],
  [/rating|stars/, { lo: 1, hi: 5, step: 0.5 }],
  [/year/, { lo: 2015, hi: 2026, step: 1 }],
  [/latitude|(^|_)lat$/, { lo: -90, hi: 90, step: 0.0001 }],
  [/longitude|(^|_)(lon|lng)$/, { lo: -180, hi: 180, step: 0.0001 }],
  [/count|qty|quantity|facings|num|units|stock|pieces|shelf|row|rank|position|index|page|(^|_)age$/, { lo: 1, hi: 12, step: 1 }],
  [/width|height|length|depth|weight|size|volume/, { lo: 1, hi: 500, step: 0.1 }],
];

/** The plausible range for a numeric property called `hint`. */
export function numberHint(hint: string, integer: boolean): NumberHint {
  const name = hint.toLowerCase();
  return NUMBER_HINTS.find(([re]) => re.test(name))?.[1] ?? { lo: 0, hi: integer ? 100 : 1000, step: integer ? 1 : 0.01 };
}
