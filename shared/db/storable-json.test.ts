import { describe, expect, test } from 'vitest';
import { storableJson, storableText } from './storable-json.js';

describe('storableText and storableJson', () => {
  test('U+0000 and unpaired surrogates become U+FFFD; pairs and everything else stay', () => {
    expect(storableText('a\u0000b\u0000')).toBe('a\uFFFDb\uFFFD');
    expect(storableText('\ud800x\udc00\u{1F600}')).toBe('\uFFFDx\uFFFD\u{1F600}');
    expect(storableText('\ud83d')).toBe('\uFFFD');
    expect(storableText('plain ünïcode')).toBe('plain ünïcode');
  });

  test('values and keys at any depth; replaced says whether anything changed', () => {
    const value = { 'k\u0000': [{ deep: 'x\ud800' }, 3, null, true], ok: 'fine' };
    const out = storableJson(value);
    expect(out.replaced).toBe(true);
    expect(JSON.parse(out.text)).toEqual({ 'k\uFFFD': [{ deep: 'x\uFFFD' }, 3, null, true], ok: 'fine' });
  });

  test('nothing to replace: the plain JSON.stringify text, also for a backslash followed by "u0000"', () => {
    for (const value of [{ a: 1 }, 'text', null, [1, 'two'], { path: 'C:\\u0000\\udead' }]) {
      expect(storableJson(value)).toEqual({ text: JSON.stringify(value), replaced: false });
    }
    expect(storableJson(undefined)).toEqual({ text: 'null', replaced: false });
  });
});
