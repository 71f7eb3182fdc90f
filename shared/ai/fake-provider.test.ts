import { describe, expect, test } from 'vitest';
import { checkStrictSchema } from '#shared/patterns/strict-schema.js';
import { FAKE_PROVIDER, fakeManifest, fakeUsage } from './fake-provider.js';
import { validateManifest } from './validate-output.js';
import { objectChain } from '../../test/helpers/schema-fixtures.js';

type Schema = Record<string, unknown>;
/** A strict object schema: every property required, nothing else allowed. */
const obj = (properties: Record<string, Schema>): Schema => ({ type: 'object', additionalProperties: false, required: Object.keys(properties), properties });
const str = (extra: Schema = {}): Schema => ({ type: 'string', ...extra });
const int = (extra: Schema = {}): Schema => ({ type: 'integer', ...extra });
const num = (extra: Schema = {}): Schema => ({ type: 'number', ...extra });
const arr = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });

const SHELF = obj({
  store_name: str(),
  captured_on: str({ format: 'date' }),
  items: arr(
    obj({
      sku: str({ pattern: '^[A-Z]{3}-\\d{4}$' }),
      product_name: str(),
      brand: str(),
      price: num({ minimum: 0, multipleOf: 0.01 }),
      currency: str({ enum: ['USD', 'EUR', 'GBP'] }),
      facings: int({ minimum: 1, maximum: 12 }),
      on_promo: { type: 'boolean' },
      promo_price: { anyOf: [num({ minimum: 0 }), { type: 'null' }] },
      position: obj({ shelf: int({ minimum: 1, maximum: 6 }), slot: int({ minimum: 0 }) }),
    }),
    { minItems: 1, maxItems: 20 },
  ),
  total_facings: int({ minimum: 0 }),
});

const INVOICE: Schema = {
  ...obj({
    invoice_id: str({ format: 'uuid' }),
    issued_at: str({ format: 'date-time' }),
    vendor: { $ref: '#/$defs/party' },
    customer: { anyOf: [{ $ref: '#/$defs/party' }, { type: 'null' }] },
    lines: arr({ $ref: '#/$defs/line' }, { minItems: 2 }),
    status: { type: 'string', enum: ['paid', 'due', 'overdue'] },
    schema_version: { const: 2 },
    notes: { type: ['string', 'null'] },
    tags: arr(str({ enum: ['food', 'office', 'travel'] }), { maxItems: 0 }),
  }),
  $defs: {
    party: obj({ name: str(), email: str({ format: 'email' }), address: obj({ street: str(), city: str(), country: str() }) }),
    line: obj({
      description: str(),
      quantity: int({ exclusiveMinimum: 0 }),
      unit_price: num({ minimum: 0 }),
      tax_rate: num({ minimum: 0, maximum: 1, multipleOf: 0.05 }),
    }),
  },
};

const GALLERY = obj({
  albums: arr(obj({ title: str(), description: str(), images: arr(str(), { minItems: 1 }), cover_index: int({ minimum: 0 }) }), { minItems: 1, maxItems: 5 }),
  confidence: num({ minimum: 0, maximum: 1 }),
});

const SHAPES = obj({
  shapes: arr({ anyOf: [obj({ kind: { const: 'circle' }, radius: num({ exclusiveMinimum: 0 }) }), obj({ kind: { const: 'rect' }, w: num(), h: num() })] }),
  matrix: arr(arr(int(), { minItems: 2, maxItems: 2 }), { minItems: 2, maxItems: 2 }),
  detected_at: str({ format: 'time' }),
  exposure: str({ format: 'duration' }),
  host: str({ format: 'hostname' }),
  ip: str({ format: 'ipv4' }),
  ip6: str({ format: 'ipv6' }),
  odd_numbers: obj({
    five: int({ minimum: 7, maximum: 13, multipleOf: 5 }),
    tiny: num({ exclusiveMinimum: 0, exclusiveMaximum: 0.001 }),
    big: int({ minimum: 1_000_000 }),
    thirds: num({ multipleOf: 0.3, maximum: -10 }),
    halves: int({ multipleOf: 0.5, minimum: 3, maximum: 3 }),
    level: { type: ['integer', 'null'], enum: [1, 2, 3, null] },
  }),
});

const TREE: Schema = { ...obj({ root: { $ref: '#/$defs/node' } }), $defs: { node: obj({ label: str(), children: arr({ $ref: '#/$defs/node' }) }) } };

const SCHEMAS = { SHELF, INVOICE, GALLERY, SHAPES, TREE };
const image = (n: number) => Buffer.from(`fake image bytes #${n}`);

describe('fakeManifest', () => {
  test.each(Object.entries(SCHEMAS))('%s is a strict schema and every fake manifest for it is valid', (_name, schema) => {
    expect(checkStrictSchema(schema)).toEqual([]);
    for (let n = 0; n < 40; n++) expect(validateManifest(schema, fakeManifest(schema, image(n)))).toEqual({ ok: true });
  });

  test.each(Object.entries(SCHEMAS))('%s: the same schema and image give the same manifest, whatever the key order', (_name, schema) => {
    const reverseKeys = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(reverseKeys) : typeof v === 'object' && v ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reverseKeys(x)])) : v;
    const reordered = reverseKeys(schema);
    expect(JSON.stringify(reordered)).not.toBe(JSON.stringify(schema));
    expect(fakeManifest(schema, image(1))).toEqual(fakeManifest(structuredClone(schema), image(1)));
    expect(fakeManifest(reordered, image(1))).toEqual(fakeManifest(schema, image(1)));
  });

  test.each(Object.entries(SCHEMAS))('%s: different images give different manifests', (_name, schema) => {
    const outputs = new Set(Array.from({ length: 10 }, (_, n) => JSON.stringify(fakeManifest(schema, image(n)))));
    expect(outputs.size).toBe(10);
  });

  test('values look like what their property names say', () => {
    const shelf = fakeManifest(SHELF, image(3)) as { captured_on: string; store_name: string; items: Record<string, unknown>[] };
    expect(shelf.captured_on).toMatch(/^20(2[0-6])-\d\d-\d\d$/);
    for (const item of shelf.items) {
      expect(item.sku).toMatch(/^[A-Z]{3}-\d{4}$/);
      expect(item.product_name).toMatch(/^[A-Z][a-z]+ [A-Z][a-z]+$/);
      expect(String(item.price)).toMatch(/^\d+(\.\d{1,2})?$/);
      expect(item.price).toBeGreaterThanOrEqual(0.5);
      expect(item.facings).toBeLessThanOrEqual(12);
    }
    const invoice = fakeManifest(INVOICE, image(3)) as { lines: unknown[]; schema_version: number; tags: unknown[] };
    expect(invoice.lines.length).toBeGreaterThanOrEqual(2);
    expect(invoice.schema_version).toBe(2);
    expect(invoice.tags).toEqual([]);
  });

  test('recursive schemas bottom out', () => {
    const depth = (node: { children: unknown[] }): number => 1 + Math.max(0, ...node.children.map((c) => depth(c as { children: unknown[] })));
    for (let n = 0; n < 10; n++) expect(depth((fakeManifest(TREE, image(n)) as { root: { children: unknown[] } }).root)).toBeLessThanOrEqual(7);
  });

  test('maxArrayItems bounds arrays that allow more', () => {
    const many = fakeManifest(GALLERY, image(5), { maxArrayItems: 1 }) as { albums: { images: unknown[] }[] };
    expect(many.albums).toHaveLength(1);
    expect(many.albums[0]!.images).toHaveLength(1);
  });
});

describe('fakeUsage', () => {
  test('estimates tokens from sizes and says so', () => {
    const output = fakeManifest(SHELF, image(1));
    const small = fakeUsage(SHELF, Buffer.alloc(10_000), output);
    const large = fakeUsage(SHELF, Buffer.alloc(1_000_000), output);
    expect(small).toMatchObject({ provider: FAKE_PROVIDER, estimated: true });
    expect(FAKE_PROVIDER).toBe('fake');
    expect(small.total_tokens).toBe(small.prompt_tokens + small.completion_tokens);
    expect(small.completion_tokens).toBe(Math.ceil(JSON.stringify(output).length / 4));
    expect(large.prompt_tokens).toBeGreaterThan(small.prompt_tokens);
  });
});

test('a schema that recurses with no way out fails for good', () => {
  const endless: Schema = { ...obj({ root: { $ref: '#/$defs/node' } }), $defs: { node: obj({ child: { $ref: '#/$defs/node' } }) } };
  expect(() => fakeManifest(endless, image(0))).toThrow(expect.objectContaining({ name: 'PermanentError', code: 'schema_unsatisfiable' }));
});

describe('fake-provider-bounds: schemas that ask for too much fail for good, fast, instead of filling the heap', () => {
  const fails = (schema: Schema, message: RegExp) => {
    const start = performance.now();
    expect(() => fakeManifest(schema, image(0))).toThrow(expect.objectContaining({ name: 'PermanentError', code: 'schema_too_large', message: expect.stringMatching(message) }));
    expect(performance.now() - start).toBeLessThan(2000);
  };

  test('a pattern whose repeats multiply to 10^10 characters', () => {
    // Not sampled past the pattern check's bounds: validation refuses the schema (SchemaCompileError) first...
    const start = performance.now();
    expect(fakeManifest(obj({ code: str({ pattern: '^(x{100000}){100000}$' }) }), image(0))).toEqual({ code: expect.any(String) });
    expect(performance.now() - start).toBeLessThan(1000);
  });

  test('a pattern the check takes whose samples may still run long (nested +, each drawing 1 to 3 copies)', () => {
    // ...while `^((((x{600})+)+)+)+$` fits the check (under 10,000 states) but can draw 48,600 characters.
    const schema = obj({ code: str({ pattern: '^((((x{600})+)+)+)+$' }) });
    const start = performance.now();
    const outcomes = Array.from({ length: 12 }, (_, n) => {
      try {
        return (fakeManifest(schema, image(n)) as { code: string }).code.length <= 10_000;
      } catch (err) {
        expect(err).toMatchObject({ name: 'PermanentError', code: 'schema_too_large', message: expect.stringMatching(/longer than 10000 characters/) });
        return 'refused';
      }
    });
    expect(outcomes).toContain(true);
    expect(outcomes).toContain('refused');
    expect(performance.now() - start).toBeLessThan(2000);
  });

  test('a minItems of a billion', () => {
    fails(obj({ rows: arr(str(), { minItems: 1_000_000_000 }) }), /minItems 1000000000/);
  });

  test('objects holding two copies of the next, 30 deep (a billion values)', () => {
    fails(objectChain(30), /more than 50000 values/);
  });

  test('candidates are checked against a catastrophic-backtracking pattern in linear time', () => {
    // The first candidate is a sentence ending in "." (the property name's hint); V8 would try
    // about 2^(its length) ways to match it before saying no.
    const schema = obj({ description: str({ pattern: '^(?:[A-Za-z ]|[a-z ])*$' }) });
    const start = performance.now();
    expect(fakeManifest(schema, image(0))).toEqual({ description: expect.stringMatching(/^[A-Za-z ]*$/) });
    expect(performance.now() - start).toBeLessThan(1000);
  });

  test('arrays of 10,000 still fit', () => {
    const out = fakeManifest(obj({ rows: arr(int(), { minItems: 10_000 }) }), image(0)) as { rows: number[] };
    expect(out.rows).toHaveLength(10_000);
  });
});
