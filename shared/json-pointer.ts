/**
 * Resolves a local JSON Schema reference (`#`, `#/$defs/item`: a URI fragment holding an RFC 6901
 * JSON Pointer) against `root`. Undefined when the reference is not local, is malformed or names
 * nothing; callers that must tell a malformed pointer apart check `isLocalPointer` first.
 */
export function resolveLocalRef(root: unknown, ref: string): unknown {
  if (ref !== '#' && !ref.startsWith('#/')) return undefined;
  let node: unknown = root;
  for (const raw of ref.split('/').slice(1)) {
    let token: string;
    try {
      token = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
    } catch {
      return undefined;
    }
    node = node !== null && typeof node === 'object' && !Array.isArray(node) && Object.hasOwn(node, token)
      ? (node as Record<string, unknown>)[token]
      : undefined;
  }
  return node;
}

/** True when `ref` is a local reference whose pointer tokens are all well-formed percent-encoding. */
export function isLocalPointer(ref: string): boolean {
  if (ref !== '#' && !ref.startsWith('#/')) return false;
  try {
    for (const raw of ref.split('/').slice(1)) decodeURIComponent(raw);
    return true;
  } catch {
    return false;
  }
}
