import { resolveLocalRef } from '../json-pointer.js';

/**
 * Returns `value` with every object's keys in the order its schema lists them (undeclared keys
 * after, as they were). Results are stored as jsonb, which re-sorts keys; the schema is the
 * author's order, and Structured Outputs answers in it, so manifests are served in it too.
 */
export function orderLikeSchema(value: unknown, schema: unknown, root: unknown = schema, depth = 0): unknown {
  const node = resolve(schema, root);
  if (depth > 64 || !node) return value;
  if (Array.isArray(value)) return value.map((v) => orderLikeSchema(v, node.items, root, depth + 1));
  if (value === null || typeof value !== 'object') return value;
  const objectNode = pickObjectSchema(node, root);
  const props = objectNode?.properties;
  if (!props || typeof props !== 'object') return value;
  const source = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(props)) {
    if (Object.hasOwn(source, key)) out[key] = orderLikeSchema(source[key], (props as Record<string, unknown>)[key], root, depth + 1);
  }
  for (const key of Object.keys(source)) if (!Object.hasOwn(out, key)) out[key] = source[key];
  return out;
}

type SchemaNode = Record<string, unknown> & { properties?: unknown; items?: unknown; anyOf?: unknown[] };

/** Follows local `$ref`s (#/$defs/x, #/definitions/x, #) to the schema they name. */
function resolve(schema: unknown, root: unknown): SchemaNode | undefined {
  let node = schema;
  for (let hops = 0; hops < 16 && node && typeof node === 'object' && typeof (node as SchemaNode).$ref === 'string'; hops++) {
    node = resolveLocalRef(root, (node as SchemaNode).$ref as string);
  }
  return node && typeof node === 'object' ? (node as SchemaNode) : undefined;
}

/** The object form of a node: itself, or its first anyOf branch that declares properties. */
function pickObjectSchema(node: SchemaNode, root: unknown): SchemaNode | undefined {
  if (node.properties) return node;
  for (const branch of node.anyOf ?? []) {
    const b = resolve(branch, root);
    if (b?.properties) return b;
  }
  return undefined;
}
