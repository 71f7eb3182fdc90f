// What OpenAI Structured Outputs accepts with `strict: true` ("Supported schemas" in OpenAI's
// guide, checked November 2026). A schema it rejects is a 400 at job time, so the
// API refuses it when the pattern is saved instead, naming every offending JSON path.

import { childPath, isLocalPointer, resolveLocalRef } from '../json-pointer.js';
import { PatternError, compileLinearRegExp } from './linear-regexp.js';
import { EXPANSION_LIMITS, measureExpansion } from './schema-expansion.js';

/** One problem in a JSON Schema: where it is (`$.properties.items.items.properties.sku`) and why. */
export interface SchemaProblem {
  path: string;
  message: string;
}

/** OpenAI's documented limits for one strict schema. */
export const STRICT_LIMITS = {
  properties: 5_000,
  objectDepth: 10,
  enumValues: 1_000,
  stringChars: 120_000,
  // One string enum with more than 250 values may hold at most 15,000 characters.
  largeEnumValues: 250,
  largeEnumChars: 15_000,
} as const;

// Not an OpenAI limit: a guard so a hostile, deeply nested body cannot exhaust the stack.
const MAX_SCHEMA_NESTING = 128;

type Family = 'any' | 'string' | 'number' | 'array' | 'object';

// Every keyword strict mode accepts, with the type it applies to.
const KEYWORDS: Record<string, Family> = {
  type: 'any', description: 'any', title: 'any', enum: 'any', const: 'any', anyOf: 'any',
  $ref: 'any', $defs: 'any', definitions: 'any',
  properties: 'object', required: 'object', additionalProperties: 'object',
  items: 'array', minItems: 'array', maxItems: 'array',
  pattern: 'string', format: 'string',
  minimum: 'number', maximum: 'number', exclusiveMinimum: 'number', exclusiveMaximum: 'number', multipleOf: 'number',
};
const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);
const FORMATS = new Set(['date-time', 'time', 'date', 'duration', 'email', 'hostname', 'ipv4', 'ipv6', 'uuid']);
const FAMILY_TYPES: Record<Exclude<Family, 'any'>, string[]> = {
  string: ['string'], number: ['number', 'integer'], array: ['array'], object: ['object'],
};

type Schema = Record<string, unknown>;

/** True for a plain JSON object (not an array, not null). */
function isJsonObject(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The schema's `type` as a list, or undefined when absent or malformed. */
function typeList(schema: Schema): string[] | undefined {
  const t = schema.type;
  if (typeof t === 'string') return [t];
  return Array.isArray(t) && t.every((x) => typeof x === 'string') ? t : undefined;
}

/** True when the schema describes an object (its type says so, or it lists properties). */
function isObjectSchema(schema: Schema): boolean {
  return (typeList(schema)?.includes('object') ?? false) || 'properties' in schema;
}

// Walks a schema once, collecting problems and the totals the limits apply to. `depth` counts
// object levels (the limit OpenAI documents), `nesting` every schema level (the stack guard).
class Checker {
  readonly problems: SchemaProblem[] = [];
  properties = 0;
  enumValues = 0;
  chars = 0;

  constructor(private readonly root: Schema) {}

  add(path: string, message: string): void {
    this.problems.push({ path, message });
  }

  schema(s: unknown, path: string, depth: number, nesting: number): void {
    if (!isJsonObject(s)) return this.add(path, 'must be a JSON Schema object');
    if (nesting > MAX_SCHEMA_NESTING) return this.add(path, `schemas nested more than ${MAX_SCHEMA_NESTING} deep are not checked`);
    const types = this.types(s, path);
    for (const key of Object.keys(s)) {
      const family = KEYWORDS[key];
      if (family === undefined) this.add(childPath(path, key), `${key} is not supported in strict mode`);
      else if (family !== 'any' && types && !types.some((t) => FAMILY_TYPES[family].includes(t))) {
        this.add(childPath(path, key), `${key} applies to ${family} schemas, but type is ${JSON.stringify(s.type)}`);
      }
    }
    if (nesting > 0 && !['type', 'anyOf', '$ref', 'enum', 'const'].some((k) => k in s)) {
      this.add(path, 'must declare a type (or anyOf, $ref, enum or const)');
    }
    if (isObjectSchema(s)) this.object(s, path, depth + 1, nesting);
    if ('items' in s) {
      if (Array.isArray(s.items)) this.add(childPath(path, 'items'), 'tuple items are not supported; give one schema for every item');
      else this.schema(s.items, childPath(path, 'items'), depth, nesting + 1);
    }
    if ('anyOf' in s) {
      if (!Array.isArray(s.anyOf) || s.anyOf.length === 0) this.add(childPath(path, 'anyOf'), 'must be a non-empty array of schemas');
      else s.anyOf.forEach((b, i) => this.schema(b, childPath(childPath(path, 'anyOf'), i), depth, nesting + 1));
    }
    for (const key of ['$defs', 'definitions'] as const) {
      if (!(key in s)) continue;
      const defs = s[key];
      if (!isJsonObject(defs)) {
        this.add(childPath(path, key), 'must be an object of named schemas');
        continue;
      }
      for (const [name, def] of Object.entries(defs)) {
        this.chars += name.length;
        this.schema(def, childPath(childPath(path, key), name), 0, nesting + 1);
      }
    }
    this.values(s, path);
    this.constraints(s, path);
  }

  types(s: Schema, path: string): string[] | undefined {
    if (!('type' in s)) return undefined;
    const types = typeList(s);
    const bad = !types || types.length === 0 || new Set(types).size !== types.length || types.some((t) => !TYPES.has(t));
    if (bad) {
      this.add(childPath(path, 'type'), `must be one of ${[...TYPES].join(', ')}, or a non-empty array of distinct ones`);
      return undefined;
    }
    return types;
  }

  object(s: Schema, path: string, depth: number, nesting: number): void {
    if (depth === STRICT_LIMITS.objectDepth + 1) {
      this.add(path, `objects nest more than ${STRICT_LIMITS.objectDepth} levels deep`);
    }
    if (!('additionalProperties' in s)) this.add(path, 'objects must set additionalProperties: false');
    else if (s.additionalProperties !== false) this.add(childPath(path, 'additionalProperties'), 'must be false');
    const props = s.properties ?? {};
    if (!isJsonObject(props)) return this.add(childPath(path, 'properties'), 'must be an object of named schemas');
    let required: unknown[] = [];
    if ('required' in s) {
      if (Array.isArray(s.required)) required = s.required;
      else this.add(childPath(path, 'required'), 'must be an array of property names');
    }
    required.forEach((name, i) => {
      if (typeof name !== 'string' || !Object.hasOwn(props, name)) {
        this.add(childPath(childPath(path, 'required'), i), `${JSON.stringify(name)} is not a property of this object`);
      }
    });
    for (const [name, prop] of Object.entries(props)) {
      this.properties++;
      this.chars += name.length;
      const at = childPath(childPath(path, 'properties'), name);
      if (!required.includes(name)) {
        this.add(at, `"${name}" must be listed in required; to keep it optional, make its type a union with null`);
      }
      this.schema(prop, at, depth, nesting + 1);
    }
  }

  values(s: Schema, path: string): void {
    if ('enum' in s) {
      if (!Array.isArray(s.enum) || s.enum.length === 0) return this.add(childPath(path, 'enum'), 'must be a non-empty array');
      this.enumValues += s.enum.length;
      const strings = s.enum.filter((v): v is string => typeof v === 'string');
      const chars = strings.reduce((n, v) => n + v.length, 0);
      this.chars += chars;
      if (strings.length > STRICT_LIMITS.largeEnumValues && chars > STRICT_LIMITS.largeEnumChars) {
        this.add(childPath(path, 'enum'), `an enum of more than ${STRICT_LIMITS.largeEnumValues} strings may hold at most ${STRICT_LIMITS.largeEnumChars} characters (this one: ${chars})`);
      }
      if (s.enum.some((v) => typeof v === 'object' && v !== null)) this.add(childPath(path, 'enum'), 'values must be strings, numbers, booleans or null');
    }
    if (typeof s.const === 'string') this.chars += s.const.length;
    else if (typeof s.const === 'object' && s.const !== null) this.add(childPath(path, 'const'), 'must be a string, number, boolean or null');
    if ('$ref' in s) this.ref(s.$ref, childPath(path, '$ref'));
  }

  ref(ref: unknown, path: string): void {
    if (typeof ref !== 'string' || !(ref === '#' || ref.startsWith('#/'))) {
      return this.add(path, 'only local references (#, #/$defs/name) are supported');
    }
    if (!isLocalPointer(ref)) return this.add(path, `${ref} is not a valid JSON pointer`);
    const target = resolveLocalRef(this.root, ref);
    if (!isJsonObject(target)) this.add(path, `${ref} does not resolve to a schema in this document`);
  }

  constraints(s: Schema, path: string): void {
    for (const key of ['description', 'title'] as const) {
      if (key in s && typeof s[key] !== 'string') this.add(childPath(path, key), 'must be a string');
    }
    if ('pattern' in s) {
      if (typeof s.pattern !== 'string') this.add(childPath(path, 'pattern'), 'must be a valid regular expression');
      else {
        // The engine that checks model output (linear-regexp.ts) must take it, within its limits.
        try {
          compileLinearRegExp(s.pattern);
        } catch (err) {
          if (!(err instanceof PatternError)) throw err;
          this.add(childPath(path, 'pattern'), err.message.startsWith('not a valid') ? 'must be a valid regular expression' : err.message);
        }
      }
    }
    if ('format' in s && !FORMATS.has(s.format as string)) {
      this.add(childPath(path, 'format'), `must be one of ${[...FORMATS].join(', ')}`);
    }
    for (const key of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf'] as const) {
      if (key in s && (typeof s[key] !== 'number' || (key === 'multipleOf' && (s[key] as number) <= 0))) {
        this.add(childPath(path, key), key === 'multipleOf' ? 'must be a number greater than 0' : 'must be a number');
      }
    }
    for (const key of ['minItems', 'maxItems'] as const) {
      if (key in s && !(Number.isInteger(s[key]) && (s[key] as number) >= 0)) this.add(childPath(path, key), 'must be a non-negative integer');
    }
  }
}

/**
 * Paths of every key or string holding U+0000, which PostgreSQL cannot store in jsonb (SQLSTATE
 * 22P05). Walked with an explicit stack: the body limit, not the call stack, bounds the nesting.
 */
function nulPaths(root: unknown): string[] {
  const found: string[] = [];
  const stack: [unknown, string][] = [[root, '$']];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string' && v.includes('\u0000')) found.push(path);
    else if (Array.isArray(v)) v.forEach((x, i) => stack.push([x, childPath(path, i)]));
    else if (isJsonObject(v)) {
      for (const [k, x] of Object.entries(v)) {
        if (k.includes('\u0000')) found.push(childPath(path, k));
        else stack.push([x, childPath(path, k)]);
      }
    }
  }
  return found.sort();
}

/** Every reason OpenAI's strict Structured Outputs would refuse `schema`; empty when it is accepted. */
export function checkStrictSchema(schema: unknown): SchemaProblem[] {
  if (!isJsonObject(schema)) return [{ path: '$', message: 'the root must be a JSON Schema object' }];
  const c = new Checker(schema);
  if (schema.type !== 'object') c.add('$', 'the root must be an object schema (type: "object")');
  if ('anyOf' in schema) c.add('$.anyOf', 'anyOf is not allowed at the root');
  c.schema(schema, '$', 0, 0);
  for (const path of nulPaths(schema)) c.add(path, 'NUL characters (\\u0000) cannot be stored');
  const L = STRICT_LIMITS;
  if (c.properties > L.properties) c.add('$', `at most ${L.properties} object properties in total (this schema: ${c.properties})`);
  if (c.enumValues > L.enumValues) c.add('$', `at most ${L.enumValues} enum values in total (this schema: ${c.enumValues})`);
  if (c.chars > L.stringChars) {
    c.add('$', `property names, definition names, enum and const values may total at most ${L.stringChars} characters (this schema: ${c.chars})`);
  }
  // Measured only on an otherwise valid schema: its walk trusts every $ref to resolve, and a
  // schema already refused for its nesting would be reported twice.
  if (c.problems.length === 0) expansion(schema, c);
  return c.problems;
}

/**
 * The limits that apply to the schema with its $refs expanded (the depth count above restarts
 * inside $defs): object depth, and the size and nesting every reader of the expansion pays for.
 */
function expansion(schema: Schema, c: Checker): void {
  const e = measureExpansion(schema);
  if (e.exceeded?.limit === 'nodes') {
    c.add('$', `at most ${EXPANSION_LIMITS.nodes} schema nodes once $refs are expanded, each $ref counting as a copy of what it names (this schema has more); reuse fewer definitions per level or flatten chains of anyOf`);
  } else if (e.exceeded) {
    c.add(e.exceeded.at, `schemas nest more than ${EXPANSION_LIMITS.nesting} levels counting through $refs`);
  } else if (e.objectDepth > STRICT_LIMITS.objectDepth) {
    c.add(e.objectDepthAt, `objects nest more than ${STRICT_LIMITS.objectDepth} levels deep counting through $refs (${e.objectDepth} here)`);
  }
}

/** True when `s` already admits null (a null type, a null branch of anyOf, or a null const). */
function acceptsNull(s: Schema): boolean {
  if (typeList(s)?.includes('null')) return true;
  if (Array.isArray(s.anyOf)) return s.anyOf.some((b) => isJsonObject(b) && acceptsNull(b));
  return 'const' in s && s.const === null;
}

/** `s` widened to also admit null, so a property can be required and still optional in meaning. */
function orNull(s: unknown): unknown {
  if (!isJsonObject(s) || acceptsNull(s)) return s;
  const types = typeList(s);
  // Scalars take a type union (OpenAI's own example); objects and arrays a null branch of anyOf,
  // the form SDKs generate for nullable nested models.
  if (types && !('const' in s) && !types.includes('object') && !types.includes('array')) {
    const out: Schema = { ...s, type: [...types, 'null'] };
    if (Array.isArray(s.enum) && !s.enum.includes(null)) out.enum = [...s.enum, null];
    return out;
  }
  if (Array.isArray(s.anyOf) && !('type' in s)) return { ...s, anyOf: [...s.anyOf, { type: 'null' }] };
  return { anyOf: [s, { type: 'null' }] };
}

function normalize(s: unknown, nesting: number): unknown {
  if (!isJsonObject(s) || nesting > MAX_SCHEMA_NESTING) return s;
  const out: Schema = { ...s };
  const map = (v: unknown) => (isJsonObject(v) ? Object.fromEntries(Object.entries(v).map(([k, d]) => [k, normalize(d, nesting + 1)])) : v);
  if ('properties' in s) out.properties = map(s.properties);
  if ('$defs' in s) out.$defs = map(s.$defs);
  if ('definitions' in s) out.definitions = map(s.definitions);
  if ('items' in s) out.items = normalize(s.items, nesting + 1);
  if (Array.isArray(s.anyOf)) out.anyOf = s.anyOf.map((b) => normalize(b, nesting + 1));
  if (!isObjectSchema(out)) return out;
  if (!('additionalProperties' in out)) out.additionalProperties = false;
  const props = out.properties;
  const required = out.required ?? [];
  // A malformed `required` is left for the check to report rather than silently replaced.
  if (!isJsonObject(props) || !Array.isArray(required)) return out;
  const missing = Object.keys(props).filter((name) => !required.includes(name));
  if (missing.length === 0) return out;
  out.required = [...required, ...missing];
  out.properties = { ...props, ...Object.fromEntries(missing.map((name) => [name, orNull(props[name])])) };
  return out;
}

/**
 * A copy of `schema` made strict where that keeps its meaning: `additionalProperties: false` on
 * every object that omits it, and every property listed in `required`, those that were optional
 * widened to a union with null. Everything else is left as it was for checkStrictSchema to report.
 */
export function normalizeSchema(schema: unknown): unknown {
  return normalize(schema, 0);
}
