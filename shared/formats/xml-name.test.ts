import { describe, expect, test } from 'vitest';
import { AWKWARD_KEYS } from './manifest-fixtures.js';
import { decodeXmlName, EMPTY_KEY_NAME, encodeXmlName } from './xml-name.js';

// XML 1.0 fifth edition Name (§2.3), ":" excluded, checked independently of the encoder's tables.
const XML_NAME = /^[\p{L}_][\p{L}\p{Mn}\p{Mc}\p{Nd}\p{Pc}\-.\u00B7\u203F\u2040]*$/u;

describe('encodeXmlName', () => {
  test.each([
    ['sku', 'sku'],
    ['on_promo', 'on_promo'],
    ['a b', 'a_x0020_b'],
    ['1st', '_x0031_st'],
    ['xmlThing', '_x0078_mlThing'],
    ['XMLThing', '_x0058_MLThing'],
    ['xm', 'xm'],
    ['a.b', 'a.b'],
    ['ä', 'ä'],
    ['<x>', '_x003C_x_x003E_'],
    ['', EMPTY_KEY_NAME],
    ['a_x0020_b', 'a_x005F_x0020_b'],
    ['_x', '_x005F_x'],
    ['_', '_'],
    ['__', '__'],
    ['x:y', 'x_x003A_y'],
    ['-dash', '_x002D_dash'],
    ['😀', '_x0001F600_'],
    ['日本', '日本'],
    ['שם', 'שם'],
    ['e\u0301', 'e\u0301'],
    ['a×b', 'a_x00D7_b'],
    ['\u0301e', '_x0301_e'],
    ['a\uD800b', 'a_xD800_b'],
    ['\uFFFF', '_xFFFF_'],
    ['\u{F0000}', '_x000F0000_'],
  ])('%j is written %j', (key, name) => {
    expect(encodeXmlName(key)).toBe(name);
    expect(decodeXmlName(name)).toBe(key);
  });

  test('every awkward key becomes a valid XML name and decodes back', () => {
    for (const key of AWKWARD_KEYS) {
      const name = encodeXmlName(key);
      expect(name).toMatch(XML_NAME);
      expect(name).not.toMatch(/^xml/i);
      expect(decodeXmlName(name)).toBe(key);
    }
  });

  test('keys that a naive escape would merge stay apart', () => {
    const keys = ['a b', 'a_x0020_b', 'a_x005F_x0020_b', '1st', '_x0031_st', 'xmlThing', '_x0078_mlThing', '', '_x_', '_'];
    const names = keys.map(encodeXmlName);
    expect(new Set(names).size).toBe(keys.length);
    expect(names.map(decodeXmlName)).toEqual(keys);
  });

  test('round-trips random strings drawn from awkward characters', () => {
    const alphabet = ['_', 'x', 'X', '0', 'F', 'a', ' ', '.', '-', ':', 'm', 'l', 'ä', '😀', '\u0301', '\u0000', '\uD800'];
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    for (let i = 0; i < 2000; i++) {
      let key = '';
      for (let n = next() % 9; n > 0; n--) key += alphabet[next() % alphabet.length];
      const name = encodeXmlName(key);
      expect(decodeXmlName(name)).toBe(key);
      if (!/[\uD800-\uDFFF]/.test(name)) expect(name).toMatch(XML_NAME);
    }
  });
});
