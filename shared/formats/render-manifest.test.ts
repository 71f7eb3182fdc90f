import { parse as parseCsv } from 'csv-parse/sync';
import { describe, expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { FIXTURES, scalars, SHELF_AUDIT, SHELF_AUDIT_SCHEMA } from './manifest-fixtures.js';
import {
  fromCsv,
  fromXml,
  isManifestFormat,
  MANIFEST_CONTENT_TYPES,
  MANIFEST_FORMATS,
  type ManifestFormat,
  renderManifest,
} from './render-manifest.js';

/** The body as it travels: UTF-8 bytes decoded again, so nothing survives only as a JS string. */
const wire = (body: string) => Buffer.from(body, 'utf8').toString('utf8');

/** Every format that parses back, with its reader. */
const READERS: Record<Exclude<ManifestFormat, 'text'>, (body: string, schema: unknown) => unknown> = {
  json: (body) => JSON.parse(body),
  yaml: (body) => parseYaml(body, { version: '1.2', schema: 'core' }),
  xml: (body) => fromXml(body),
  csv: (body, schema) => fromCsv(body, schema),
};

describe('renderManifest round trips', () => {
  for (const { name, manifest, schema } of FIXTURES) {
    for (const format of Object.keys(READERS) as (keyof typeof READERS)[]) {
      test(`${name} as ${format} parses back to the manifest`, () => {
        const { body } = renderManifest(manifest, format, schema);
        expect(wire(body)).toBe(body);
        expect(READERS[format](body, schema)).toEqual(manifest);
      });
    }
  }

  test('yaml also reads back exactly under the YAML 1.1 schema (PyYAML and friends)', () => {
    for (const { manifest, schema } of FIXTURES) {
      const { body } = renderManifest(manifest, 'yaml', schema);
      expect(parseYaml(body, { version: '1.1', schema: 'yaml-1.1' })).toEqual(manifest);
    }
  });
});

describe('renderManifest', () => {
  test('is deterministic: equal manifests give byte-identical bodies', () => {
    for (const { manifest, schema } of FIXTURES) {
      for (const format of MANIFEST_FORMATS) {
        const copy = JSON.parse(JSON.stringify(manifest)) as unknown;
        expect(renderManifest(copy, format, schema).body).toBe(renderManifest(manifest, format, schema).body);
      }
    }
  });

  test('labels every format with its content type', () => {
    const types = MANIFEST_FORMATS.map((f) => renderManifest(SHELF_AUDIT, f, SHELF_AUDIT_SCHEMA).contentType);
    expect(types).toEqual([
      'application/json',
      'application/yaml',
      'application/xml',
      'text/csv; charset=utf-8',
      'text/plain; charset=utf-8',
    ]);
    expect(MANIFEST_CONTENT_TYPES.csv).toBe(types[3]);
  });

  test('json is two-space indented with a final newline', () => {
    expect(renderManifest({ a: [1] }, 'json', {}).body).toBe('{\n  "a": [\n    1\n  ]\n}\n');
  });

  test('reads the manifest as JSON first: -0 is 0, undefined properties vanish', () => {
    const body = renderManifest({ z: -0, u: undefined, d: new Date(0) }, 'yaml', {}).body;
    expect(body).toBe('z: 0\nd: "1970-01-01T00:00:00.000Z"\n');
    expect(() => renderManifest(undefined, 'json', {})).toThrow(/not representable as JSON/);
  });

  test('knows its formats', () => {
    expect(MANIFEST_FORMATS).toEqual(['json', 'yaml', 'xml', 'csv', 'text']);
    expect(isManifestFormat('csv')).toBe(true);
    expect(isManifestFormat('CSV')).toBe(false);
    expect(isManifestFormat(undefined)).toBe(false);
  });

  test('csv bodies are plain RFC 4180 that any CSV reader splits into the header and rows', () => {
    const { body } = renderManifest(SHELF_AUDIT, 'csv', SHELF_AUDIT_SCHEMA);
    const rows = parseCsv(body) as string[][];
    expect(rows).toHaveLength(4);
    expect(rows[0]).toEqual([
      'store', 'date', 'auditor.name', 'auditor.badge',
      'items.sku', 'items.name', 'items.facings', 'items.price', 'items.on_promo', 'notes',
    ]);
    expect(rows[2]).toEqual([
      'Migros Zürich HB #0412', '2026-11-02', 'Aïcha Ben-Salah', '7301',
      '7613035974357', 'Kägi fret, 6 × 24 g', '4', '', 'true', 'Aisle 4; shelf 2 partly\nhidden by a pallet',
    ]);
  });
});

describe('text', () => {
  test('contains every key and scalar, line by line for multi-line strings', () => {
    for (const { manifest, schema } of FIXTURES) {
      const { body } = renderManifest(manifest, 'text', schema);
      expect(body.endsWith('\n')).toBe(true);
      for (const s of scalars(manifest)) {
        for (const line of s.split(/\r\n|\r|\n/)) expect(body).toContain(line);
      }
    }
  });

  test('reads as indented key: value lines with - items', () => {
    const { body } = renderManifest(SHELF_AUDIT, 'text', SHELF_AUDIT_SCHEMA);
    expect(body).toBe(
      [
        'store: Migros Zürich HB #0412',
        'date: 2026-11-02',
        'auditor:',
        '  name: Aïcha Ben-Salah',
        '  badge: 7301',
        'items:',
        '  - sku: 7610200012345',
        '    name: Rivella Rot 1.5 l',
        '    facings: 6',
        '    price: 2.95',
        '    on_promo: false',
        '  - sku: 7613035974357',
        '    name: Kägi fret, 6 × 24 g',
        '    facings: 4',
        '    price: null',
        '    on_promo: true',
        '  - sku: 0049000050103',
        '    name: Coca-Cola "Zero" 0,5 l',
        '    facings: 0',
        '    price: 1.8',
        '    on_promo: false',
        'notes: |',
        '  Aisle 4; shelf 2 partly',
        '  hidden by a pallet',
        '',
      ].join('\n'),
    );
  });

  test('nests arrays in arrays and marks empty containers', () => {
    const { body } = renderManifest({ m: [[1, 2], []], e: {}, '': 'x', 'a: b': 'y' }, 'text', {});
    expect(body).toBe('m:\n  - - 1\n    - 2\n  - []\ne: {}\n"": x\n"a: b": y\n');
  });
});
