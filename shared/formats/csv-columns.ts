// Which columns a manifest's CSV has, read from its pattern's JSON Schema alone, so every
// manifest of a pattern gets the same header (rules: docs/formats.md, "csv").
import { createHash } from 'node:crypto';
import { LruCache } from '../lru-cache.js';
import { SchemaTooLargeError } from '../patterns/schema-expansion.js';
import { isJsonObject } from './json-value.js';
import { readSchema, type SchemaShape } from './schema-shape.js';

/** How a cell holds its value: as plain text of one scalar type, or as JSON text. */
export type CellKind = 'string' | 'number' | 'boolean' | 'json';

/** One CSV column: where its value lives in the manifest and how the cell encodes it. */
export interface CsvColumn {
  /** Keys from the manifest root (for an item column: the main array's key, then the item's keys). */
  path: string[];
  /** The header cell: the path's keys joined by ".", with "." and "\" in a key escaped by "\". */
  name: string;
  /** How the cell spells the value. */
  kind: CellKind;
  /** True when the schema admits null here (written as an unquoted empty cell). */
  nullable: boolean;
  /** True for a column of the main array's items (one row per item). */
  item: boolean;
}

/** The columns of a manifest's CSV for one schema, in both of its layouts. */
export interface CsvLayout {
  /** The one-row layout: every top-level property flattened. */
  readonly single: readonly CsvColumn[];
  /** The row-per-item layout and its main array's key, when the schema has a main array. */
  readonly main?: { readonly key: string; readonly columns: readonly CsvColumn[] };
}

/** The header cell of a path; the root itself (a manifest that is not flattened) is `value`. */
function columnName(path: string[]): string {
  if (path.length === 0) return 'value';
  return path.map((key) => key.replace(/[\\.]/g, (ch) => `\\${ch}`)).join('.');
}

/** True for an object schema whose properties become columns of their own. */
function flattens(shape: SchemaShape): boolean {
  return shape.types.size === 1 && shape.types.has('object') && (shape.properties?.length ?? 0) > 0;
}

/** The scalar kind of a value of this shape; anything else is JSON text. */
function kindOf(shape: SchemaShape): CellKind {
  const types = [...shape.types].filter((t) => t !== 'null');
  const only = types.length === 1 ? types[0] : undefined;
  return only === 'string' || only === 'number' || only === 'boolean' ? only : 'json';
}

/**
 * The columns under one value. A required property is flattened (an object with declared
 * properties) or typed (a scalar); an optional one is a JSON cell, empty when the key is absent,
 * since a typed cell has no spelling left for "absent" next to null and "".
 */
function columnsOf(shape: SchemaShape, path: string[], required: boolean, item: boolean): CsvColumn[] {
  if (required && flattens(shape)) {
    return (shape.properties ?? []).flatMap(([key, child]) =>
      columnsOf(child, [...path, key], shape.required.has(key), item),
    );
  }
  const kind = required ? kindOf(shape) : 'json';
  return [{ path, name: columnName(path), kind, nullable: shape.types.has('null'), item }];
}

/**
 * The main array: the first top-level property, in schema order, that is an array (or null)
 * whose items are objects with declared properties, themselves never null.
 */
function mainArray(root: SchemaShape): { key: string; items: SchemaShape } | undefined {
  for (const [key, shape] of root.properties ?? []) {
    const arrayOnly = [...shape.types].every((t) => t === 'array' || t === 'null') && shape.types.has('array');
    if (arrayOnly && shape.items && flattens(shape.items)) return { key, items: shape.items };
  }
  return undefined;
}

/** The layout of one schema's shape: each top-level property's columns made once, for both layouts. */
function layoutOf(root: SchemaShape): CsvLayout {
  if (!flattens(root)) return { single: columnsOf(root, [], true, false) };
  const main = mainArray(root);
  const single: CsvColumn[] = [];
  const columns: CsvColumn[] = [];
  for (const [key, shape] of root.properties ?? []) {
    const own = columnsOf(shape, [key], root.required.has(key), false);
    single.push(...own);
    columns.push(...(key === main?.key ? columnsOf(main.items, [key], true, true) : own));
  }
  return main ? { single, main: { key: main.key, columns } } : { single };
}

// A pattern's schema is read from the database with each manifest, a new object every time, so
// layouts are kept by the schema's text, hashed (up to 1 MB of it; the digest is what stays).
// Patterns are few and reused, as in validate-output.ts. A schema too large to lay out is kept
// too: measuring it up to EXPANSION_LIMITS takes ~90 ms, and a refusal needs that once.
const layouts = new LruCache<string, CsvLayout | { tooLarge: string }>(128);

/**
 * The CSV columns of manifests of `schema`, in the order of the schema's properties. Cached: the
 * layout is shared with every caller of the same schema, and must not be changed. Throws
 * SchemaTooLargeError for a schema whose expansion passes EXPANSION_LIMITS.
 */
export function csvLayout(schema: unknown): CsvLayout {
  const object = isJsonObject(schema) ? schema : {};
  const key = createHash('sha256').update(JSON.stringify(object)).digest('base64');
  let layout = layouts.get(key);
  if (!layout) {
    try {
      layout = layoutOf(readSchema(object));
    } catch (err) {
      if (!(err instanceof SchemaTooLargeError)) throw err;
      layout = { tooLarge: err.message };
    }
    layouts.set(key, layout);
  }
  if ('tooLarge' in layout) throw new SchemaTooLargeError(layout.tooLarge);
  return layout;
}
