// Manifest → YAML with the `yaml` package: YAML 1.2 core schema, block style, no line folding,
// no anchors (a JSON value never shares a node), every string that would read back as another
// type quoted.
import { Document, type Scalar, Schema, type Tags, visit } from 'yaml';
import type { JsonValue } from './json-value.js';

// Plain scalars a YAML 1.1 reader (PyYAML, SnakeYAML, Go's yaml.v2) would not read as a string:
// yes/no/on/off, 0777, 1_000, 1:20, 2026-11-02 … The yaml package already quotes the strings
// that YAML 1.2's core schema would misread; these get double quotes as well. A bare "=" is
// PyYAML's `tag:yaml.org,2002:value`, which safe_load cannot construct.
const YAML_11_TESTS = [
  ...new Schema({ schema: 'yaml-1.1' }).tags.flatMap((tag) =>
    'test' in tag && tag.test instanceof RegExp && tag.tag !== 'tag:yaml.org,2002:str' ? [tag.test] : [],
  ),
  /^=$/,
];

// Characters YAML may not hold raw (outside c-printable, YAML 1.2 §5.1), plus NEL, LS and PS,
// which YAML 1.1 reads as line breaks. The yaml package escapes C0 controls in double quotes
// (it builds them from JSON.stringify) but leaves these raw, and PyYAML refuses a document with
// a raw U+007F; so their strings are double-quoted and the characters escaped afterwards.
// Tabs are valid in plain scalars, but PyYAML's scanner stops at one: they get quotes too.
const NEEDS_ESCAPE = /[\x00-\x09\x0B-\x1F\x7F-\x9F\u2028\u2029\uFFFE\uFFFF]/;
const RAW_IN_QUOTES = /[\x7F-\x9F\u2028\u2029\uFFFE\uFFFF]/g;
const NAMED_ESCAPES: Record<string, string> = { '\x85': '\\N', '\u2028': '\\L', '\u2029': '\\P' };

/** A YAML double-quoted escape for one character. */
function yamlEscape(ch: string): string {
  const code = ch.charCodeAt(0);
  return NAMED_ESCAPES[ch] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`);
}

/**
 * A number as its JSON text, except that an exponent form gets a fractional part (`1e+21` →
 * `1.0e+21`): YAML 1.1's float needs a dot, so PyYAML would read `1e+21` as a string.
 */
function yamlNumber(node: Scalar): string {
  const text = JSON.stringify(node.value);
  return text.includes('e') && !text.includes('.') ? text.replace('e', '.0e') : text;
}

/** The core schema's tags, with every int and float tag written by yamlNumber. */
function numberTags(tags: Tags): Tags {
  const numeric = new Set(['tag:yaml.org,2002:int', 'tag:yaml.org,2002:float']);
  return tags.map((tag) => (typeof tag === 'object' && !tag.collection && numeric.has(tag.tag) ? { ...tag, stringify: yamlNumber } : tag));
}

/** Renders a manifest as YAML 1.2 (core schema) that YAML 1.1 readers also read back exactly. */
export function renderYaml(manifest: JsonValue): string {
  const doc = new Document(manifest, {
    version: '1.2',
    schema: 'core',
    customTags: numberTags,
    aliasDuplicateObjects: false,
  });
  visit(doc, {
    Scalar(_key, node) {
      const value = node.value;
      if (typeof value === 'string' && (NEEDS_ESCAPE.test(value) || YAML_11_TESTS.some((re) => re.test(value)))) {
        node.type = 'QUOTE_DOUBLE';
      }
    },
  });
  // Every string holding such a character is double-quoted now, so each occurrence of one in
  // the document sits inside double quotes, where escapes apply.
  return doc.toString({ lineWidth: 0 }).replace(RAW_IN_QUOTES, yamlEscape);
}
