// How big a JSON Schema is once its `$ref`s are expanded. Text size says little: a chain of 40
// `$defs`, each an anyOf of two references to the next, is 2 KB of JSON and 2^41 nodes expanded,
// and every reader that walks the expansion (the CSV layout, ajv on a failing value) pays for
// those nodes. The pattern check refuses such a schema; readers measure before they walk.
import { childPath, refTokens, resolveLocalRef } from '../json-pointer.js';

/** Bounds on a schema's expansion, where each `$ref` counts as a copy of what it names. */
export const EXPANSION_LIMITS = {
  /**
   * Nodes in the expansion. OpenAI allows 5,000 properties in one schema, a few nodes each
   * (the property, an anyOf and its null branch); ten times that leaves room for reuse through
   * $ref. Reading 50,000 nodes for a CSV layout takes about 90 ms here; the 40-deep chain above
   * would take days.
   */
  nodes: 50_000,
  /** Schema levels on one path (properties, items, anyOf branches, $ref hops): the fake provider's limit. */
  nesting: 64,
} as const;

/** What measureExpansion found. */
export interface Expansion {
  /** Nodes visited, up to one past the limit. */
  nodes: number;
  /** Most object schemas on one path, counting through references. */
  objectDepth: number;
  /** Where objectDepth was first reached (`$.$defs.item.properties.box`). */
  objectDepthAt: string;
  /** Set when the walk stopped at a limit: which one, and where. */
  exceeded?: { limit: 'nodes' | 'nesting'; at: string };
}

/** Thrown by readers of a schema whose expansion passes EXPANSION_LIMITS. */
export class SchemaTooLargeError extends Error {
  override name = 'SchemaTooLargeError';
}

type Schema = Record<string, unknown>;

const isObject = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The JSON path of a local reference's target (`#/$defs/a~1b` → `$.$defs["a/b"]`). */
function refPath(ref: string): string {
  return (refTokens(ref) ?? []).reduce<string>(childPath, '$');
}

/**
 * Walks `schema` as the readers do: a `$ref` is followed unless it is already being expanded on
 * the current path (recursion counts once), and properties, items, anyOf and oneOf branches are
 * visited; a `$ref` node's other keywords too, so every reader's walk is contained in this one.
 * Stops at the first limit passed, so it costs at most `limits.nodes` steps.
 */
export function measureExpansion(schema: unknown, limits: { nodes: number; nesting: number } = EXPANSION_LIMITS): Expansion {
  const out: Expansion = { nodes: 0, objectDepth: 0, objectDepthAt: '$' };
  const refs: string[] = [];
  // Each reference is resolved once, however often the expansion meets it.
  const targets = new Map<string, { target: unknown; path: string }>();
  const follow = (ref: string) => {
    let hit = targets.get(ref);
    if (!hit) targets.set(ref, (hit = { target: resolveLocalRef(schema, ref), path: refPath(ref) }));
    return hit;
  };
  const walk = (node: unknown, path: string, nesting: number, objects: number): void => {
    if (out.exceeded) return;
    if (++out.nodes > limits.nodes) {
      out.exceeded = { limit: 'nodes', at: path };
      return;
    }
    if (nesting > limits.nesting) {
      out.exceeded = { limit: 'nesting', at: path };
      return;
    }
    if (!isObject(node)) return;
    const t = node.type;
    const isObjectSchema = t === 'object' || (Array.isArray(t) && t.includes('object')) || isObject(node.properties);
    const depth = objects + (isObjectSchema ? 1 : 0);
    if (depth > out.objectDepth) {
      out.objectDepth = depth;
      out.objectDepthAt = path;
    }
    if (typeof node.$ref === 'string' && !refs.includes(node.$ref)) {
      const { target, path: at } = follow(node.$ref);
      if (target !== undefined) {
        refs.push(node.$ref);
        walk(target, at, nesting + 1, depth);
        refs.pop();
      }
    }
    if (isObject(node.properties)) {
      for (const [key, child] of Object.entries(node.properties)) walk(child, childPath(childPath(path, 'properties'), key), nesting + 1, depth);
    }
    if ('items' in node && !Array.isArray(node.items)) walk(node.items, childPath(path, 'items'), nesting + 1, depth);
    for (const key of ['anyOf', 'oneOf'] as const) {
      const branches = node[key];
      if (Array.isArray(branches)) branches.forEach((b, i) => walk(b, childPath(childPath(path, key), i), nesting + 1, depth));
    }
  };
  walk(schema, '$', 0, 0);
  return out;
}

/** Why a reader refuses a schema, or undefined when its expansion is within EXPANSION_LIMITS. */
export function expansionProblem(schema: unknown): string | undefined {
  const { exceeded } = measureExpansion(schema);
  if (!exceeded) return undefined;
  return exceeded.limit === 'nodes'
    ? `the schema expands to more than ${EXPANSION_LIMITS.nodes} nodes once its $refs are expanded (past ${exceeded.at})`
    : `the schema nests more than ${EXPANSION_LIMITS.nesting} levels counting through $refs (at ${exceeded.at})`;
}
