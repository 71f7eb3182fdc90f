// Just enough of a JSON Schema to lay out CSV columns: which JSON types a value may have, an
// object's properties in the author's order, and an array's items. Local `$ref`s are followed;
// `anyOf`/`oneOf` branches are merged; anything unknown may be any JSON value. Its walk is one
// that measureExpansion (patterns/schema-expansion.ts) contains, so measuring first bounds it.
import { isJsonObject } from './json-value.js';
import { resolveLocalRef } from '../json-pointer.js';
import { SchemaTooLargeError, expansionProblem } from '../patterns/schema-expansion.js';

/** A JSON type name, with "integer" folded into "number". */
export type JsonType = 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object';

/** What a schema says about a value's shape. */
export interface SchemaShape {
  /** The JSON types the value may have. */
  types: Set<JsonType>;
  /** An object's declared properties in schema order, when exactly one object form is declared. */
  properties?: [string, SchemaShape][];
  /** The names the object schema lists in `required`. */
  required: Set<string>;
  /** The shape of an array's items, when exactly one array form declares them. */
  items?: SchemaShape;
}

type Schema = Record<string, unknown>;

const ALL_TYPES: JsonType[] = ['null', 'boolean', 'number', 'string', 'array', 'object'];

/** A shape that admits any JSON value and lays out nothing. */
function anyShape(): SchemaShape {
  return { types: new Set(ALL_TYPES), required: new Set() };
}

/** The JSON type of a literal from `enum` or `const`. */
function typeOfLiteral(value: unknown): JsonType {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  const t = typeof value;
  return t === 'boolean' || t === 'number' || t === 'string' ? t : 'object';
}

/** The schema a local JSON Pointer reference (`#/$defs/item`, RFC 6901) names, if any. */
function resolveRef(root: Schema, ref: string): unknown {
  return resolveLocalRef(root, ref);
}

/** The types a schema's `type`, `enum`, `const` or structural keywords declare. */
function declaredTypes(node: Schema): Set<JsonType> {
  const t = node.type;
  const names = typeof t === 'string' ? [t] : Array.isArray(t) ? t : undefined;
  if (names) {
    return new Set(names.map((n) => (n === 'integer' ? 'number' : n)).filter((n): n is JsonType => ALL_TYPES.includes(n)));
  }
  if (Array.isArray(node.enum)) return new Set(node.enum.map(typeOfLiteral));
  if ('const' in node) return new Set([typeOfLiteral(node.const)]);
  if (isJsonObject(node.properties)) return new Set(['object']);
  if ('items' in node) return new Set(['array']);
  return new Set(ALL_TYPES);
}

/** Reads one schema node; `refs` are the references being expanded, to stop on recursion. */
function read(node: unknown, root: Schema, refs: string[]): SchemaShape {
  if (!isJsonObject(node)) return anyShape();
  if (typeof node.$ref === 'string') {
    const target = refs.includes(node.$ref) ? undefined : resolveRef(root, node.$ref);
    return target === undefined ? anyShape() : read(target, root, [...refs, node.$ref]);
  }
  const branches = Array.isArray(node.anyOf) ? node.anyOf : Array.isArray(node.oneOf) ? node.oneOf : undefined;
  if (branches && branches.length > 0) {
    const shapes = branches.map((b) => read(b, root, refs));
    const objects = shapes.filter((s) => s.types.has('object'));
    const arrays = shapes.filter((s) => s.types.has('array'));
    const object = objects.length === 1 ? objects[0] : undefined;
    return {
      types: new Set(shapes.flatMap((s) => [...s.types])),
      properties: object?.properties,
      required: object?.required ?? new Set(),
      items: arrays.length === 1 ? arrays[0]?.items : undefined,
    };
  }
  const properties = isJsonObject(node.properties)
    ? Object.entries(node.properties).map(([key, child]): [string, SchemaShape] => [key, read(child, root, refs)])
    : undefined;
  const required = Array.isArray(node.required) ? node.required.filter((r): r is string => typeof r === 'string') : [];
  const items = 'items' in node && !Array.isArray(node.items) ? read(node.items, root, refs) : undefined;
  return { types: declaredTypes(node), properties, required: new Set(required), items };
}

/**
 * The shape of a whole schema (the root that `$ref`s point into). Throws SchemaTooLargeError for
 * a schema whose expansion passes EXPANSION_LIMITS: read() expands every `$ref` and branch it
 * meets, and a 40-deep chain of two-branch anyOfs (2 KB of JSON) would keep it busy for days.
 * The pattern check refuses such schemas; this guards those stored before it did.
 */
export function readSchema(schema: Record<string, unknown>): SchemaShape {
  const problem = expansionProblem(schema);
  if (problem) throw new SchemaTooLargeError(problem);
  return read(schema, schema, []);
}
