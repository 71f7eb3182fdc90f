// JSON Pointers (RFC 6901) as schemas and validators spell them, and the JSON paths
// (`$.items[2]["odd key"]`) that problems are reported at: one reading of each for every caller.

/** One reference token of a JSON Pointer unescaped: `~1` is `/`, then `~0` is `~` (so `~01` is `~1`). */
function unescapeToken(token: string): string {
  return token.replaceAll('~1', '/').replaceAll('~0', '~');
}

/** The keys of a JSON Pointer (`/a~1b/0` → `['a/b', '0']`; `` → `[]`, the whole document). */
export function pointerTokens(pointer: string): string[] {
  return pointer.split('/').slice(1).map(unescapeToken);
}

/**
 * The keys a local JSON Schema reference names (`#/$defs/a~1b` → `['$defs', 'a/b']`): a URI
 * fragment holding a JSON Pointer, so each token is percent-decoded before it is unescaped.
 * Undefined when the reference is not local (`#` or `#/…`) or its percent-encoding is malformed.
 */
export function refTokens(ref: string): string[] | undefined {
  if (ref !== '#' && !ref.startsWith('#/')) return undefined;
  try {
    return ref.split('/').slice(1).map((raw) => unescapeToken(decodeURIComponent(raw)));
  } catch {
    return undefined;
  }
}

/**
 * Resolves a local JSON Schema reference (`#`, `#/$defs/item`) against `root`. Undefined when the
 * reference is not local, is malformed or names nothing; callers that must tell a malformed
 * pointer apart check `isLocalPointer` first.
 */
export function resolveLocalRef(root: unknown, ref: string): unknown {
  const tokens = refTokens(ref);
  if (!tokens) return undefined;
  let node: unknown = root;
  for (const token of tokens) {
    node = node !== null && typeof node === 'object' && !Array.isArray(node) && Object.hasOwn(node, token)
      ? (node as Record<string, unknown>)[token]
      : undefined;
  }
  return node;
}

/** True when `ref` is a local reference whose pointer tokens are all well-formed percent-encoding. */
export function isLocalPointer(ref: string): boolean {
  return refTokens(ref) !== undefined;
}

/** Appends a key to a JSON path: `.name` for identifiers, `["odd name"]` otherwise, `[2]` for indexes. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}
