// Property test: ~300 random manifests, generated from a few schemas with a seeded PRNG, each
// rendered in every format, parsed back and compared; and rendered twice, byte for byte.
import { describe, expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { type JsonObject, type JsonValue, setOwnKey } from './json-value.js';
import { AWKWARD_KEYS, AWKWARD_NUMBERS, AWKWARD_STRINGS, objectSchema as obj, scalars, SHELF_AUDIT_SCHEMA } from './manifest-fixtures.js';
import { prng } from '../../test/helpers/fuzz-inputs.js';
import { fromCsv, fromXml, MANIFEST_FORMATS, renderManifest } from './render-manifest.js';

type Schema = Record<string, unknown>;

/** Random values drawn from the awkward pools, mixed with plain random ones. */
class Gen {
  constructor(readonly rand: () => number) {}
  pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.rand() * list.length)]!;
  }
  string(): string {
    const parts = Math.floor(this.rand() * 3);
    return parts === 0 ? this.pick(AWKWARD_STRINGS) : Array.from({ length: parts }, () => this.pick(AWKWARD_STRINGS)).join('');
  }
  number(integer: boolean): number {
    if (this.rand() < 0.5) return integer ? Math.floor((this.rand() - 0.5) * 2e6) : (this.rand() - 0.5) * 10 ** Math.floor(this.rand() * 30 - 10);
    const n = this.pick(AWKWARD_NUMBERS);
    return integer ? Math.trunc(n) || 0 : n;
  }
  /** Any JSON value, for schemas that do not say. */
  any(depth: number): JsonValue {
    const kind = Math.floor(this.rand() * (depth > 2 ? 4 : 6));
    if (kind === 0) return null;
    if (kind === 1) return this.rand() < 0.5;
    if (kind === 2) return this.number(false);
    if (kind === 3) return this.string();
    if (kind === 4) return Array.from({ length: Math.floor(this.rand() * 4) }, () => this.any(depth + 1));
    const out: JsonObject = {};
    for (let n = Math.floor(this.rand() * 4); n > 0; n--) setOwnKey(out, this.pick(AWKWARD_KEYS), this.any(depth + 1));
    return out;
  }
  /** A value conforming to `schema` (the subset these tests' schemas use). */
  value(schema: Schema, root: Schema, depth = 0): JsonValue {
    if (typeof schema.$ref === 'string') return this.value((root.$defs as Schema)[schema.$ref.split('/').at(-1)!] as Schema, root, depth);
    if (Array.isArray(schema.anyOf)) return this.value(this.pick(schema.anyOf as Schema[]), root, depth);
    if (Array.isArray(schema.enum)) return this.pick(schema.enum as JsonValue[]);
    const types = schema.type === undefined ? [] : ([] as string[]).concat(schema.type as string | string[]);
    const type = types.length === 0 ? 'any' : this.pick(types);
    switch (type) {
      case 'null': return null;
      case 'boolean': return this.rand() < 0.5;
      case 'integer': return this.number(true);
      case 'number': return this.number(false);
      case 'string': return this.string();
      case 'array': {
        const length = this.rand() < 0.2 ? 0 : Math.floor(this.rand() * 5);
        return Array.from({ length }, () => this.value(schema.items as Schema, root, depth + 1));
      }
      case 'object': {
        const out: JsonObject = {};
        const required = new Set(schema.required as string[]);
        for (const [key, child] of Object.entries(schema.properties as Schema)) {
          if (required.has(key) || this.rand() < 0.5) setOwnKey(out, key, this.value(child as Schema, root, depth + 1));
        }
        return out;
      }
      default: return this.any(depth);
    }
  }
}

/** A strict object schema built from entries, so that "__proto__" can be a property. */
function objOf(entries: [string, unknown][]): Schema {
  const properties: JsonObject = {};
  for (const [key, value] of entries) setOwnKey(properties, key, value as JsonValue);
  return obj(properties);
}

const SCHEMAS: Record<string, Schema> = {
  'shelf audit': SHELF_AUDIT_SCHEMA,
  'awkward keys and unions': objOf([
    ['1st', { type: ['string', 'null'] }],
    ['__proto__', objOf([['a.b', { type: 'number' }], ['', { type: 'boolean' }]])],
    ['<x>', { type: 'array', items: objOf([['xmlThing', { type: 'string' }], ['a b', { anyOf: [{ type: 'string' }, { type: 'number' }] }], ['ä', { type: 'array', items: { type: 'string' } }]]) }],
    ['matrix', { type: 'array', items: { type: 'array', items: { type: ['number', 'null'] } } }],
    ['free', {}],
  ]),
  'refs, nullable main array, optional keys': {
    type: 'object',
    properties: {
      kind: { enum: ['receipt', 'invoice', null] },
      lines: { type: ['array', 'null'], items: { $ref: '#/$defs/line' } },
      vendor: { anyOf: [{ $ref: '#/$defs/vendor' }, { type: 'null' }] },
      memo: { type: 'string' },
    },
    required: ['kind', 'lines', 'vendor'],
    $defs: {
      line: { type: 'object', properties: { text: { type: 'string' }, amount: { type: 'number' }, note: { type: 'string' } }, required: ['text', 'amount'] },
      vendor: obj({ name: { type: 'string' }, vat: { type: ['string', 'null'] } }),
    },
  },
  'no main array': obj({ title: { type: 'string' }, meta: obj({ w: { type: 'integer' }, h: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } } }), ok: { type: 'boolean' } }),
  'array root': { type: 'array', items: { anyOf: [{ type: 'string' }, obj({ k: { type: 'null' } }), { type: 'array', items: {} }] } },
};

const PER_SCHEMA = 60;

describe.each(Object.entries(SCHEMAS))('%s: random manifests round-trip', (name, schema) => {
  test(`${PER_SCHEMA} manifests in every format`, () => {
    const layouts = new Set<string>();
    const gen = new Gen(prng([...name].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619), 2166136261)));
    for (let i = 0; i < PER_SCHEMA; i++) {
      const manifest = gen.value(schema, schema);
      const bodies = Object.fromEntries(MANIFEST_FORMATS.map((f) => [f, renderManifest(manifest, f, schema).body]));
      const context = `${name} #${i}: ${JSON.stringify(manifest)}`;
      for (const f of MANIFEST_FORMATS) expect(renderManifest(manifest, f, schema).body, context).toBe(bodies[f]);
      expect(JSON.parse(bodies.json!), context).toEqual(manifest);
      expect(parseYaml(bodies.yaml!, { version: '1.2', schema: 'core' }), context).toEqual(manifest);
      expect(parseYaml(bodies.yaml!, { version: '1.1', schema: 'yaml-1.1' }), context).toEqual(manifest);
      expect(fromXml(bodies.xml!), context).toEqual(manifest);
      expect(fromCsv(bodies.csv!, schema), context).toEqual(manifest);
      for (const s of scalars(manifest)) {
        for (const line of s.split(/\r\n|\r|\n/)) expect(bodies.text, context).toContain(line);
      }
      layouts.add(bodies.csv!.slice(0, bodies.csv!.indexOf('\r\n')));
    }
    // Schemas with a main array must have produced both CSV layouts (row per item, and one row).
    expect(layouts.size).toBe(name === 'no main array' || name === 'array root' ? 1 : 2);
  });
});
