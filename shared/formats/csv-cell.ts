// One CSV cell ⇄ one JSON value, given its column. Three spellings exist for a typed cell: an
// unquoted empty field (null, as PostgreSQL's COPY … CSV writes NULL), a quoted empty field
// `""` (the empty string) and text. JSON cells are never empty unless the key is absent.
import type { CsvColumn } from './csv-columns.js';
import type { JsonValue } from './json-value.js';

/** A manifest that does not fit its schema's CSV columns (the schema is the header's source). */
export class CsvShapeError extends Error {
  override readonly name = 'CsvShapeError';
}

/** What csv-stringify should write: null is an unquoted empty field, "" a quoted one. */
export type CellText = string | null;

// Cells a spreadsheet would run as a formula (OWASP "CSV Injection", plus the full-width forms
// csv-stringify's escape_formulas knows). Such a string cell gets a leading apostrophe; one
// already starting with apostrophes before such a character gets one more, so reading
// removes exactly one apostrophe from any cell matching READ_NEUTRALISED.
const WRITE_NEUTRALISE = /^'*[=+\-@\t\r\uFF1D\uFF0B\uFF0D\uFF20]/;
const READ_NEUTRALISED = /^'+[=+\-@\t\r\uFF1D\uFF0B\uFF0D\uFF20]/;

/** The text of a string cell, neutralised against formula injection. */
export function neutralise(text: string): string {
  return WRITE_NEUTRALISE.test(text) ? `'${text}` : text;
}

/** The string a neutralised cell stood for. */
export function unneutralise(text: string): string {
  return READ_NEUTRALISED.test(text) ? text.slice(1) : text;
}

/** A short description of where a column's value lives, for error messages. */
function where(column: CsvColumn): string {
  return `column "${column.name}"`;
}

/** The cell for `value` (undefined: the key is absent) in `column`. */
export function encodeCell(value: JsonValue | undefined, column: CsvColumn): CellText {
  if (column.kind === 'json') return value === undefined ? null : JSON.stringify(value);
  if (value === undefined) throw new CsvShapeError(`${where(column)}: the manifest has no value here`);
  if (value === null) {
    if (column.nullable) return null;
    throw new CsvShapeError(`${where(column)}: null where the schema does not allow it`);
  }
  if (typeof value !== column.kind) {
    throw new CsvShapeError(`${where(column)}: a ${typeof value} where the schema says ${column.kind}`);
  }
  if (typeof value === 'string') return value === '' ? '' : neutralise(value);
  return JSON.stringify(value);
}

/** The value a cell holds (undefined: the key was absent); `quoted` tells "" from null. */
export function decodeCell(text: string, quoted: boolean, column: CsvColumn): JsonValue | undefined {
  if (column.kind === 'json') return text === '' && !quoted ? undefined : (JSON.parse(text) as JsonValue);
  if (text === '' && !quoted && column.nullable) return null;
  if (column.kind === 'string') return unneutralise(text);
  if (column.kind === 'boolean') {
    if (text === 'true' || text === 'false') return text === 'true';
    throw new CsvShapeError(`${where(column)}: ${JSON.stringify(text)} is not true or false`);
  }
  const n: unknown = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(text) ? JSON.parse(text) : undefined;
  if (typeof n === 'number') return n;
  throw new CsvShapeError(`${where(column)}: ${JSON.stringify(text)} is not a number`);
}
