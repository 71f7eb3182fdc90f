// Manifest → XML. The rules (docs/formats.md, "xml") in short: the root element is <manifest>;
// an object's keys are child elements (names from encodeXmlName); a non-empty array under a key
// is that element repeated, each copy marked array="true"; any other array is one element with
// type="array" holding one <item> per member; numbers and booleans carry type="number" /
// type="boolean", null is xsi:nil="true", an empty object is type="object", and a string that
// XML 1.0 cannot carry (control characters, lone surrogates) is type="json" with its JSON text.
import { create } from 'xmlbuilder2';
import type { JsonValue } from './json-value.js';
import { encodeXmlName } from './xml-name.js';

type XmlElement = ReturnType<typeof create>;

/** The XML Schema instance namespace, home of `xsi:nil`. */
export const XSI_NAMESPACE = 'http://www.w3.org/2001/XMLSchema-instance';

/** The name of the document element of every manifest. */
export const XML_ROOT = 'manifest';

/** The name of each member element inside an element marked type="array". */
export const XML_ITEM = 'item';

// Characters outside XML 1.0's Char production (§2.2): not even a character reference can carry them.
const NOT_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

/**
 * Text as xmlbuilder2 should receive it. Its serializer leaves an ampersand that already starts
 * an entity or a decimal character reference untouched (`nonEntityAmpersandRegex` in
 * xmlbuilder2 4.0), so the string "&amp;" would come out as "&amp;" and read back as "&".
 * Escaping every ampersand here makes each one start "&amp;", which it then passes through.
 * A carriage return becomes "&#13;" because parsers turn a literal CR into LF (XML 1.0 §2.11).
 */
function textFor(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/\r/g, '&#13;');
}

/** The JSON text of a string, with the two noncharacters JSON.stringify leaves raw escaped too. */
function jsonStringText(value: string): string {
  return JSON.stringify(value).replace(/[\uFFFE\uFFFF]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16)}`);
}

/** Writes `value` as the content and attributes of `element`. */
function writeValue(element: XmlElement, value: JsonValue): void {
  if (value === null) {
    element.att('xsi:nil', 'true');
  } else if (typeof value === 'number') {
    element.att('type', 'number').txt(JSON.stringify(value));
  } else if (typeof value === 'boolean') {
    element.att('type', 'boolean').txt(String(value));
  } else if (typeof value === 'string') {
    if (NOT_XML_CHAR.test(value)) element.att('type', 'json').txt(textFor(jsonStringText(value)));
    else if (value !== '') element.txt(textFor(value));
  } else if (Array.isArray(value)) {
    element.att('type', 'array');
    for (const member of value) writeValue(element.ele(XML_ITEM), member);
  } else {
    const keys = Object.keys(value);
    if (keys.length === 0) element.att('type', 'object');
    for (const key of keys) writeMember(element, key, value[key] as JsonValue);
  }
}

/** Writes one key of an object: a repeated element for a non-empty array, else one element. */
function writeMember(parent: XmlElement, key: string, value: JsonValue): void {
  const name = encodeXmlName(key);
  if (Array.isArray(value) && value.length > 0) {
    for (const member of value) writeValue(parent.ele(name, { array: 'true' }), member);
  } else {
    writeValue(parent.ele(name), value);
  }
}

/** Renders a JSON manifest as an XML document (UTF-8, 2-space indent, LF, final newline). */
export function renderXml(manifest: JsonValue): string {
  const doc = create({ version: '1.0', encoding: 'UTF-8' });
  const root = doc.ele(XML_ROOT, { 'xmlns:xsi': XSI_NAMESPACE });
  writeValue(root, manifest);
  return `${doc.end({ prettyPrint: true, indent: '  ', newline: '\n' })}\n`;
}
