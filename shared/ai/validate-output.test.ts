import { describe, expect, test } from 'vitest';
import { SchemaCompileError, compileSchema, validateManifest } from './validate-output.js';
import { anyOfChain } from '../../test/helpers/schema-fixtures.js';

const item = {
  type: 'object',
  additionalProperties: false,
  required: ['sku', 'price', 'currency', 'note'],
  properties: {
    sku: { type: 'string', pattern: '^[A-Z]{3}-\\d{4}$' },
    price: { type: 'number', minimum: 0, multipleOf: 0.01 },
    currency: { type: 'string', enum: ['USD', 'EUR'] },
    note: { type: ['string', 'null'] },
  },
};
const shelf = {
  type: 'object',
  additionalProperties: false,
  required: ['captured_on', 'items', 'by_slot', 'unit price', 'version'],
  properties: {
    captured_on: { type: 'string', format: 'date' },
    items: { type: 'array', items: { $ref: '#/$defs/item' } },
    by_slot: { type: 'object', additionalProperties: false, required: ['2'], properties: { '2': { type: 'integer' } } },
    'unit price': { anyOf: [{ type: 'number' }, { type: 'null' }] },
    version: { const: 1 },
  },
  $defs: { item },
};
const good = {
  captured_on: '2026-03-14',
  items: [
    { sku: 'ABC-1234', price: 19.99, currency: 'USD', note: null },
    { sku: 'XYZ-0001', price: 0.3, currency: 'EUR', note: 'two for one' },
  ],
  by_slot: { '2': 4 },
  'unit price': null,
  version: 1,
};

describe('validateManifest', () => {
  test('accepts a valid manifest, decimal prices included (0.3 is a multiple of 0.01)', () => {
    expect(validateManifest(shelf, good)).toEqual({ ok: true });
    expect(validateManifest(JSON.stringify(shelf), good)).toEqual({ ok: true });
  });

  test('names each problem by JSON path, telling array indexes from keys like "2"', () => {
    const bad = structuredClone(good) as Record<string, any>;
    bad.items.push({ sku: 'abc', price: '3.50', currency: 'JPY', note: null, colour: 'red' });
    delete bad.items[0].sku;
    bad.by_slot['2'] = 'four';
    bad['unit price'] = 'cheap';
    bad.captured_on = '14/03/2026';
    bad.version = 2;
    const verdict = validateManifest(shelf, bad);
    expect(verdict.ok).toBe(false);
    const errors = verdict.ok ? [] : verdict.errors;
    expect(errors).toEqual(
      expect.arrayContaining([
        { path: '$.captured_on', message: 'must match format "date"' },
        { path: '$.items[0].sku', message: 'is required' },
        { path: '$.items[2].sku', message: 'must match pattern "^[A-Z]{3}-\\d{4}$"' },
        { path: '$.items[2].price', message: 'must be number' },
        { path: '$.items[2].currency', message: 'must be one of ["USD","EUR"]' },
        { path: '$.items[2].colour', message: 'is not a property of this object' },
        { path: '$.by_slot["2"]', message: 'must be integer' },
        { path: '$["unit price"]', message: 'must match a schema in anyOf' },
        { path: '$.version', message: 'must be 1' },
      ]),
    );
    expect(new Set(errors.map((e) => `${e.path} ${e.message}`)).size).toBe(errors.length);
  });

  test('reports at most 50 problems', () => {
    const many = { ...good, items: Array.from({ length: 200 }, () => ({})) };
    const verdict = validateManifest(shelf, many);
    expect(verdict.ok === false && verdict.errors.length).toBe(50);
  });

  test('throws SchemaCompileError for a schema that cannot compile, rather than blaming the output', () => {
    expect(() => validateManifest({ type: 'object', propertees: {} }, {})).toThrow(SchemaCompileError);
    expect(() => validateManifest({ type: 'string', format: 'credit-card' }, 'x')).toThrow(/unknown format/);
    expect(() => validateManifest('{"type": "object"', {})).toThrow(SchemaCompileError);
    expect(() => validateManifest({ $ref: '#/$defs/missing' }, {})).toThrow(SchemaCompileError);
  });
});

describe('compileSchema', () => {
  test('reuses the compiled validator for the same schema text', () => {
    const first = compileSchema(shelf);
    expect(compileSchema(structuredClone(shelf))).toBe(first);
    expect(compileSchema(JSON.stringify(shelf))).toBe(first);
  });

  test('keeps the most recently used schemas and compiles evicted ones afresh', () => {
    const schemaN = (n: number) => ({ type: 'object', additionalProperties: false, required: ['n'], properties: { n: { const: n } } });
    const oldest = compileSchema(schemaN(0));
    const kept = compileSchema(shelf);
    for (let n = 1; n <= 200; n++) {
      compileSchema(schemaN(n));
      compileSchema(shelf);
    }
    expect(compileSchema(shelf)).toBe(kept);
    const again = compileSchema(schemaN(0));
    expect(again).not.toBe(oldest);
    expect(again({ n: 0 })).toBe(true);
  });
});

describe('validate-output-bounds: a hostile pattern or schema cannot block the worker', () => {
  const coded = (pattern: string) => ({ type: 'object', additionalProperties: false, required: ['code'], properties: { code: { type: 'string', pattern } } });

  test('patterns are matched in linear time: ^(a|a)*$ against 28 characters that do not match (V8: about 8 s)', () => {
    const start = performance.now();
    expect(validateManifest(coded('^(a|a)*$'), { code: `${'a'.repeat(27)}b` })).toEqual({
      ok: false,
      errors: [{ path: '$.code', message: 'must match pattern "^(a|a)*$"' }],
    });
    expect(performance.now() - start).toBeLessThan(1000);
    expect(validateManifest(coded('^(a|a)*$'), { code: `${'a'.repeat(5000)}b` }).ok).toBe(false);
    expect(validateManifest(coded('^(a|a)*$'), { code: 'a'.repeat(5000) })).toEqual({ ok: true });
    expect(performance.now() - start).toBeLessThan(2000);
  });

  test('two patterns in one schema each keep their own meaning', () => {
    const schema = { ...coded('^a+$'), required: ['code', 'b'], properties: { code: { type: 'string', pattern: '^a+$' }, b: { type: 'string', pattern: '^b+$' } } };
    expect(validateManifest(schema, { code: 'aa', b: 'bb' })).toEqual({ ok: true });
    expect(validateManifest(schema, { code: 'bb', b: 'aa' }).ok).toBe(false);
  });

  test('lookarounds, backreferences and huge repeats make the schema fail to compile', () => {
    for (const pattern of ['(?:a{40})?(a|a)*(?!)', '^(a)\\1$', '^(x{100000}){100000}$']) {
      expect(() => compileSchema(coded(pattern)), pattern).toThrow(SchemaCompileError);
    }
  });

  test('the strings of one manifest share a step budget', () => {
    const schema = { type: 'object', additionalProperties: false, required: ['xs'], properties: { xs: { type: 'array', items: { type: 'string', pattern: '^(a|b|c|d|e|f|g|h)*$' } } } };
    const verdict = validateManifest(schema, { xs: Array.from({ length: 200 }, () => 'abcdefgh'.repeat(1000)) });
    expect(verdict).toEqual({ ok: false, errors: [{ path: '$', message: expect.stringContaining('steps to match') }] });
  });

  test('a schema expanding to 2^26 nodes is refused before ajv sees it', () => {
    const start = performance.now();
    expect(() => compileSchema(anyOfChain(25))).toThrow(/expands to more than 50000 nodes/);
    expect(performance.now() - start).toBeLessThan(1000);
  });
});
