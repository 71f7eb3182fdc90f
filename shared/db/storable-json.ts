// PostgreSQL stores neither U+0000 nor an unpaired UTF-16 surrogate, in text or in jsonb (SQLSTATEs
// 22021, 22P05, 22P02). The API refuses them at the edge; what a handler returns, throws or reports
// as progress reaches the database without that check, in statements that write a whole batch of
// jobs at once, where one such string would fail every job of the batch.

const NUL = /\u0000/g;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
// How JSON.stringify writes them: `\u0000`, and `\udXXX` for a lone surrogate (a pair stays as it is).
const ESCAPED = /\\u0000|\\ud[89a-f]/i;

/** `text` with U+0000 and unpaired surrogates replaced by U+FFFD, the replacement character. */
export function storableText(text: string): string {
  return text.replace(NUL, '\uFFFD').replace(LONE_SURROGATE, '\uFFFD');
}

/**
 * JSON text of `value` that jsonb takes: U+0000 and unpaired surrogates, in values and keys alike,
 * become U+FFFD. `replaced` says whether any did. Costs one scan of the text when none is there.
 */
export function storableJson(value: unknown): { text: string; replaced: boolean } {
  const text = JSON.stringify(value) ?? 'null';
  if (!ESCAPED.test(text)) return { text, replaced: false };
  const fixed = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'string') return storableText(v);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [storableText(k), x]));
    }
    return v;
  });
  return { text: fixed, replaced: fixed !== text };
}
