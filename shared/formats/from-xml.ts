// XML → manifest, the inverse of renderXml. It reads with saxes, a strict XML 1.0 parser, rather
// than xmlbuilder2's own reader, which decodes entities twice ("&amp;#65;" reads back as "A").
// The document carries its own types, so no schema is needed.
import { SaxesParser } from 'saxes';
import { type JsonObject, type JsonValue, setOwnKey } from './json-value.js';
import { XML_ROOT, XSI_NAMESPACE } from './render-xml.js';
import { decodeXmlName } from './xml-name.js';

interface XmlNode {
  name: string;
  attributes: Map<string, string>;
  children: XmlNode[];
  text: string;
}

/** Parses an XML document into a tree of elements and their text; attributes keyed `{uri}local`. */
function parseTree(text: string): XmlNode {
  const parser = new SaxesParser({ xmlns: true });
  const stack: XmlNode[] = [];
  let root: XmlNode | undefined;
  parser.on('opentag', (tag) => {
    const attributes = new Map<string, string>();
    for (const a of Object.values(tag.attributes)) attributes.set(`{${a.uri}}${a.local}`, a.value);
    const node: XmlNode = { name: tag.name, attributes, children: [], text: '' };
    stack.at(-1)?.children.push(node);
    root ??= node;
    stack.push(node);
  });
  parser.on('text', (t) => {
    const top = stack.at(-1);
    if (top) top.text += t;
  });
  parser.on('cdata', (t) => {
    const top = stack.at(-1);
    if (top) top.text += t;
  });
  parser.on('closetag', () => {
    stack.pop();
  });
  parser.on('error', (err) => {
    throw err;
  });
  parser.write(text).close();
  if (!root) throw new Error('the XML document has no root element');
  return root;
}

/** The JSON value an element stands for. */
function decodeElement(node: XmlNode): JsonValue {
  if (node.attributes.get(`{${XSI_NAMESPACE}}nil`) === 'true') return null;
  const type = node.attributes.get('{}type');
  switch (type) {
    case 'number': {
      const n: unknown = JSON.parse(node.text.trim());
      if (typeof n !== 'number') throw new Error(`<${node.name}> is type="number" but holds ${JSON.stringify(node.text)}`);
      return n;
    }
    case 'boolean':
      if (node.text.trim() !== 'true' && node.text.trim() !== 'false') {
        throw new Error(`<${node.name}> is type="boolean" but holds ${JSON.stringify(node.text)}`);
      }
      return node.text.trim() === 'true';
    case 'json':
      return JSON.parse(node.text) as JsonValue;
    case 'array':
      return node.children.map(decodeElement);
    case 'object':
      return decodeObject(node);
    case undefined:
      return node.children.length > 0 ? decodeObject(node) : node.text;
    default:
      throw new Error(`<${node.name}> has an unknown type="${type}"`);
  }
}

/** An object from an element's children; repeated elements marked array="true" gather into arrays. */
function decodeObject(node: XmlNode): JsonObject {
  const out: JsonObject = {};
  for (const child of node.children) {
    const key = decodeXmlName(child.name);
    const value = decodeElement(child);
    if (child.attributes.get('{}array') !== 'true') {
      setOwnKey(out, key, value);
      continue;
    }
    const list = Object.hasOwn(out, key) ? out[key] : undefined;
    if (Array.isArray(list)) list.push(value);
    else setOwnKey(out, key, [value]);
  }
  return out;
}

/** Reads an XML document written by renderXml back into the exact JSON manifest. */
export function fromXml(text: string): JsonValue {
  const root = parseTree(text);
  if (root.name !== XML_ROOT) throw new Error(`the root element is <${root.name}>, expected <${XML_ROOT}>`);
  return decodeElement(root);
}
