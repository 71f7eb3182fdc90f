import { describe, expect, test } from 'vitest';
import { orderLikeSchema } from './order-like-schema.js';

describe('orderLikeSchema', () => {
  test('puts keys in schema order at every level, through arrays, anyOf and $ref; extra keys last', () => {
    const schema = {
      type: 'object',
      properties: {
        zebra: { type: 'string' },
        apple: { type: 'array', items: { $ref: '#/$defs/item' } },
        mango: { anyOf: [{ type: 'null' }, { type: 'object', properties: { y: { type: 'number' }, x: { type: 'number' } } }] },
      },
      $defs: { item: { type: 'object', properties: { second: { type: 'string' }, first: { type: 'string' } } } },
    };
    const sorted = { apple: [{ first: 'f', second: 's' }], extra: 1, mango: { x: 1, y: 2 }, zebra: 'z' };
    const out = orderLikeSchema(sorted, schema) as Record<string, any>;
    expect(Object.keys(out)).toEqual(['zebra', 'apple', 'mango', 'extra']);
    expect(Object.keys(out.apple[0])).toEqual(['second', 'first']);
    expect(Object.keys(out.mango)).toEqual(['y', 'x']);
    expect(out).toEqual(sorted);
  });

  test('leaves values it has no schema for untouched', () => {
    expect(orderLikeSchema({ b: 1, a: 2 }, {})).toEqual({ b: 1, a: 2 });
    expect(orderLikeSchema(null, { type: 'object' })).toBe(null);
    expect(orderLikeSchema([3, 1], { type: 'array' })).toEqual([3, 1]);
  });
});
