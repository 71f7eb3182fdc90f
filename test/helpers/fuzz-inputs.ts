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

/** Strings that have broken parsers, queries and file handling elsewhere. */
export const NASTY_STRINGS = [
  '',
  ' ',
  "' or 1=1 --",
  "'; drop table leasehold.jobs; --",
  '"); select pg_sleep(10); --',
  '../../../../etc/passwd',
  '..%2f..%2fetc%2fpasswd',
  '%00',
  '\u0000',
  'nul\u0000inside',
  '\ud800',
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
