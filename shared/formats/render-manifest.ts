// The one entry point the API uses to serve `GET /v1/jobs/:id/manifest?format=…`: a manifest
// (JSON produced under a pattern's JSON Schema) in any of five formats. Every conversion is
// pure and deterministic: the same manifest and schema give byte-identical bodies.
import { toJsonValue } from './json-value.js';
import { renderCsv } from './render-csv.js';
import { renderText } from './render-text.js';
import { renderXml } from './render-xml.js';
import { renderYaml } from './render-yaml.js';

/** Thrown by the csv format when a manifest does not fit its schema's columns. */
export { CsvShapeError } from './csv-cell.js';
/** Thrown by the csv format when repeating the parent fields on every row would make it too large. */
export { CsvTooLargeError } from './render-csv.js';
/** Thrown by the csv format when the schema's expansion is too large to lay out columns from. */
export { SchemaTooLargeError } from '../patterns/schema-expansion.js';
/** Reads a CSV manifest back, given the schema it was written with. */
export { fromCsv } from './from-csv.js';
/** Reads an XML manifest back; the document carries its own types. */
export { fromXml } from './from-xml.js';
/** Any JSON value: what the readers return. */
export type { JsonValue } from './json-value.js';

/** The formats a manifest can be served in; the first is the default. */
export const MANIFEST_FORMATS = ['json', 'yaml', 'xml', 'csv', 'text'] as const;

/** One of MANIFEST_FORMATS. */
export type ManifestFormat = (typeof MANIFEST_FORMATS)[number];

/** The Content-Type of each format's body. */
export const MANIFEST_CONTENT_TYPES: Record<ManifestFormat, string> = {
  json: 'application/json',
  yaml: 'application/yaml',
  xml: 'application/xml',
  csv: 'text/csv; charset=utf-8',
  text: 'text/plain; charset=utf-8',
};

/** A rendered manifest: the response body and its Content-Type. */
export interface RenderedManifest {
  body: string;
  contentType: string;
}

/** True when `value` names a supported format. */
export function isManifestFormat(value: unknown): value is ManifestFormat {
  return typeof value === 'string' && (MANIFEST_FORMATS as readonly string[]).includes(value);
}

/** Renders `manifest` in `format`; `schema` (the pattern's JSON Schema) lays out the CSV columns. */
export function renderManifest(manifest: unknown, format: ManifestFormat, schema: unknown): RenderedManifest {
  const value = toJsonValue(manifest);
  const contentType = MANIFEST_CONTENT_TYPES[format];
  switch (format) {
    case 'json':
      return { body: `${JSON.stringify(value, null, 2)}\n`, contentType };
    case 'yaml':
      return { body: renderYaml(value), contentType };
    case 'xml':
      return { body: renderXml(value), contentType };
    case 'csv':
      return { body: renderCsv(value, schema), contentType };
    case 'text':
      return { body: renderText(value), contentType };
  }
}
