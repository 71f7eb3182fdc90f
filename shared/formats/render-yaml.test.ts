import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import type { JsonValue } from './json-value.js';
import { renderYaml } from './render-yaml.js';

/** The YAML for `value`, checked to read back to it under both the 1.2 core and 1.1 schemas. */
function yaml(value: JsonValue): string {
  const body = renderYaml(value);
  expect(parse(body, { version: '1.2', schema: 'core' })).toEqual(value);
  expect(parse(body, { version: '1.1', schema: 'yaml-1.1' })).toEqual(value);
  return body;
}

describe('renderYaml', () => {
  test('quotes strings that YAML 1.2 or 1.1 would read as another type', () => {
    const looks = ['true', 'null', '~', '1e3', '0x1F', '.inf', 'yes', 'No', 'on', 'y', '007', '1_000', '12:30', '2026-11-02', '<<', '='];
    expect(yaml(looks)).toBe(`${looks.map((s) => `- "${s}"`).join('\n')}\n`);
    expect(yaml(['plain', 'A-1', 'Cola, 0.5 l'])).toBe('- plain\n- A-1\n- Cola, 0.5 l\n');
  });

  test('gives exponent-form numbers a fractional part, which YAML 1.1 floats need', () => {
    expect(yaml([1e21, -1e21, 1e-7, 5e-324, 1.5e300, 0, -3, 12345678901234567890])).toBe(
      '- 1.0e+21\n- -1.0e+21\n- 1.0e-7\n- 5.0e-324\n- 1.5e+300\n- 0\n- -3\n- 12345678901234567000\n',
    );
  });

  test('escapes characters YAML may not hold raw, and tabs, inside double quotes', () => {
    expect(yaml({ del: 'a\u007f', c1: '\u0080', nel: 'x\u0085y', ls: '\u2028\u2029', nc: '\uFFFE\uFFFF', tab: 'a\tb', nul: '\u0000' })).toBe(
      'del: "a\\x7f"\nc1: "\\x80"\nnel: "x\\Ny"\nls: "\\L\\P"\nnc: "\\ufffe\\uffff"\ntab: "a\\tb"\nnul: "\\0"\n',
    );
  });

  test('writes multi-line strings as block literals and never folds long lines', () => {
    const long = 'word '.repeat(60).trim();
    expect(yaml({ m: 'a\nb\n', long })).toBe(`m: |\n  a\n  b\nlong: ${long}\n`);
  });

  test('writes a shared object twice instead of an anchor and alias', () => {
    const shared = { a: 1 };
    expect(renderYaml({ p: shared, q: shared })).toBe('p:\n  a: 1\nq:\n  a: 1\n');
  });
});
