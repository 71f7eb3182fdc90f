// Manifest → CSV (RFC 4180: CRLF line ends, fields quoted only when needed, UTF-8 without a BOM).
// Columns come from the schema (csvLayout). A non-empty main array gives one row per item with
// the other fields repeated on every row; otherwise one row holds every field, the main array
// (if any) as one JSON cell. See docs/formats.md, "csv".
import { stringify, type Options } from 'csv-stringify/sync';
import { type CellText, CsvShapeError, encodeCell, neutralise } from './csv-cell.js';
import { type CsvColumn, csvLayout } from './csv-columns.js';
import { isJsonObject, type JsonValue } from './json-value.js';

/** The csv-stringify options every CSV manifest is written with. */
export const CSV_OPTIONS: Options = {
  record_delimiter: 'windows',
  // Setting record_delimiter turns this off by default; a lone CR or LF in a field must be
  // quoted too, or other readers split the record there.
  quote_record_delimiter: true,
  bom: false,
  // csv-stringify writes null as an unquoted empty field; the empty string gets quotes.
  cast: { string: (value) => (value === '' ? { value: '', quoted_empty: true } : value) },
};

/**
 * Bounds on what the row-per-item layout may repeat. It copies every parent field onto every
 * row, so 10,000 items under 4 parent strings of 10,000 characters (a manifest of 0.3 MB) would
 * make a 400 MB CSV; no manifest a model returns comes near these.
 */
export const CSV_LIMITS = {
  /** Cells in the file: rows × columns. */
  cells: 5_000_000,
  /** Characters of parent fields, summed over the rows they are repeated on. */
  repeatedChars: 32 * 1024 * 1024,
} as const;

/** Thrown when a manifest's CSV would pass CSV_LIMITS; the other formats still serve it. */
export class CsvTooLargeError extends Error {
  override readonly name = 'CsvTooLargeError';
}

/** A tree of the keys the columns read, to find keys in the manifest that no column holds. */
type KeyTree = Map<string, KeyTree>;

/** The key tree of some paths. */
function keyTree(paths: string[][]): KeyTree {
  const tree: KeyTree = new Map();
  for (const path of paths) {
    let node = tree;
    for (const key of path) {
      const next = node.get(key) ?? new Map<string, KeyTree>();
      node.set(key, next);
      node = next;
    }
  }
  return tree;
}

/** Throws unless every object the columns flatten is an object with only keys the columns read. */
function checkKeys(value: JsonValue | undefined, tree: KeyTree, at: string): void {
  if (tree.size === 0) return;
  if (!isJsonObject(value)) throw new CsvShapeError(`${at}: expected an object, the schema flattens it into columns`);
  for (const key of Object.keys(value)) {
    if (!tree.has(key)) throw new CsvShapeError(`${at}: key ${JSON.stringify(key)} is not in the schema, so no column holds it`);
  }
  for (const [key, child] of tree) {
    checkKeys(Object.hasOwn(value, key) ? value[key] : undefined, child, `${at}[${JSON.stringify(key)}]`);
  }
}

/** The value at `path` (undefined when a key is absent); checkKeys has vetted the objects. */
function valueAt(value: JsonValue, path: string[]): JsonValue | undefined {
  let node: JsonValue | undefined = value;
  for (const key of path) node = isJsonObject(node) && Object.hasOwn(node, key) ? node[key] : undefined;
  return node;
}

/** The header row: column names, neutralised like string cells. */
function headerRow(columns: readonly CsvColumn[]): CellText[] {
  return columns.map((c) => neutralise(c.name));
}

/** Renders a manifest as CSV with the columns its schema defines. */
export function renderCsv(manifest: JsonValue, schema: unknown): string {
  const layout = csvLayout(schema);
  const main = layout.main;
  const items = main && isJsonObject(manifest) && Object.hasOwn(manifest, main.key) ? manifest[main.key] : undefined;
  if (!main || !Array.isArray(items) || items.length === 0) {
    checkKeys(manifest, keyTree(layout.single.map((c) => c.path)), '$');
    const row = layout.single.map((c) => encodeCell(valueAt(manifest, c.path), c));
    return stringify([headerRow(layout.single), row], CSV_OPTIONS);
  }
  const parents = main.columns.filter((c) => !c.item);
  checkKeys(manifest, keyTree([...parents.map((c) => c.path), [main.key]]), '$');
  const parentChars = parents.reduce((n, c) => n + (encodeCell(valueAt(manifest, c.path), c)?.length ?? 0), 0);
  if (items.length * main.columns.length > CSV_LIMITS.cells || items.length * parentChars > CSV_LIMITS.repeatedChars) {
    throw new CsvTooLargeError(
      `${items.length} rows of ${main.columns.length} columns, repeating ${parentChars} characters of parent fields on each, pass the csv limits (${CSV_LIMITS.cells} cells, ${CSV_LIMITS.repeatedChars} repeated characters)`,
    );
  }
  const itemTree = keyTree(main.columns.filter((c) => c.item).map((c) => c.path.slice(1)));
  const rows = items.map((item, i) => {
    checkKeys(item, itemTree, `$[${JSON.stringify(main.key)}][${i}]`);
    return main.columns.map((c) => encodeCell(c.item ? valueAt(item, c.path.slice(1)) : valueAt(manifest, c.path), c));
  });
  return stringify([headerRow(main.columns), ...rows], CSV_OPTIONS);
}
