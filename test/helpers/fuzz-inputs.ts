/** A small seeded PRNG (mulberry32), so a failing fuzz case can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Text PostgreSQL refuses wherever it is stored: U+0000 (text: SQLSTATE 22021, jsonb: 22P05) and
 * unpaired UTF-16 surrogates (jsonb: 22P02), alone and inside other text, as JSON.parse makes them
 * from `\u` escapes.
 */
export const UNSTORABLE_STRINGS = ['\u0000', 'nul\u0000inside', '\ud800', '\udc00', 'high\udbffthen text', 'emoji half \ud83d'];

/**
 * RFC 3339 times zod accepts that PostgreSQL cannot take (offsets past ±15:59, year 0000, years past
 * 9999 once in UTC), and the edges it can.
 */
export const EXTREME_TIMES = [
  '2024-01-01T00:00:00+20:00',
  '2024-01-01T00:00:00-23:59',
  '2024-01-01T00:00:00+16:00',
  '0000-01-01T00:00:00Z',
  '0001-01-01T00:30:00+01:00',
  '9999-12-31T23:59:59-15:00',
  '9999-12-31T23:59:59.999Z',
  '2024-01-01T00:00:00+15:59',
  '2024-02-29T23:59:59.123456789-15:59',
];

/** Strings that have broken parsers, queries and file handling elsewhere. */
export const NASTY_STRINGS = [
  ...UNSTORABLE_STRINGS,
  ...EXTREME_TIMES,
  '',
  ' ',
  "' or 1=1 --",
  "'; drop table leasehold.jobs; --",
  '"); select pg_sleep(10); --',
  '../../../../etc/passwd',
  '..%2f..%2fetc%2fpasswd',
  '%00',
  '𝕃𝕖𝕒𝕤𝕖𝕙𝕠𝕝𝕕 🧾',
  '<script>alert(1)</script>',
  '${jndi:ldap://x}',
  '{{7*7}}',
  'file:///etc/passwd',
  'http://169.254.169.254/latest/meta-data/',
  'http://[::ffff:127.0.0.1]/',
  'gopher://localhost:25/',
  'javascript:alert(1)',
  '-1',
  '1e309',
  'NaN',
  'null',
  'true',
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  'x'.repeat(10_000),
];

/** Values of every JSON type, including awkward numbers. */
export const ODD_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  2 ** 53 + 1,
  -(2 ** 31) - 1,
  2 ** 31,
  [],
  {},
  [null],
  { a: { b: { c: {} } } },
  ...NASTY_STRINGS,
];

/** Picks one element. */
export function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

/** `depth` levels of nested arrays, as JSON text (built as text: JSON.stringify would recurse). */
export function deepJson(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

/** A JSON-ish body: a valid object with every field replaced by odd values, extra fields, or broken text. */
export function mutateBody(rand: () => number, fields: string[]): { text?: string; bytes?: Uint8Array } {
  const r = rand();
  if (r < 0.08) return { text: deepJson(1_000 + Math.floor(rand() * 50_000)) };
  if (r < 0.14) return { text: pick(rand, ['{', '{"a":', '[1,2', 'not json', '{"a":1}}', "{'a':1}", '{"a":NaN}', '\u0000']) };
  if (r < 0.18) return { bytes: Uint8Array.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]) };
  if (r < 0.22) return { text: JSON.stringify({ big: 'y'.repeat(1_200_000) }) };
  if (r < 0.3) return { text: JSON.stringify(pick(rand, ODD_VALUES)) };
  const body: Record<string, unknown> = {};
  for (const f of fields) if (rand() < 0.7) body[f] = pick(rand, ODD_VALUES);
  if (rand() < 0.3) body[pick(rand, NASTY_STRINGS).slice(0, 50) || 'extra'] = pick(rand, ODD_VALUES);
  if (rand() < 0.2) body['__proto__'] = { polluted: true };
  return { text: JSON.stringify(body) };
}

/**
 * A valid body with one place made hostile, so the request passes the shape checks and reaches the
 * database: a string gets a NUL or a lone surrogate spliced in, any value becomes text PostgreSQL
 * refuses, an extreme time or an odd value, or an object gets a hostile key.
 */
export function mutateValid(rand: () => number, valid: unknown): string {
  const body = structuredClone(valid) as unknown;
  const places: { holder: Record<string | number, unknown>; key: string | number }[] = [];
  const objects: Record<string, unknown>[] = [];
  const visit = (v: unknown) => {
    if (v === null || typeof v !== 'object') return;
    if (!Array.isArray(v)) objects.push(v as Record<string, unknown>);
    for (const [k, child] of Object.entries(v)) {
      places.push({ holder: v as Record<string | number, unknown>, key: Array.isArray(v) ? Number(k) : k });
      visit(child);
    }
  };
  visit(body);
  const hostile = () => pick(rand, rand() < 0.7 ? [...UNSTORABLE_STRINGS, ...EXTREME_TIMES] : ODD_VALUES);
  // Strings are what reach text and jsonb columns: most mutations go to one of them.
  const strings = places.filter((p) => typeof p.holder[p.key] === 'string');
  if ((rand() < 0.15 || places.length === 0) && objects.length) {
    pick(rand, objects)[pick(rand, [...UNSTORABLE_STRINGS, 'extra'])] = hostile();
  } else if (places.length) {
    const { holder, key } = pick(rand, strings.length && rand() < 0.7 ? strings : places);
    const old = holder[key];
    if (typeof old === 'string' && rand() < 0.5) {
      const at = Math.floor(rand() * (old.length + 1));
      holder[key] = old.slice(0, at) + pick(rand, ['\u0000', '\ud800', '\udfff']) + old.slice(at);
    } else holder[key] = hostile();
  }
  return JSON.stringify(body);
}

/**
 * Every variant of a valid body with one string replaced by text PostgreSQL refuses or an extreme
 * time, or one object given a key PostgreSQL refuses: a sweep that misses no field by chance.
 */
export function hostileVariants(valid: unknown): string[] {
  const variants: string[] = [];
  const walk = (v: unknown, path: (string | number)[]) => {
    if (typeof v === 'string') {
      for (const text of [...UNSTORABLE_STRINGS, ...EXTREME_TIMES]) variants.push(JSON.stringify(replaceAt(valid, path, text)));
    } else if (v !== null && typeof v === 'object') {
      if (!Array.isArray(v)) for (const key of ['\u0000', '\udc00']) variants.push(JSON.stringify(replaceAt(valid, [...path, key], 'x')));
      for (const [k, child] of Object.entries(v)) walk(child, [...path, Array.isArray(v) ? Number(k) : k]);
    }
  };
  walk(valid, []);
  return variants;
}

/** A copy of `value` with `next` at `path` (set, or added when the last key is new). */
function replaceAt(value: unknown, path: (string | number)[], next: unknown): unknown {
  if (path.length === 0) return next;
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let holder = copy;
  for (const key of path.slice(0, -1)) holder = holder[key] as Record<string | number, unknown>;
  holder[path.at(-1)!] = next;
  return copy;
}
