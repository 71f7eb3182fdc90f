import { describe, expect, test } from 'vitest';
import { anyOfChain } from '../../test/helpers/schema-fixtures.js';
import { STRICT_LIMITS, checkStrictSchema, normalizeSchema } from './strict-schema.js';

const obj = (properties: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  type: 'object',
  properties,
  required: Object.keys(properties),
  additionalProperties: false,
  ...extra,
});
const paths = (schema: unknown) => checkStrictSchema(schema).map((p) => p.path);

// OpenAI's own strict example (Structured Outputs guide, "query" function), nested anyOf included.
const INVOICE = obj({
  vendor: { type: 'string', description: 'who issued it' },
  unit: { type: ['string', 'null'], enum: ['EUR', 'USD', null] },
  issued: { type: 'string', format: 'date' },
  total: { type: 'number', minimum: 0, multipleOf: 0.01 },
  lines: {
    type: 'array',
    minItems: 1,
    maxItems: 500,
    items: obj({ sku: { type: 'string', pattern: '^[A-Z0-9-]+$' }, qty: { type: 'integer', exclusiveMinimum: 0 } }),
  },
  value: { anyOf: [{ type: 'string' }, { type: 'number' }, obj({ column_name: { type: 'string' } })] },
  kind: { const: 'invoice' },
});

describe('checkStrictSchema accepts', () => {
  test('a schema using every supported keyword', () => {
    expect(checkStrictSchema(INVOICE)).toEqual([]);
  });

  test('local $ref into $defs and definitions, and recursion through #', () => {
    const schema = obj(
      { a: { $ref: '#/$defs/node' }, b: { $ref: '#/definitions/leaf' }, self: { anyOf: [{ $ref: '#' }, { type: 'null' }] } },
      {
        $defs: { node: obj({ children: { type: 'array', items: { $ref: '#/$defs/node' } } }) },
        definitions: { leaf: { type: 'string' } },
      },
    );
    expect(checkStrictSchema(schema)).toEqual([]);
  });

  test('exactly the limits: 10 object levels, 1,000 enum values', () => {
    let nested: Record<string, unknown> = obj({ leaf: { type: 'string' } });
    for (let i = 1; i < STRICT_LIMITS.objectDepth; i++) nested = obj({ child: nested });
    expect(checkStrictSchema(nested)).toEqual([]);
    const values = Array.from({ length: 1000 }, (_, i) => i);
    expect(checkStrictSchema(obj({ n: { type: 'integer', enum: values } }))).toEqual([]);
  });
});

describe('checkStrictSchema rejects', () => {
  test('a root that is not an object schema, or is an anyOf', () => {
    expect(paths({ type: 'array', items: { type: 'string' } })).toContain('$');
    expect(paths([])).toEqual(['$']);
    expect(paths({ anyOf: [obj({})] })).toEqual(expect.arrayContaining(['$', '$.anyOf']));
    expect(paths(obj({}, { type: ['object', 'null'] }))).toEqual(['$']);
  });

  test('an object without additionalProperties: false, at its own path', () => {
    const schema = obj({ items: { type: 'array', items: { type: 'object', properties: { sku: { type: 'string' } }, required: ['sku'] } } });
    expect(checkStrictSchema(schema)).toEqual([{ path: '$.properties.items.items', message: 'objects must set additionalProperties: false' }]);
    const open = obj({ x: obj({}, { additionalProperties: true }) });
    expect(paths(open)).toEqual(['$.properties.x.additionalProperties']);
    expect(paths(obj({}, { additionalProperties: { type: 'string' } }))).toEqual(['$.additionalProperties']);
  });

  test('a property missing from required, named by its full path', () => {
    const schema = obj({
      items: { type: 'array', items: { type: 'object', properties: { sku: { type: 'string' }, qty: { type: 'integer' } }, required: ['qty'], additionalProperties: false } },
    });
    const [p, ...rest] = checkStrictSchema(schema);
    expect(rest).toEqual([]);
    expect(p!.path).toBe('$.properties.items.items.properties.sku');
    expect(p!.message).toMatch(/required.*union with null/);
  });

  test('required names that are not properties, and a malformed required', () => {
    expect(paths(obj({ a: { type: 'string' } }, { required: ['a', 'ghost'] }))).toEqual(['$.required[1]']);
    expect(paths(obj({}, { required: 'a' }))).toEqual(['$.required']);
  });

  test.each([
    ['allOf', { allOf: [{ type: 'string' }] }],
    ['not', { type: 'string', not: { const: 'x' } }],
    ['if', { type: 'string', if: {}, then: {}, else: {} }],
    ['oneOf', { oneOf: [{ type: 'string' }] }],
    ['minLength', { type: 'string', minLength: 1 }],
    ['default', { type: 'string', default: 'x' }],
    ['uniqueItems', { type: 'array', items: { type: 'string' }, uniqueItems: true }],
  ])('the unsupported keyword %s', (keyword, schema) => {
    expect(paths(obj({ x: schema }))).toContain(`$.properties.x.${keyword}`);
  });

  test('patternProperties and other object keywords, even on the root', () => {
    expect(paths(obj({}, { patternProperties: { '^a': { type: 'string' } }, minProperties: 1 }))).toEqual(['$.patternProperties', '$.minProperties']);
  });

  test('keywords that do not fit the type, unknown types and formats, bad patterns and numbers', () => {
    const schema = obj({
      a: { type: 'integer', pattern: '^1' },
      b: { type: 'text' },
      c: { type: 'string', format: 'url' },
      d: { type: 'string', pattern: '(' },
      e: { type: 'number', minimum: '0', multipleOf: 0 },
      f: { type: 'array', items: [{ type: 'string' }], minItems: -1 },
      g: { description: 'no type at all' },
      h: true,
    });
    expect(paths(schema)).toEqual([
      '$.properties.a.pattern',
      '$.properties.b.type',
      '$.properties.c.format',
      '$.properties.d.pattern',
      '$.properties.e.minimum',
      '$.properties.e.multipleOf',
      '$.properties.f.items',
      '$.properties.f.minItems',
      '$.properties.g',
      '$.properties.h',
    ]);
  });

  test('references that are remote or do not resolve', () => {
    const schema = obj({ a: { $ref: 'https://example.com/s.json' }, b: { $ref: '#/$defs/missing' }, c: { $ref: '#anchor' } });
    expect(paths(schema)).toEqual(['$.properties.a.$ref', '$.properties.b.$ref', '$.properties.c.$ref']);
  });

  test('problems inside anyOf branches and $defs, with odd property names quoted', () => {
    const schema = obj({ 'unit price': { anyOf: [{ type: 'number' }, { type: 'object', properties: {} }] } }, { $defs: { d: { allOf: [] } } });
    expect(paths(schema)).toEqual(['$.properties["unit price"].anyOf[1]', '$.$defs.d.allOf', '$.$defs.d']);
  });

  test('more than 10 levels of object nesting, reported once at the 11th object', () => {
    let nested: Record<string, unknown> = obj({ leaf: { type: 'string' } });
    for (let i = 1; i <= STRICT_LIMITS.objectDepth; i++) nested = obj({ child: nested });
    const [p, ...rest] = checkStrictSchema(nested);
    expect(rest).toEqual([]);
    expect(p!.path).toBe(`$${'.properties.child'.repeat(10)}`);
  });

  test('more than 5,000 properties, 1,000 enum values or 120,000 characters in total', () => {
    const many = (n: number, make: (i: number) => [string, unknown]) => Object.fromEntries(Array.from({ length: n }, (_, i) => make(i)));
    const props = checkStrictSchema(obj(many(5001, (i) => [`p${i}`, { type: 'string' }])));
    expect(props).toEqual([{ path: '$', message: expect.stringContaining('5000 object properties') }]);
    const enums = checkStrictSchema(obj({ a: { type: 'integer', enum: [...Array(600).keys()] }, b: { type: 'integer', enum: [...Array(401).keys()] } }));
    expect(enums).toEqual([{ path: '$', message: expect.stringContaining('1000 enum values') }]);
    const long = checkStrictSchema(obj({ ['n'.repeat(60_000)]: { const: 'c'.repeat(60_001) } }));
    expect(long).toEqual([{ path: '$', message: expect.stringContaining('120000 characters') }]);
  });

  test('one string enum of more than 250 values holding more than 15,000 characters', () => {
    const values = Array.from({ length: 251 }, (_, i) => `${i}`.padEnd(60, 'x'));
    expect(paths(obj({ e: { type: 'string', enum: values } }))).toEqual(['$.properties.e.enum']);
  });

  test('NUL characters anywhere, which PostgreSQL cannot store, and object consts', () => {
    const schema = obj({ 'a\u0000': { type: 'string' }, b: { type: 'string', description: 'x\u0000y' }, c: { const: { k: 1 } } });
    expect(paths(schema)).toEqual(['$.properties.c.const', '$.properties.b.description', '$.properties["a\\u0000"]', '$.required[0]']);
  });

  test('a hostile 50,000-level nesting without overflowing the stack', () => {
    let deep: unknown = { type: 'string' };
    for (let i = 0; i < 50_000; i++) deep = { type: 'array', items: deep };
    const problems = checkStrictSchema(obj({ deep }));
    expect(problems).toHaveLength(1);
    expect(problems[0]!.message).toMatch(/nested more than/);
    expect(normalizeSchema(obj({ deep }))).toBeDefined();
  });
});

describe('checkStrictSchema bounds what its $refs expand to', () => {
  test('chains of two-branch anyOfs: 24 deep (2^25 nodes expanded) by the node rule, 40 deep by nesting, at once', () => {
    const start = performance.now();
    expect(checkStrictSchema(anyOfChain(24))).toEqual([{ path: '$', message: expect.stringMatching(/^at most 50000 schema nodes once \$refs are expanded/) }]);
    expect(checkStrictSchema(anyOfChain(40))).toEqual([{ path: expect.stringMatching(/^\$\.\$defs\.d\d+/), message: 'schemas nest more than 64 levels counting through $refs' }]);
    expect(performance.now() - start).toBeLessThan(1000);
    expect(checkStrictSchema(anyOfChain(14))).toHaveLength(1);
    expect(checkStrictSchema(anyOfChain(12))).toEqual([]);
  });

  test('objects nested more than 10 deep through $refs, though each definition is shallow', () => {
    const $defs: Record<string, unknown> = {};
    for (let i = 0; i < 11; i++) $defs[`o${i}`] = obj({ next: { $ref: `#/$defs/o${i + 1}` } });
    $defs.o11 = { type: 'string' };
    expect(checkStrictSchema(obj({ top: { $ref: '#/$defs/o0' } }, { $defs }))).toEqual([
      { path: '$.$defs.o10', message: 'objects nest more than 10 levels deep counting through $refs (12 here)' },
    ]);
    $defs.o9 = { type: 'string' };
    expect(checkStrictSchema(obj({ top: { $ref: '#/$defs/o0' } }, { $defs }))).toEqual([]);
  });

  test('a chain of 70 definitions nests more than 64 levels through $refs', () => {
    const $defs: Record<string, unknown> = {};
    for (let i = 0; i < 70; i++) $defs[`d${i}`] = { $ref: `#/$defs/d${i + 1}` };
    $defs.d70 = { type: 'string' };
    expect(checkStrictSchema(obj({ x: { $ref: '#/$defs/d0' } }, { $defs }))).toEqual([
      { path: expect.stringMatching(/^\$\.\$defs\.d\d+$/), message: 'schemas nest more than 64 levels counting through $refs' },
    ]);
  });
});

describe('checkStrictSchema takes only patterns a linear-time engine can match', () => {
  test.each([
    ['^(x{100000}){100000}$', /repeats more than 1000 times/],
    ['(?:a{40})?(a|a)*(?!)', /lookarounds/],
    ['^(?=.*\\d)\\w+$', /lookarounds/],
    ['^(\\w)\\1$', /backreferences/],
    ['^(a{100}){101}$', /more than 10000 states/],
    ['(', /^must be a valid regular expression$/],
  ])('%s is refused', (pattern, message) => {
    expect(checkStrictSchema(obj({ code: { type: 'string', pattern } }))).toEqual([{ path: '$.properties.code.pattern', message: expect.stringMatching(message) }]);
  });

  test('common patterns, nested repeats included, are taken', () => {
    for (const pattern of ['^[A-Z]{3}-\\d{4}$', '^[a-z]+(-[a-z]+)*$', '^(a|b)*$', '^\\p{Lu}.{0,1000}$', '^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$']) {
      expect(checkStrictSchema(obj({ code: { type: 'string', pattern } })), pattern).toEqual([]);
    }
  });
});

describe('normalizeSchema', () => {
  const loose = {
    type: 'object',
    properties: {
      name: { type: 'string' },
      unit: { type: 'string', enum: ['EUR', 'USD'] },
      address: { type: 'object', properties: { city: { type: 'string' }, zip: { type: 'string' } }, required: ['city'] },
      tags: { type: 'array', items: { type: 'object', properties: { label: { type: 'string' } } } },
      ref: { $ref: '#/$defs/money' },
      either: { anyOf: [{ type: 'string' }, { type: 'number' }] },
      fixed: { const: 'x' },
      maybe: { type: ['string', 'null'] },
    },
    required: ['name'],
    $defs: { money: { type: 'object', properties: { amount: { type: 'number' } } } },
  };

  test('adds additionalProperties: false and required everywhere; optional properties admit null', () => {
    const out = normalizeSchema(loose) as typeof loose & Record<string, unknown>;
    expect(checkStrictSchema(out)).toEqual([]);
    expect(out.required).toEqual(['name', 'unit', 'address', 'tags', 'ref', 'either', 'fixed', 'maybe']);
    expect(out.additionalProperties).toBe(false);
    expect(out.properties).toEqual({
      name: { type: 'string' },
      unit: { type: ['string', 'null'], enum: ['EUR', 'USD', null] },
      address: {
        anyOf: [
          { type: 'object', properties: { city: { type: 'string' }, zip: { type: ['string', 'null'] } }, required: ['city', 'zip'], additionalProperties: false },
          { type: 'null' },
        ],
      },
      tags: {
        anyOf: [
          { type: 'array', items: { type: 'object', properties: { label: { type: ['string', 'null'] } }, required: ['label'], additionalProperties: false } },
          { type: 'null' },
        ],
      },
      ref: { anyOf: [{ $ref: '#/$defs/money' }, { type: 'null' }] },
      either: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'null' }] },
      fixed: { anyOf: [{ const: 'x' }, { type: 'null' }] },
      maybe: { type: ['string', 'null'] },
    });
    expect(out.$defs).toEqual({
      money: { type: 'object', properties: { amount: { type: ['number', 'null'] } }, required: ['amount'], additionalProperties: false },
    });
  });

  test('leaves its input untouched and is idempotent', () => {
    const before = JSON.stringify(loose);
    const once = normalizeSchema(loose);
    expect(JSON.stringify(loose)).toBe(before);
    expect(normalizeSchema(once)).toEqual(once);
  });

  test('never hides what it cannot fix', () => {
    const out = normalizeSchema({
      type: 'object',
      properties: { a: { type: 'string', minLength: 2 }, b: { type: 'object', additionalProperties: true } },
      allOf: [],
    });
    expect(paths(out)).toEqual(['$.allOf', '$.properties.a.minLength', '$.properties.b.anyOf[0].additionalProperties']);
    expect(paths(normalizeSchema({ type: 'array', items: { type: 'object' } }))).toEqual(['$']);
    expect(paths(normalizeSchema(obj({ a: { type: 'string' } }, { required: 'a' })))).toEqual(['$.required', '$.properties.a']);
  });
});
