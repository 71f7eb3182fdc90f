import { parse } from 'csv-parse/sync';
import { describe, expect, test } from 'vitest';
import { CsvShapeError, neutralise, unneutralise } from './csv-cell.js';
import { csvLayout } from './csv-columns.js';
import { fromCsv } from './from-csv.js';
import type { JsonValue } from './json-value.js';
import { objectSchema as obj, SHELF_AUDIT, SHELF_AUDIT_SCHEMA } from './manifest-fixtures.js';
import { CSV_LIMITS, CsvTooLargeError, renderCsv } from './render-csv.js';
import { SchemaTooLargeError } from '../patterns/schema-expansion.js';
import { anyOfChain, objectChain } from '../../test/helpers/schema-fixtures.js';

/** The CSV for `value`, checked to read back to it. */
function csv(value: JsonValue, schema: unknown): string {
  const body = renderCsv(value, schema);
  expect(fromCsv(body, schema)).toEqual(value);
  return body;
}

const ITEM = obj({ sku: { type: 'string' }, qty: { type: ['integer', 'null'] } });
const ORDER = obj({ id: { type: 'string' }, lines: { type: 'array', items: ITEM }, total: { type: 'number' } });

describe('renderCsv', () => {
  test('writes a row per main-array item with the parent fields repeated, CRLF, no BOM', () => {
    const body = csv({ id: 'o1', lines: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: null }], total: 9.5 }, ORDER);
    expect(body).toBe('id,lines.sku,lines.qty,total\r\no1,a,1,9.5\r\no1,b,,9.5\r\n');
  });

  test('orders columns by the schema, not by the manifest', () => {
    const body = csv({ total: 1, lines: [{ qty: 2, sku: 's' }], id: 'x' }, ORDER);
    expect(body.split('\r\n')[0]).toBe('id,lines.sku,lines.qty,total');
  });

  test('takes the first array of objects as the main array', () => {
    const schema = obj({
      tags: { type: 'array', items: { type: 'string' } },
      first: { type: 'array', items: obj({ a: { type: 'string' } }) },
      second: { type: 'array', items: obj({ b: { type: 'string' } }) },
    });
    expect(csvLayout(schema).main?.key).toBe('first');
    const body = csv({ tags: ['x', 'y;z'], first: [{ a: '1' }], second: [{ b: '2' }] }, schema);
    expect(body).toBe('tags,first.a,second\r\n"[""x"",""y;z""]",1,"[{""b"":""2""}]"\r\n');
  });

  test('flattens nested objects into dotted columns, escaping dots and backslashes in keys', () => {
    const schema = obj({ 'a.b': obj({ c: { type: 'string' }, 'd\\e': { type: 'boolean' } }), f: obj({ g: obj({ h: { type: 'number' } }) }) });
    expect(csv({ 'a.b': { c: 'x', 'd\\e': true }, f: { g: { h: -0.5 } } }, schema)).toBe('a\\.b.c,a\\.b.d\\\\e,f.g.h\r\nx,true,-0.5\r\n');
  });

  test('writes one row when there is no main array, or when it is empty or null', () => {
    expect(csv({ a: 'x', b: { c: 2 } }, obj({ a: { type: 'string' }, b: obj({ c: { type: 'integer' } }) }))).toBe('a,b.c\r\nx,2\r\n');
    expect(csv({ id: 'o1', lines: [], total: 0 }, ORDER)).toBe('id,lines,total\r\no1,[],0\r\n');
    const nullable = obj({ lines: { type: ['array', 'null'], items: ITEM } });
    expect(csv({ lines: null }, nullable)).toBe('lines\r\nnull\r\n');
    expect(csv({ lines: [{ sku: '', qty: 0 }] }, nullable)).toBe('lines.sku,lines.qty\r\n"",0\r\n');
  });

  test('tells null (unquoted empty) from the empty string (quoted empty), as PostgreSQL COPY does', () => {
    const schema = obj({ a: { type: ['string', 'null'] }, b: { type: ['string', 'null'] }, c: { type: ['boolean', 'null'] } });
    expect(csv({ a: null, b: '', c: null }, schema)).toBe('a,b,c\r\n,"",\r\n');
  });

  test('neutralises cells a spreadsheet would run as a formula, and reads them back', () => {
    const schema = obj({ f: { type: 'array', items: obj({ s: { type: 'string' }, n: { type: 'number' } }) } });
    const cells = ['=1+2', '+1', '-x', '@SUM(A1)', '\t=1', '\r=1', '\uFF1D1', "'=1", "''@", "'", "'a", 'a=1'];
    const body = csv({ f: cells.map((s) => ({ s, n: -1 })) }, schema);
    expect(parse(body).slice(1)).toEqual(cells.map((s) => [neutralise(s), '-1']));
    expect(cells.map(neutralise).slice(0, 9)).toEqual(["'=1+2", "'+1", "'-x", "'@SUM(A1)", "'\t=1", "'\r=1", "'\uFF1D1", "''=1", "'''@"]);
    expect(cells.map(neutralise).slice(9)).toEqual(["'", "'a", 'a=1']);
    for (const s of cells) expect(unneutralise(neutralise(s))).toBe(s);
  });

  test('writes unions, free-form values and optional properties as JSON cells (empty when absent)', () => {
    const schema = {
      type: 'object',
      properties: { u: { anyOf: [{ type: 'string' }, { type: 'number' }] }, any: {}, opt: { type: 'string' } },
      required: ['u', 'any'],
    };
    expect(csv({ u: '3', any: { k: [1] }, opt: 'here' }, schema)).toBe('u,any,opt\r\n"""3""","{""k"":[1]}","""here"""\r\n');
    expect(csv({ u: 3, any: null }, schema)).toBe('u,any,opt\r\n3,null,\r\n');
  });

  test('follows $ref and reads a nullable anyOf as its one non-null branch', () => {
    const schema = {
      ...obj({ rows: { $ref: '#/$defs/rows' }, who: { anyOf: [{ type: 'string' }, { type: 'null' }] } }),
      $defs: { rows: { type: 'array', items: { $ref: '#/$defs/row' } }, row: obj({ v: { type: 'integer' } }) },
    };
    expect(csv({ rows: [{ v: 1 }, { v: 2 }], who: null }, schema)).toBe('rows.v,who\r\n1,\r\n2,\r\n');
  });

  test('survives a recursive schema', () => {
    const schema = { ...obj({ tree: { $ref: '#/$defs/node' } }), $defs: { node: obj({ kids: { type: 'array', items: { $ref: '#/$defs/node' } } }) } };
    expect(csv({ tree: { kids: [{ kids: [] }] } }, schema)).toBe('tree.kids\r\n"[{""kids"":[]}]"\r\n');
  });

  test('writes a manifest whose root is not a flattened object as one `value` cell', () => {
    expect(csv([1, 'a'], { type: 'array', items: {} })).toBe('value\r\n"[1,""a""]"\r\n');
    expect(csv('=x', { type: 'string' })).toBe("value\r\n'=x\r\n");
    expect(csv({}, { type: 'object' })).toBe('value\r\n{}\r\n');
  });

  test('quotes fields holding separators, quotes or line breaks', () => {
    const body = csv({ id: 'a,b', lines: [{ sku: 'say "hi"', qty: 1 }, { sku: 'x\ny', qty: 2 }, { sku: 'cr\r', qty: 3 }], total: 0 }, ORDER);
    expect(body).toBe('id,lines.sku,lines.qty,total\r\n"a,b","say ""hi""",1,0\r\n"a,b","x\ny",2,0\r\n"a,b","cr\r",3,0\r\n');
  });

  test('refuses manifests that do not fit the schema, naming where', () => {
    expect(() => renderCsv({ id: 'x', lines: [{ sku: 'a', qty: 1, extra: 1 }], total: 1 }, ORDER)).toThrow(CsvShapeError);
    expect(() => renderCsv({ id: 'x', lines: [], total: 1, more: 2 }, ORDER)).toThrow(/"more" is not in the schema/);
    expect(() => renderCsv({ id: 1, lines: [], total: 1 }, ORDER)).toThrow(/column "id": a number where the schema says string/);
    expect(() => renderCsv({ id: null, lines: [], total: 1 }, ORDER)).toThrow(/null where the schema does not allow it/);
    expect(() => renderCsv({ lines: [], total: 1 }, ORDER)).toThrow(/no value here/);
  });

  test('renders the shelf audit deterministically', () => {
    expect(csv(SHELF_AUDIT, SHELF_AUDIT_SCHEMA)).toBe(renderCsv(JSON.parse(JSON.stringify(SHELF_AUDIT)) as JsonValue, SHELF_AUDIT_SCHEMA));
  });
});

// Schemas stored before the pattern check bounded their expansion, or reached another way.
describe('csv-schema-expansion: hostile schemas fail fast instead of hanging the API', () => {
  test('a 24-deep chain of two-branch anyOfs (about 45 s before the bound) is refused in well under a second', () => {
    const start = performance.now();
    expect(() => csvLayout(anyOfChain(24))).toThrow(SchemaTooLargeError);
    expect(() => renderCsv({ x: 'a' }, anyOfChain(40))).toThrow(/nests more than 64 levels counting through \$refs/);
    expect(performance.now() - start).toBeLessThan(1000);
  });

  test('objects holding two copies of the next, 20 deep (a million columns), likewise', () => {
    const start = performance.now();
    expect(() => csvLayout(objectChain(20))).toThrow(/expands to more than 50000 nodes/);
    expect(performance.now() - start).toBeLessThan(1000);
  });

  test('a schema is laid out, or refused, once: the same text read again (a new object, as from the database) comes from the cache', () => {
    const text = JSON.stringify(ORDER);
    const first = csvLayout(JSON.parse(text));
    expect(csvLayout(JSON.parse(text))).toBe(first);
    expect(first.main?.columns.map((c) => c.name)).toEqual(['id', 'lines.sku', 'lines.qty', 'total']);
    expect(csvLayout({ ...ORDER, title: 'other' })).not.toBe(first);
    const hostile = JSON.stringify(objectChain(20));
    const refusal = (() => {
      try {
        csvLayout(JSON.parse(hostile));
      } catch (err) {
        return err as Error;
      }
    })();
    expect(refusal).toBeInstanceOf(SchemaTooLargeError);
    const start = performance.now();
    for (let i = 0; i < 100; i++) expect(() => csvLayout(JSON.parse(hostile))).toThrow(refusal!.message);
    // Measuring it again would take ~90 ms each time.
    expect(performance.now() - start).toBeLessThan(500);
  });

  test('the same shapes within the limits still lay out every column', () => {
    expect(csvLayout(anyOfChain(12)).single.map((c) => c.name)).toEqual(['x']);
    expect(csvLayout(objectChain(3)).single).toHaveLength(8);
  });

  test('refuses a file that would repeat its parent fields past the limits', () => {
    const schema = obj({ note: { type: 'string' }, rows: { type: 'array', items: obj({ n: { type: 'integer' } }) } });
    const rows = Array.from({ length: 2_000 }, (_, n) => ({ n }));
    expect(renderCsv({ note: 'x'.repeat(100), rows }, schema).length).toBeGreaterThan(200_000);
    const long = 'x'.repeat(Math.ceil(CSV_LIMITS.repeatedChars / rows.length) + 1);
    expect(() => renderCsv({ note: long, rows }, schema)).toThrow(CsvTooLargeError);
    expect(() => renderCsv({ note: long, rows }, schema)).toThrow(/2000 rows of 2 columns, repeating 16779 characters of parent fields on each/);
  });
});

describe('fromCsv', () => {
  test('reads LF line ends and a leading BOM too', () => {
    expect(fromCsv('\uFEFFid,lines.sku,lines.qty,total\no1,a,1,2\n', ORDER)).toEqual({ id: 'o1', lines: [{ sku: 'a', qty: 1 }], total: 2 });
  });

  test('rejects a header that is not the schema\'s or bad cells', () => {
    expect(() => fromCsv('id,total\r\nx,1\r\n', ORDER)).toThrow(/header does not match/);
    expect(() => fromCsv('', ORDER)).toThrow(/no header/);
    expect(() => fromCsv('id,lines.sku,lines.qty,total\r\nx,a,1,1e\r\n', ORDER)).toThrow(/"1e" is not a number/);
    expect(() => fromCsv('a\r\nyes\r\n', obj({ a: { type: 'boolean' } }))).toThrow(/not true or false/);
    expect(() => fromCsv('a\r\n1\r\n2\r\n', obj({ a: { type: 'integer' } }))).toThrow(/one data row/);
  });
});
