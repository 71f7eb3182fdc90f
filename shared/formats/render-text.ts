// Manifest → readable text for people, not parsers: `key: value` lines, nested objects indented
// two spaces, array members as `- ` items, multi-line strings as an indented block after `|`.
// Strings are written as they are (a string "null" and null look alike); see docs/formats.md.
import { isJsonObject, type JsonValue } from './json-value.js';

/** The lines of a scalar: one line, or `|` and the string's lines for a multi-line string. */
function scalarLines(value: null | boolean | number | string): string[] {
  if (typeof value !== 'string') return [value === null ? 'null' : JSON.stringify(value)];
  if (value === '') return ['""'];
  const lines = value.split(/\r\n|\r|\n/);
  return lines.length === 1 ? lines : ['|', ...lines.map((line) => `  ${line}`)];
}

/** A key as written before the colon: JSON-quoted when empty or when it could be misread. */
function keyText(key: string): string {
  return key === '' || /[:\n\r]|^[-\s]|\s$/.test(key) ? JSON.stringify(key) : key;
}

/** The lines of any value, unindented; callers indent nested blocks. */
function valueLines(value: JsonValue): string[] {
  if (Array.isArray(value)) {
    if (value.length === 0) return ['[]'];
    return value.flatMap((member) => {
      const [first = '', ...rest] = valueLines(member);
      return [`- ${first}`, ...rest.map((line) => `  ${line}`)];
    });
  }
  if (isJsonObject(value)) {
    const keys = Object.keys(value);
    if (keys.length === 0) return ['{}'];
    return keys.flatMap((key) => {
      const child = value[key] as JsonValue;
      const lines = valueLines(child);
      const nested = (Array.isArray(child) && child.length > 0) || (isJsonObject(child) && Object.keys(child).length > 0);
      if (!nested) {
        const [first = '', ...rest] = lines;
        return [`${keyText(key)}: ${first}`, ...rest];
      }
      return [`${keyText(key)}:`, ...lines.map((line) => `  ${line}`)];
    });
  }
  return scalarLines(value);
}

/** Renders a manifest as indented `key: value` text with a final newline. */
export function renderText(manifest: JsonValue): string {
  return `${valueLines(manifest).join('\n')}\n`;
}
