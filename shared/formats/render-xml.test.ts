import { describe, expect, test } from 'vitest';
import { fromXml } from './from-xml.js';
import type { JsonValue } from './json-value.js';
import { AWKWARD_STRINGS, jsonObject, SHELF_AUDIT } from './manifest-fixtures.js';
import { renderXml } from './render-xml.js';

const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<manifest xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">';

/** The document for `value`, checked to read back to it. */
function xml(value: JsonValue): string {
  const body = renderXml(value);
  expect(fromXml(body)).toEqual(value);
  return body;
}

describe('renderXml', () => {
  test('writes objects as child elements with typed scalars under <manifest>', () => {
    expect(xml({ store: 'S1', n: 3, ok: true, gone: null, empty: '' })).toBe(
      `${HEAD}
  <store>S1</store>
  <n type="number">3</n>
  <ok type="boolean">true</ok>
  <gone xsi:nil="true"/>
  <empty/>
</manifest>
`,
    );
  });

  test('repeats an element per member of a non-empty array, even for one member', () => {
    expect(xml({ tags: ['a', 'b'], one: [{ sku: 'x' }] })).toBe(
      `${HEAD}
  <tags array="true">a</tags>
  <tags array="true">b</tags>
  <one array="true">
    <sku>x</sku>
  </one>
</manifest>
`,
    );
  });

  test('writes empty arrays, nested arrays and top-level arrays as type="array" with <item>s', () => {
    expect(xml({ none: [], grid: [[1], []], o: {} })).toBe(
      `${HEAD}
  <none type="array"/>
  <grid array="true" type="array">
    <item type="number">1</item>
  </grid>
  <grid array="true" type="array"/>
  <o type="object"/>
</manifest>
`,
    );
    expect(xml(['a', null])).toBe(`<?xml version="1.0" encoding="UTF-8"?>
<manifest xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" type="array">
  <item>a</item>
  <item xsi:nil="true"/>
</manifest>
`);
  });

  test('writes a top-level scalar as the content of <manifest>', () => {
    expect(xml(42)).toContain('<manifest xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" type="number">42</manifest>');
    expect(xml(null)).toContain('xsi:nil="true"/>');
    xml('');
    xml('text');
  });

  test('escapes text itself, so entity look-alikes and CRs survive', () => {
    const body = xml({ s: 'a &amp; b &#65; &lt; <c> ]]> d\r\ne' });
    expect(body).toContain('<s>a &amp;amp; b &amp;#65; &amp;lt; &lt;c&gt; ]]&gt; d&#13;\ne</s>');
  });

  test('carries strings XML 1.0 cannot hold as JSON text', () => {
    const body = xml({ c: 'bell\u0007 nul\u0000 \uFFFE' });
    expect(body).toContain('<c type="json">"bell\\u0007 nul\\u0000 \\ufffe"</c>');
  });

  test('keeps whitespace-only and padded strings exactly', () => {
    xml({ a: ' ', b: '\n', c: '\t x \t', d: ['  ', ''] });
  });

  test('reads back every awkward string and the shelf audit', () => {
    xml(jsonObject(AWKWARD_STRINGS.map((s, i) => [`k${i}`, s])));
    xml({ list: AWKWARD_STRINGS });
    xml(SHELF_AUDIT);
  });

  test('is deterministic', () => {
    expect(renderXml(SHELF_AUDIT)).toBe(renderXml(JSON.parse(JSON.stringify(SHELF_AUDIT)) as JsonValue));
  });
});

describe('fromXml', () => {
  test('accepts the same document written by hand, with CDATA and comments', () => {
    const body = `<?xml version="1.0"?>
<!-- written by hand -->
<manifest xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><a><![CDATA[<raw> & ]]></a>
  <b type="number"> 1e3 </b><c xsi:nil="true"></c><d array="true">x</d></manifest>`;
    expect(fromXml(body)).toEqual({ a: '<raw> & ', b: 1000, c: null, d: ['x'] });
  });

  test('rejects documents that are not manifests', () => {
    expect(() => fromXml('<other/>')).toThrow(/expected <manifest>/);
    expect(() => fromXml('<manifest><a>1</b></manifest>')).toThrow();
    expect(() => fromXml('<manifest type="number">one</manifest>')).toThrow();
    expect(() => fromXml('<manifest type="date">x</manifest>')).toThrow(/unknown type="date"/);
    expect(() => fromXml('<manifest type="boolean">yes</manifest>')).toThrow(/type="boolean"/);
  });
});
