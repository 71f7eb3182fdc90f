import { describe, expect, it } from 'vitest';
import { childPath, isLocalPointer, pointerTokens, refTokens, resolveLocalRef } from './json-pointer.js';

describe('JSON pointers', () => {
  it('unescape ~1 before ~0, so "~01" is the key "~1" and not "/"', () => {
    expect(pointerTokens('')).toEqual([]);
    expect(pointerTokens('/a~1b/~01/~0~1/0')).toEqual(['a/b', '~1', '~/', '0']);
  });

  it('local references are percent-decoded token by token: an encoded "/" stays inside its key', () => {
    expect(refTokens('#')).toEqual([]);
    expect(refTokens('#/$defs/a%2Fb/c~1d/%25')).toEqual(['$defs', 'a/b', 'c/d', '%']);
    expect(refTokens('#/$defs/%E0%A4%A')).toBeUndefined();
    expect(refTokens('other.json#/a')).toBeUndefined();
    expect([isLocalPointer('#/a/%ZZ'), isLocalPointer('#/a%20b')]).toEqual([false, true]);
  });

  it('resolve only own keys of objects, through every token', () => {
    const root = { $defs: { 'a/b': { type: 'string' }, 'x y': { type: 'number' } }, list: [1] };
    expect(resolveLocalRef(root, '#/$defs/a~1b')).toEqual({ type: 'string' });
    expect(resolveLocalRef(root, '#/$defs/x%20y')).toEqual({ type: 'number' });
    expect(resolveLocalRef(root, '#')).toBe(root);
    expect(resolveLocalRef(root, '#/$defs/toString')).toBeUndefined();
    expect(resolveLocalRef(root, '#/list/0')).toBeUndefined();
  });
});

describe('JSON paths', () => {
  it('name identifiers with a dot, other keys in brackets as JSON strings, indexes as numbers', () => {
    expect(['items', 2, 'odd key', '$ref', '2', 'é'].reduce<string>(childPath, '$')).toBe('$.items[2]["odd key"].$ref["2"]["é"]');
  });
});
