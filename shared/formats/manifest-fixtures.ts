// Test fixtures for the format tests: hand-picked manifests that have broken converters before
// (awkward keys, look-alike strings, unicode, nulls, nested and empty arrays) with their schemas.
import { isJsonObject, type JsonObject, type JsonValue, setOwnKey } from './json-value.js';

/** A strict object schema (every property required, no others), as patterns store them. */
export function objectSchema(properties: Record<string, unknown>): Record<string, unknown> {
  return { type: 'object', properties, required: Object.keys(properties), additionalProperties: false };
}

/** A schema that `value` conforms to, with the key order of `value` (for fixtures without one). */
export function inferSchema(value: JsonValue): Record<string, unknown> {
  if (value === null) return { type: 'null' };
  if (Array.isArray(value)) {
    const members = value.map((v) => JSON.stringify(inferSchema(v)));
    const same = members.length > 0 && members.every((m) => m === members[0]);
    return { type: 'array', items: same ? inferSchema(value[0]!) : {} };
  }
  if (isJsonObject(value)) {
    const properties: JsonObject = {};
    for (const [key, child] of Object.entries(value)) setOwnKey(properties, key, inferSchema(child) as JsonObject);
    return objectSchema(properties);
  }
  return { type: typeof value };
}

/** A JSON object with these entries, own keys only (so "__proto__" is a key like any other). */
export function jsonObject(entries: [string, JsonValue][]): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of entries) setOwnKey(out, key, value);
  return out;
}

/** Every key and scalar in a value, as the text format shows them (null as `null`). */
export function scalars(value: JsonValue): string[] {
  if (Array.isArray(value)) return value.flatMap(scalars);
  if (isJsonObject(value)) return Object.entries(value).flatMap(([k, v]) => [k, ...scalars(v)]);
  return [value === null ? 'null' : typeof value === 'string' ? value : JSON.stringify(value)];
}

/** The realistic case: one shelf photo audited into a store, a date and the products seen. */
export const SHELF_AUDIT_SCHEMA = objectSchema({
  store: { type: 'string', description: 'store name or number on the sign' },
  date: { type: 'string', format: 'date' },
  auditor: objectSchema({ name: { type: ['string', 'null'] }, badge: { type: ['integer', 'null'] } }),
  items: {
    type: 'array',
    items: objectSchema({
      sku: { type: 'string' },
      name: { type: 'string' },
      facings: { type: 'integer', minimum: 0 },
      price: { type: ['number', 'null'] },
      on_promo: { type: 'boolean' },
    }),
  },
  notes: { type: ['string', 'null'] },
});

/** A shelf audit of three products, one without a readable price. */
export const SHELF_AUDIT: JsonValue = {
  store: 'Migros Zürich HB #0412',
  date: '2026-11-02',
  auditor: { name: 'Aïcha Ben-Salah', badge: 7301 },
  items: [
    { sku: '7610200012345', name: 'Rivella Rot 1.5 l', facings: 6, price: 2.95, on_promo: false },
    { sku: '7613035974357', name: 'Kägi fret, 6 × 24 g', facings: 4, price: null, on_promo: true },
    { sku: '0049000050103', name: 'Coca-Cola "Zero" 0,5 l', facings: 0, price: 1.8, on_promo: false },
  ],
  notes: 'Aisle 4; shelf 2 partly\nhidden by a pallet',
};

/** Strings that a format may misread as something else. */
export const AWKWARD_STRINGS: string[] = [
  '', ' ', '  padded  ', 'true', 'false', 'True', 'null', 'Null', '~', 'yes', 'No', 'on', 'OFF', 'y', 'n',
  '0', '1', '-1', '007', '0x1F', '0o17', '1e3', '1_000', '.inf', '-.Inf', '.nan', 'NaN', '12:30:00', '2026-11-02',
  '!!str', '!tag x', '&anchor', '*alias', '- item', '? key', ': colon', 'a: b', '#comment', 'x #y', '%YAML 1.2',
  '@at', '`tick', '|', '> fold', '{a: 1}', '[1, 2]', "'single'", '"double"', '---', '...', '<<', '=',
  '=1+2', '+1', '-1+2', '@SUM(A1:A9)', '\t=tab', '\r=cr', "'=1+2", "''=x", '\uFF1D1', "'", "'a", 'a,b', 'a;b', 'a"b',
  'line1\nline2', 'crlf\r\nline', 'cr\ronly', '\n', '\r\n', 'trailing\n', '\nleading', 'tab\tinside',
  ']]>', '<tag attr="1">&amp;</tag>', '&#65;', '&lt;', '&unknown;', '\u0000nul', '\u0007bell', '\u001b[31mred', '\u007f',
  '\u0080c1', '\u0085nel', 'ls\u2028ps\u2029', '\uFFFE', '\uFFFF', '\uFEFFbom', '😀👍🏽👨‍👩‍👧', 'שלום עולם', 'مرحبا بالعالم', 'e\u0301', 'A\u030A', '日本語', '\u200Bzero-width',
  '_x0020_', '_x', 'item', 'manifest',
];

/** Keys that an XML element name or a dotted CSV header cannot hold as they are. */
export const AWKWARD_KEYS: string[] = [
  'a b', '1st', 'xmlThing', 'XML', 'xmlns', 'a.b', 'a..b', 'a\\b', 'ä', '<x>', '', 'a_x0020_b', '_x0031_st', '_x', '_',
  '__proto__', 'constructor', 'toString', 'item', 'manifest', 'value', 'x:y', '-dash', '.dot', '·mid', '😀', '\u0301',
  'שלום', '日本', 'with\nnewline', '=cmd', 'null', 'true', '42', '0', 'type', 'array',
];

/** Numbers that are easy to print wrong. */
export const AWKWARD_NUMBERS: number[] = [
  0, 1, -1, 42, -7.25, 0.1, 1.5, 1e21, -1e21, 1e-7, 2 ** 53 - 1, -(2 ** 53) + 1, 12345678901234567890,
  Number.MAX_VALUE, Number.MIN_VALUE, 3.141592653589793,
];

/** Named manifests every round-trip test runs; each with the schema its CSV is laid out by. */
export const FIXTURES: { name: string; manifest: JsonValue; schema: Record<string, unknown> }[] = [
  { name: 'shelf audit', manifest: SHELF_AUDIT, schema: SHELF_AUDIT_SCHEMA },
  ...([
    { name: 'awkward strings', manifest: jsonObject(AWKWARD_STRINGS.map((s, i) => [`s${i}`, s])) },
    { name: 'awkward strings in a list', manifest: { list: AWKWARD_STRINGS } },
    { name: 'awkward keys', manifest: jsonObject(AWKWARD_KEYS.map((k, i) => [k, i % 2 ? `v${i}` : { [k]: k }])) },
    { name: 'awkward numbers', manifest: jsonObject(AWKWARD_NUMBERS.map((n, i) => [`n${i}`, n])) },
    { name: 'booleans and nulls', manifest: { t: true, f: false, n: null, list: [true, null, false, null] } },
    {
      name: 'empties',
      manifest: { s: '', a: [], o: {}, an: [null], as: [''], aa: [[]], ao: [{}], oo: { o: {} }, deep: { a: [[], [{}]] } },
    },
    {
      name: 'nested arrays',
      manifest: { m: [[1, 2], [], [[3]], [{ a: [[]] }]], mixed: [1, 'a', null, true, {}, [], { k: [null] }] },
    },
    { name: 'unicode', manifest: { 'emoji😀': '😀👍🏽', שם: 'שלום', ä: 'e\u0301 A\u030A', 日本: ['語', '🇨🇭'] } },
    { name: 'top-level array', manifest: [1, { a: 2 }, [3, []], null, ''] },
    { name: 'top-level string', manifest: 'just a string' },
    { name: 'top-level empty string', manifest: '' },
    { name: 'top-level null', manifest: null },
    { name: 'top-level number', manifest: -12.5 },
    { name: 'empty object', manifest: {} },
  ] as { name: string; manifest: JsonValue }[]).map((f) => ({ ...f, schema: inferSchema(f.manifest) })),
];
