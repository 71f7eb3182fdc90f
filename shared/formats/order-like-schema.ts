import { resolveLocalRef } from '../json-pointer.js';

/**
 * Returns `value` with every object's keys in the order its schema lists them (undeclared keys
 * after, as they were). Results are stored as jsonb, which re-sorts keys; the schema is the
 * author's order, and Structured Outputs answers in it, so manifests are served in it too.
 */
export function orderLikeSchema(value: unknown, schema: unknown): unknown {
  return order(value, schema, schema, 0, new Map());
}

type SchemaNode = Record<string, unknown> & { properties?: unknown; items?: unknown; anyOf?: unknown[] };

// `objects` remembers each node's object form: found once per node, not once per value, so a
// long array under an anyOf of many branches costs the array plus the branches.
function order(value: unknown, schema: unknown, root: unknown, depth: number, objects: Map<SchemaNode, SchemaNode | undefined>): unknown {
  const node = resolve(schema, root);
  if (depth > 64 || !node) return value;
  if (Array.isArray(value)) return value.map((v) => order(v, node.items, root, depth + 1, objects));
  if (value === null || typeof value !== 'object') return value;
  if (!objects.has(node)) objects.set(node, pickObjectSchema(node, root));
  const props = objects.get(node)?.properties;
  if (!props || typeof props !== 'object') return value;
  const source = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(props)) {
    if (Object.hasOwn(source, key)) out[key] = order(source[key], (props as Record<string, unknown>)[key], root, depth + 1, objects);
  }
  for (const key of Object.keys(source)) if (!Object.hasOwn(out, key)) out[key] = source[key];
  return out;
}

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
