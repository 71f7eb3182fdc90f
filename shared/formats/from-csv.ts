// CSV → manifest, the inverse of renderCsv. The schema gives the columns; the header tells which
// of the two layouts the file uses and must match the schema's column names exactly.
import { parse } from 'csv-parse/sync';
import { CsvShapeError, decodeCell, unneutralise } from './csv-cell.js';
import { type CsvColumn, csvLayout } from './csv-columns.js';
import { isJsonObject, type JsonObject, type JsonValue, setOwnKey } from './json-value.js';

/** A parsed field and whether it was quoted (`""` is the empty string, an unquoted empty field null). */
interface Field {
  text: string;
  quoted: boolean;
}

/** True when the header names exactly these columns, in order. */
function headerMatches(header: Field[], columns: readonly CsvColumn[]): boolean {
  return header.length === columns.length && header.every((f, i) => unneutralise(f.text) === columns[i]?.name);
}

/** Sets the value at `path` below `target`, creating the objects on the way; undefined sets nothing. */
function setAt(target: JsonObject, path: string[], value: JsonValue | undefined): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = Object.hasOwn(node, key) ? node[key] : undefined;
    if (isJsonObject(next)) {
      node = next;
    } else {
      const created: JsonObject = {};
      setOwnKey(node, key, created);
      node = created;
    }
  }
  const last = path.at(-1);
  if (last !== undefined && value !== undefined) setOwnKey(node, last, value);
}

/** The value of a row's `i`th cell. */
function cellValue(row: Field[], i: number, column: CsvColumn): JsonValue | undefined {
  const field = row[i] ?? { text: '', quoted: false };
  return decodeCell(field.text, field.quoted, column);
}

/** Reads a CSV written by renderCsv for `schema` back into the exact JSON manifest. */
export function fromCsv(text: string, schema: unknown): JsonValue {
  const records = parse(text, {
    bom: true,
    cast: (value, context): Field => ({ text: value, quoted: context.quoting }),
  }) as unknown as Field[][];
  const [header, ...rows] = records;
  if (!header) throw new CsvShapeError('the CSV is empty: no header row');
  const layout = csvLayout(schema);
  const main = layout.main;

  if (main && rows.length > 0 && headerMatches(header, main.columns)) {
    const root: JsonObject = {};
    const items: JsonValue[] = [];
    main.columns.forEach((column, i) => {
      if (!column.item) setAt(root, column.path, cellValue(rows[0]!, i, column));
      else if (!Object.hasOwn(root, main.key)) setOwnKey(root, main.key, items);
    });
    for (const row of rows) {
      const item: JsonObject = {};
      main.columns.forEach((column, i) => {
        if (column.item) setAt(item, column.path.slice(1), cellValue(row, i, column));
      });
      items.push(item);
    }
    return root;
  }
  if (!headerMatches(header, layout.single)) {
    throw new CsvShapeError('the CSV header does not match the columns of the schema');
  }
  if (rows.length !== 1) throw new CsvShapeError(`expected one data row, found ${rows.length}`);
  const [only] = layout.single;
  if (layout.single.length === 1 && only?.path.length === 0) return cellValue(rows[0]!, 0, only) ?? null;
  const root: JsonObject = {};
  layout.single.forEach((column, i) => setAt(root, column.path, cellValue(rows[0]!, i, column)));
  return root;
}
