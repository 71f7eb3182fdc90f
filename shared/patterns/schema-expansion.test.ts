import { describe, expect, test } from 'vitest';
import { EXPANSION_LIMITS, expansionProblem, measureExpansion } from './schema-expansion.js';
import { anyOfChain } from '../../test/helpers/schema-fixtures.js';

const obj = (properties: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  type: 'object',
  properties,
  required: Object.keys(properties),
  additionalProperties: false,
  ...extra,
});

describe('measureExpansion', () => {
  test('counts every node, each $ref as a copy of its target, and object depth through $refs', () => {
    const schema = obj({ a: { $ref: '#/$defs/box' }, b: { $ref: '#/$defs/box' } }, { $defs: { box: obj({ w: { type: 'number' } }) } });
    // root, a, box, w, b, box, w
    expect(measureExpansion(schema)).toEqual({ nodes: 7, objectDepth: 2, objectDepthAt: '$.$defs.box' });
  });

  test('a recursive $ref counts once, whether to a definition or to the root', () => {
    const tree = obj({ root: { $ref: '#/$defs/node' }, up: { anyOf: [{ $ref: '#' }, { type: 'null' }] } }, {
      $defs: { node: obj({ children: { type: 'array', items: { $ref: '#/$defs/node' } } }) },
    });
    const e = measureExpansion(tree);
    expect(e.exceeded).toBeUndefined();
    expect(e.nodes).toBeLessThan(30);
    expect(e.objectDepth).toBe(3);
  });

  test('stops at the node limit after that many steps: a 25-deep anyOf chain (2^26 nodes) in milliseconds', () => {
    const start = performance.now();
    const e = measureExpansion(anyOfChain(25));
    expect(performance.now() - start).toBeLessThan(1000);
    expect(e.exceeded?.limit).toBe('nodes');
    expect(e.nodes).toBe(EXPANSION_LIMITS.nodes + 1);
    expect(expansionProblem(anyOfChain(25))).toMatch(/more than 50000 nodes/);
    expect(expansionProblem(anyOfChain(10))).toBeUndefined();
    // 40 deep, its paths are 82 levels long: the nesting limit stops it first.
    expect(expansionProblem(anyOfChain(40))).toMatch(/nests more than 64 levels/);
  });

  test('stops at the nesting limit, counted through $refs', () => {
    const $defs: Record<string, unknown> = {};
    for (let i = 0; i < 100; i++) $defs[`d${i}`] = { anyOf: [{ $ref: `#/$defs/d${i + 1}` }, { type: 'null' }] };
    $defs.d100 = { type: 'string' };
    const e = measureExpansion(obj({ x: { $ref: '#/$defs/d0' } }, { $defs }));
    expect(e.exceeded?.limit).toBe('nesting');
    expect(e.nodes).toBeLessThan(200);
  });

  test('mutually recursive definitions, every one naming every other, stay bounded', () => {
    const names = Array.from({ length: 12 }, (_, i) => `d${i}`);
    const $defs = Object.fromEntries(names.map((n) => [n, { anyOf: names.map((m) => ({ $ref: `#/$defs/${m}` })) }]));
    const start = performance.now();
    expect(measureExpansion(obj({ x: { $ref: '#/$defs/d0' } }, { $defs })).exceeded?.limit).toBe('nodes');
    expect(performance.now() - start).toBeLessThan(1000);
  });
});
