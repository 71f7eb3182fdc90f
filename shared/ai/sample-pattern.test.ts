import { describe, expect, test } from 'vitest';
import { SeededRandom } from './fake-values.js';
import { samplePattern } from './sample-pattern.js';

const PATTERNS = [
  '^[A-Z]{3}-\\d{4}$',
  '^(?:INV|RCT)-[0-9]{6}$',
  '^[a-z]+(-[a-z]+)*$',
  '^\\+?[1-9]\\d{1,14}$',
  '^#[0-9a-fA-F]{6}$',
  '^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$',
  '\\d{4}-\\d{2}',
  '^(?<year>\\d{4})-(0[1-9]|1[0-2])$',
  '^[A-Z][a-z]+( [A-Z][a-z]+)?$',
  '^\\w+\\.(jpe?g|png|webp)$',
  '^[\\u0041-\\u0046]{2}\\x2e.$',
  '^\\$\\d+\\.\\d\\d$',
];

describe('samplePattern', () => {
  test.each(PATTERNS)('draws strings matching %s', (pattern) => {
    const re = new RegExp(pattern, 'u');
    for (let seed = 0; seed < 50; seed++) {
      const r = new SeededRandom(Buffer.alloc(16, seed));
      const sample = samplePattern(pattern, r);
      expect(sample, `seed ${seed}`).toMatch(re);
    }
  });

  test('the same seed draws the same string', () => {
    const draw = () => samplePattern('^[A-Z]{3}-\\d{4}$', new SeededRandom(Buffer.alloc(16, 7)));
    expect(draw()).toBe(draw());
  });
});
