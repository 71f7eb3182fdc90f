// Hostile schemas for tests: small as JSON, huge once their $refs are expanded.

/**
 * A strict schema whose one property is `d0`, where `d_i = {anyOf: [{$ref: d_(i+1)}, {$ref: d_(i+1)}]}`
 * down to `d_depth = {type: "string"}`: about 2^(depth+2) nodes expanded, paths 2·depth + 2 levels long.
 */
export function anyOfChain(depth: number): Record<string, unknown> {
  const $defs: Record<string, unknown> = {};
  for (let i = 0; i < depth; i++) $defs[`d${i}`] = { anyOf: [{ $ref: `#/$defs/d${i + 1}` }, { $ref: `#/$defs/d${i + 1}` }] };
  $defs[`d${depth}`] = { type: 'string' };
  return { type: 'object', properties: { x: { $ref: '#/$defs/d0' } }, required: ['x'], additionalProperties: false, $defs };
}

/** A strict schema whose objects each hold two copies of the next, `depth` deep: 2^depth leaves. */
export function objectChain(depth: number): Record<string, unknown> {
  const $defs: Record<string, unknown> = {};
  for (let i = 0; i < depth; i++) {
    const next = { $ref: `#/$defs/o${i + 1}` };
    $defs[`o${i}`] = { type: 'object', properties: { a: next, b: next }, required: ['a', 'b'], additionalProperties: false };
  }
  $defs[`o${depth}`] = { type: 'string' };
  return { type: 'object', properties: { x: { $ref: '#/$defs/o0' } }, required: ['x'], additionalProperties: false, $defs };
}
