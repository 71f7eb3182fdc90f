// Which columns a manifest's CSV has, read from its pattern's JSON Schema alone, so every
// manifest of a pattern gets the same header (rules: docs/formats.md, "csv").
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
  single: CsvColumn[];
  /** The row-per-item layout and its main array's key, when the schema has a main array. */
  main?: { key: string; columns: CsvColumn[] };
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

/** The CSV columns of manifests of `schema`, in the order of the schema's properties. */
export function csvLayout(schema: unknown): CsvLayout {
  const root = readSchema(isJsonObject(schema) ? schema : {});
  const single = columnsOf(root, [], true, false);
  const main = flattens(root) ? mainArray(root) : undefined;
  if (!main) return { single };
  const columns = (root.properties ?? []).flatMap(([key, shape]) =>
    key === main.key
      ? columnsOf(main.items, [key], true, true)
      : columnsOf(shape, [key], root.required.has(key), false),
  );
  return { single, main: { key: main.key, columns } };
}
