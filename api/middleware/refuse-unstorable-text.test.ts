import { describe, expect, test } from 'vitest';
import { unstorableText } from './refuse-unstorable-text.js';

describe('unstorableText', () => {
  test('finds NUL and unpaired surrogates in strings and keys, at any depth, in document order', () => {
    const body = JSON.parse('{"a":"ok","b":["x","y\\u0000"],"c\\ud800":{"d":"\\udfff","e":"\\ud83d\\ude00"},"f":1}');
    expect(unstorableText(body, 'body')).toEqual([
      { path: 'body.b[1]', message: expect.stringMatching(/U\+0000/) },
      { path: 'body.c\\ud800', message: expect.stringMatching(/^this key must be valid Unicode/) },
      { path: 'body.c\\ud800.d', message: expect.stringMatching(/surrogate/) },
    ]);
  });

  test('takes a surrogate pair, the text "\\u0000", and values of every other type', () => {
    expect(unstorableText({ emoji: '😀', text: '\\u0000', n: 0, t: true, z: null, a: [[], {}] }, 'body')).toEqual([]);
    expect(unstorableText('\u0000', 'body')).toEqual([{ path: 'body', message: expect.any(String) }]);
  });

  test('walks 300,000 levels (1 MiB of JSON) without a stack overflow, and cuts the path it reports', () => {
    const deep = JSON.parse(`${'['.repeat(300_000)}"\\u0000"${']'.repeat(300_000)}`);
    const [found] = unstorableText(deep, 'body');
    expect(found!.path).toBe(`${`body${'[0]'.repeat(400)}`.slice(0, 1_000)}…`);
  });

  test('reports at most 20 places', () => {
    expect(unstorableText(Array.from({ length: 1_000 }, () => '\u0000'), 'body')).toHaveLength(20);
  });
});
