// PostgreSQL stores neither U+0000 nor an unpaired UTF-16 surrogate, in text or in jsonb (SQLSTATEs
// 22021, 22P05, 22P02). The API refuses them at the edge; what a handler returns, throws or reports
// as progress reaches the database without that check, in statements that write a whole batch of
// jobs at once, where one such string would fail every job of the batch.

/** One character PostgreSQL cannot store: U+0000, or a UTF-16 surrogate without its pair. */
export const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** Every such character of a text (global: for replace). */
export const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, 'g');
/**
 * How such a character appears in JSON text: JSON.stringify and JSON.parse write and read it as
 * `\u0000` or `\udXXX` (raw control characters are not JSON; a surrogate pair may stand raw).
 * Text without such an escape holds none.
 */
export const UNSTORABLE_ESCAPE = /\\u(?:0000|d[89a-f])/i;

/** `text` with U+0000 and unpaired surrogates replaced by U+FFFD, the replacement character. */
export function storableText(text: string): string {
  return text.replace(UNSTORABLE_ALL, '\uFFFD');
}

/**
 * JSON text of `value` that jsonb takes: U+0000 and unpaired surrogates, in values and keys alike,
 * become U+FFFD. `replaced` says whether any did. Costs one scan of the text when none is there.
 */
export function storableJson(value: unknown): { text: string; replaced: boolean } {
  const text = JSON.stringify(value) ?? 'null';
  if (!UNSTORABLE_ESCAPE.test(text)) return { text, replaced: false };
  const fixed = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'string') return storableText(v);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [storableText(k), x]));
    }
    return v;
  });
  return { text: fixed, replaced: fixed !== text };
}
