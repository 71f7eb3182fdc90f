import { describe, expect, test } from 'vitest';
import { PATTERN_LIMITS, PatternBudgetError, PatternError, StepBudget, compileLinearRegExp } from './linear-regexp.js';

// Patterns seen in schemas, plus the corners of the syntax: classes with escapes and ranges,
// unicode escapes and properties, word boundaries, counted and lazy repeats, nullable loops.
const PATTERNS = [
  '^[A-Z]{3}-\\d{4}$',
  '^(?:INV|RCT)-[0-9]{6}$',
  '^[a-z]+(-[a-z]+)*$',
  '^\\+?[1-9]\\d{1,14}$',
  '^#[0-9a-fA-F]{6}$',
  '^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$',
  '\\d{4}-\\d{2}',
  '^(?<year>\\d{4})-(0[1-9]|1[0-2])$',
  '^\\w+\\.(jpe?g|png|webp)$',
  '^[\\u0041-\\u0046]{2}\\x2e.$',
  '^\\$\\d+\\.\\d\\d$',
  '\\bcat\\b',
  '\\Bat',
  '^\\p{Lu}\\p{Ll}*$',
  '^\\u{1F600}+$',
  '^\\uD83D\\uDE00$',
  '^[\\]\\-a]+$',
  '^[^]$',
  '[]',
  '^(a*)*b$',
  '^(a|ab)(c|bcd)(d*)$',
  'a{2,3}?$',
  '^.{0,3}$',
  '',
  '^$',
  'x|',
  '^\\cJ\\0\\t$',
  '^[\\d\\s-]{3,}$',
];
const INPUTS = [
  '', 'a', 'b', 'ab', 'aab', 'aaab', 'abcd', 'abcdd', 'ABC-1234', 'ABC-12345', 'INV-123456', 'foo-bar', 'foo--bar',
  '+14155550123', '#00ffAA', 'me@example.com', 'x 2026-03 y', '2026-13', 'photo.jpeg', 'AF.z', 'AF.\n', '$12.50',
  'the cat sat', 'concat', 'bat', 'Éclair', 'éclair', '\u{1F600}\u{1F600}', '\u{1F600}', ']-a', 'x', '\n', '\ud800',
  '\n\u0000\t', '12 3-4', 'aa', 'aaa', 'aaaa', 'xa', 'cat',
];

describe('compileLinearRegExp', () => {
  test.each(PATTERNS)('agrees with RegExp(%j, "u") on every input', (pattern) => {
    const native = new RegExp(pattern, 'u');
    const linear = compileLinearRegExp(pattern);
    for (const input of INPUTS) expect(linear.test(input), JSON.stringify(input)).toBe(native.test(input));
  });

  test('agrees with RegExp on 2,000 random patterns over short inputs', () => {
    // A seeded LCG keeps any failure reproducible.
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const ATOMS = ['a', 'b', '.', '[ab]', '[^a]', '\\d', '\\w', '1', ' '];
    const QUANTIFIERS = ['', '', '*', '+', '?', '{2}', '{1,2}', '{0,}', '*?', '{0,2}?'];
    const term = (depth: number): string => {
      const r = rand(12);
      if (r === 0) return ['^', '$', '\\b', '\\B'][rand(4)]!;
      const atom = r === 1 && depth < 3 ? `(${alt(depth + 1)})` : r === 2 && depth < 3 ? `(?:${alt(depth + 1)})` : ATOMS[rand(ATOMS.length)]!;
      return atom + QUANTIFIERS[rand(QUANTIFIERS.length)]!;
    };
    const seq = (depth: number) => Array.from({ length: rand(4) }, () => term(depth)).join('');
    const alt = (depth: number): string => (rand(4) === 0 ? `${seq(depth)}|${seq(depth)}` : seq(depth));
    const CHARS = ['a', 'b', '1', ' ', '\n', 'é'];
    for (let n = 0; n < 2000; n++) {
      const pattern = alt(0);
      const native = new RegExp(pattern, 'u');
      const linear = compileLinearRegExp(pattern);
      for (let k = 0; k < 10; k++) {
        const input = Array.from({ length: rand(7) }, () => CHARS[rand(CHARS.length)]!).join('');
        expect(linear.test(input), `${pattern} on ${JSON.stringify(input)}`).toBe(native.test(input));
      }
    }
  });

  test('matches catastrophic-backtracking patterns in linear time', () => {
    // V8 needs about 60 s for ^(a|a)*$ on 31 characters; these inputs are 100 times longer.
    const start = performance.now();
    expect(compileLinearRegExp('^(a|a)*$').test(`${'a'.repeat(3000)}b`)).toBe(false);
    expect(compileLinearRegExp('^(a+)+$').test(`${'a'.repeat(3000)}!`)).toBe(false);
    expect(compileLinearRegExp('^(\\w|\\d)*$').test('1'.repeat(3000))).toBe(true);
    expect(performance.now() - start).toBeLessThan(1000);
  });

  test.each([
    ['(?:a{40})?(a|a)*(?!)', /lookaround/],
    ['^(?=.*\\d).+$', /lookaround/],
    ['(?<=a)b', /lookaround/],
    ['(?<!a)b', /lookaround/],
    ['^(a)\\1$', /backreference/],
    ['^(?<x>a)\\k<x>$', /backreference/],
    ['(', /not a valid regular expression/],
    ['a{2', /not a valid regular expression/],
    ['^(x{100000}){100000}$', /repeats more than 1000 times/],
    ['a{1001,}', /repeats more than 1000 times/],
    ['^(a{100}){101}$', /more than 10000 states/],
    ['((((){1000}){1000}){1000}){1000}', /more than 10000 states/],
    ['x'.repeat(PATTERN_LIMITS.chars + 1), /at most 5000 characters/],
    [`${'('.repeat(101)}a${')'.repeat(101)}`, /groups nest more than 100 deep/],
  ])('refuses %j', (pattern, message) => {
    const start = performance.now();
    expect(() => compileLinearRegExp(pattern)).toThrow(PatternError);
    expect(() => compileLinearRegExp(pattern)).toThrow(message);
    expect(performance.now() - start).toBeLessThan(500);
  });

  test('takes the limits themselves', () => {
    expect(compileLinearRegExp('^a{1000}$').test('a'.repeat(1000))).toBe(true);
    expect(compileLinearRegExp('^(a{10}){99}$').test('a'.repeat(990))).toBe(true);
  });

  test('stops at its step budget, which tests can share', () => {
    const re = compileLinearRegExp('^(a|b|c|d)*$');
    expect(() => re.test('a'.repeat(1000), new StepBudget(100))).toThrow(PatternBudgetError);
    const budget = new StepBudget(100_000);
    for (let i = 0; i < 5; i++) re.test('abcd'.repeat(100), budget);
    expect(budget.remaining).toBeGreaterThan(0);
    expect(budget.remaining).toBeLessThan(100_000);
  });

  test('prints as a RegExp literal, so ajv keeps two patterns apart', () => {
    expect(String(compileLinearRegExp('^a$'))).toBe('/^a$/u');
    expect(String(compileLinearRegExp('^b$'))).not.toBe(String(compileLinearRegExp('^a$')));
  });
});
