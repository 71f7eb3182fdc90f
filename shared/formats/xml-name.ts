// JSON keys are arbitrary strings; XML element names are not. Keys are encoded the way .NET's
// XmlConvert.EncodeName and Excel's XML maps do it, so the scheme is familiar to XML tooling:
// a character that may not stand where it is becomes `_xHHHH_` (4 upper-case hex digits, or 8
// for a code point above U+FFFF), and an underscore that is followed by `x` is itself written
// `_x005F_`, which makes the encoding reversible (every `_x` in an encoded name opens an escape).

// NameStartChar and NameChar of XML 1.0 fifth edition (§2.3), without ":" so that
// namespace-aware parsers never see a prefix.
const NAME_START =
  'A-Z_a-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D' +
  '\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}';
const START_CHAR = new RegExp(`^[${NAME_START}]$`, 'u');
const NAME_CHAR = new RegExp(`^[${NAME_START}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040]$`, 'u');
// Kept beyond ASCII: letters, marks and digits of the Basic Multilingual Plane. The fifth
// edition also allows emoji, symbols and everything above U+FFFF in names, but parsers that
// still use the fourth edition's tables reject those, so they are escaped too.
const PORTABLE = /^[\p{L}\p{M}\p{Nd}]$/u;
const ESCAPE = /_x([0-9A-F]{4}|[0-9A-F]{8})_/g;

/** What the empty key is written as: `_x_` can never come out of a non-empty key. */
export const EMPTY_KEY_NAME = '_x_';

/** `_xHHHH_` (or `_xHHHHHHHH_` above U+FFFF) for one code point, or one lone surrogate. */
function escapeChar(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  return `_x${cp.toString(16).toUpperCase().padStart(cp > 0xffff ? 8 : 4, '0')}_`;
}

/** Encodes a JSON key as a valid, namespace-free XML element name; decodeXmlName reverses it. */
export function encodeXmlName(key: string): string {
  if (key === '') return EMPTY_KEY_NAME;
  // Names starting with "xml" in any case are reserved (XML 1.0 §2.3): escape the first letter.
  const reserved = /^xml/i.test(key);
  let out = '';
  let index = 0;
  for (const ch of key) {
    const first = index === 0;
    index += ch.length;
    const underscoreX = ch === '_' && key[index] === 'x';
    const portable = ch < '\u0080' || (ch.length === 1 && PORTABLE.test(ch));
    const allowed = portable && (first ? START_CHAR.test(ch) : NAME_CHAR.test(ch));
    out += !allowed || underscoreX || (first && reserved) ? escapeChar(ch) : ch;
  }
  return out;
}

/** Decodes an element name written by encodeXmlName back into the JSON key. */
export function decodeXmlName(name: string): string {
  if (name === EMPTY_KEY_NAME) return '';
  return name.replace(ESCAPE, (_match, hex: string) => String.fromCodePoint(Number.parseInt(hex, 16)));
}
