import { describe, expect, test } from 'vitest';
import { SeededRandom } from './fake-values.js';
import { PatternSampleError, SAMPLE_LIMITS, samplePattern } from './sample-pattern.js';

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

  test.each([
    // Filled the heap and crashed Node in about 6 s before the bounds.
    ['^(x{100000}){100000}$', /longer than 10000 characters/],
    ['^x{2147483647}$', /longer than 10000 characters/],
    // Emits nothing, so only the step bound stops it.
    ['^(?:){100000000}$', /more than 250000 steps/],
    ['^(?:[\\x00-\\uffff]){1000000}$', /more than 250000 steps/],
    [`${'('.repeat(500)}a${')'.repeat(500)}`, /nest more than 100 deep/],
  ])('fails fast with PatternSampleError on %s', (pattern, message) => {
    const start = performance.now();
    const draw = new SeededRandom(Buffer.alloc(16, 1));
    expect(() => samplePattern(pattern, draw)).toThrow(PatternSampleError);
    expect(() => samplePattern(pattern, draw)).toThrow(message);
    expect(performance.now() - start).toBeLessThan(1000);
  });

  test('still draws samples up to the limit', () => {
    const sample = samplePattern(`^x{${SAMPLE_LIMITS.chars}}$`, new SeededRandom(Buffer.alloc(16, 1)));
    expect(sample).toHaveLength(SAMPLE_LIMITS.chars);
  });
});
